// Command scimscale measures how a SCIM server's reads and group changes
// scale with the tenant: it grows the user count through SCIM creates in
// steps (10k, 50k, 100k by default) and at each step times (a) paging
// through every user with count=100, without and with a filter, and (c)
// `userName eq` lookups; then (b) PATCHes that add 10,000 members to a
// group at a time up to 50,000 (and one group to every user), then one
// removing 10,000 by value list. It appends Markdown table rows to -md.
// bench/scim-scale.sh runs it against dirsync (embedded store and Redis)
// and the scimmy peer.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	base, token, label, md, filter string
	steps                          []int
	conc, lookups                  int
	groups                         bool
	pageLimit, createLimit         time.Duration
	pid                            int
}

func main() {
	var o options
	var steps string
	flag.StringVar(&o.base, "base", "", "SCIM base URL (…/v2)")
	flag.StringVar(&o.token, "token", os.Getenv("SCIM_TOKEN"), "bearer token (default $SCIM_TOKEN)")
	flag.StringVar(&o.label, "label", "server", "name of the server in the results")
	flag.StringVar(&o.md, "md", "", "append Markdown rows here (paging rows; group rows go to MD.groups)")
	flag.StringVar(&steps, "steps", "10000,50000,100000", "user counts to measure at")
	flag.StringVar(&o.filter, "filter", "active eq true", "filter of the filtered paging pass (3 of 4 users are active)")
	flag.IntVar(&o.conc, "c", 16, "concurrent connections for creates")
	flag.IntVar(&o.lookups, "lookups", 500, "userName eq lookups per step")
	flag.BoolVar(&o.groups, "groups", true, "run the group PATCH phase after the last step")
	flag.DurationVar(&o.pageLimit, "page-limit", 120*time.Second, "time limit of one paging pass")
	flag.DurationVar(&o.createLimit, "create-limit", 600*time.Second, "time limit of the creates of one step")
	flag.IntVar(&o.pid, "pid", 0, "server process id: report its resident memory")
	flag.Parse()
	for _, s := range strings.Split(steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fail(fmt.Errorf("-steps: %q is not a positive number", s))
		}
		o.steps = append(o.steps, n)
	}
	if o.base == "" || o.token == "" {
		fail(errors.New("-base and -token (or $SCIM_TOKEN) are required"))
	}
	if err := run(o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scimscale:", err)
	os.Exit(1)
}

type client struct {
	c     *http.Client
	base  string
	token string
}

func (c *client) do(method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := c.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode >= 400 {
		err = fmt.Errorf("%s %s: status %d: %.200s", method, path, res.StatusCode, b)
	}
	return res.StatusCode, b, err
}

type stats struct{ d []time.Duration }

func (s *stats) add(d time.Duration) { s.d = append(s.d, d) }
func (s stats) avg() time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	var t time.Duration
	for _, d := range s.d {
		t += d
	}
	return t / time.Duration(len(s.d))
}
func (s stats) pct(q float64) time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	l := slices.Clone(s.d)
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}
func (s stats) last() time.Duration {
	if len(s.d) == 0 {
		return 0
	}
	return s.d[len(s.d)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func run(o options) error {
	tr := &http.Transport{MaxIdleConnsPerHost: o.conc * 2, MaxConnsPerHost: o.conc, DisableCompression: true}
	c := &client{c: &http.Client{Transport: tr, Timeout: 120 * time.Second}, base: strings.TrimRight(o.base, "/"), token: o.token}
	tag := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	var ids []string
	var names []string
	for _, target := range o.steps {
		t0 := time.Now()
		newIDs, newNames, err := createUsers(c, o, tag, len(ids), target)
		ids, names = append(ids, newIDs...), append(names, newNames...)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %d users (creates took %s)\n", o.label, len(ids), time.Since(t0).Round(time.Millisecond))
		all, allN, err := page(c, "", o.pageLimit)
		if err != nil {
			return err
		}
		filt, filtN, err := page(c, o.filter, o.pageLimit)
		if err != nil {
			return err
		}
		var look stats
		for range o.lookups {
			n := names[rand.IntN(len(names))]
			t := time.Now()
			_, b, err := c.do("GET", "/Users?filter="+url.QueryEscape(`userName eq "`+n+`"`), nil)
			if err != nil {
				return err
			}
			look.add(time.Since(t))
			if !bytes.Contains(b, []byte(`"totalResults":1`)) {
				return fmt.Errorf("lookup of %s: %.200s", n, b)
			}
		}
		rss := rssMB(o.pid)
		row := fmt.Sprintf("| %s | %d | %d/%d | %s | %s | %s | %d/%d | %s | %s | %s | %s | %s |\n", o.label, len(ids),
			len(all.d), allN, ms(all.avg()), ms(all.pct(0.99)), ms(all.last()),
			len(filt.d), filtN, ms(filt.avg()), ms(filt.pct(0.99)), ms(look.avg()), ms(look.pct(0.99)), rss)
		fmt.Fprint(os.Stderr, row)
		if err := appendTo(o.md, row); err != nil {
			return err
		}
	}
	if o.groups {
		return groupPhase(c, o, ids)
	}
	return nil
}

func rssMB(pid int) string {
	if pid <= 0 {
		return "–"
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.Atoi(f[1])
			return fmt.Sprintf("%.0f", float64(kb)/1024)
		}
	}
	return "?"
}

func appendTo(path, s string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(s)
	return err
}

// createUsers creates users from index have to want-1 (3 of 4 active).
func createUsers(c *client, o options, tag string, have, want int) ([]string, []string, error) {
	n := want - have
	ids := make([]string, n)
	names := make([]string, n)
	var next atomic.Int64
	var firstErr atomic.Value
	ctx, cancel := context.WithTimeout(context.Background(), o.createLimit)
	defer cancel()
	var wg sync.WaitGroup
	for range o.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && firstErr.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				k := have + i
				name := fmt.Sprintf("u%07d.%s@example.com", k, tag)
				body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"externalId":"x-%s-%d","active":%t,"displayName":"User %d","name":{"givenName":"U","familyName":"%d"},"emails":[{"value":%q,"type":"work","primary":true}]}`,
					name, tag, k, k%4 != 0, k, k, name)
				_, b, err := c.do("POST", "/Users", []byte(body))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				var r struct{ ID string }
				_ = json.Unmarshal(b, &r)
				ids[i], names[i] = r.ID, name
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return nil, nil, e.(error)
	}
	if ctx.Err() != nil {
		return nil, nil, fmt.Errorf("creating %d users took longer than %s", n, o.createLimit)
	}
	return ids, names, nil
}

// page pages through a list with count=100 until a short page, timing
// each request; it returns the times and totalResults.
func page(c *client, filter string, limit time.Duration) (stats, int, error) {
	var s stats
	deadline := time.Now().Add(limit)
	total := 0
	for start := 1; time.Now().Before(deadline); start += 100 {
		q := fmt.Sprintf("/Users?startIndex=%d&count=100", start)
		if filter != "" {
			q += "&filter=" + url.QueryEscape(filter)
		}
		t := time.Now()
		_, b, err := c.do("GET", q, nil)
		if err != nil {
			return s, 0, err
		}
		s.add(time.Since(t))
		var r struct {
			TotalResults int               `json:"totalResults"`
			Resources    []json.RawMessage `json:"Resources"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return s, 0, fmt.Errorf("page %d: %w", start, err)
		}
		total = r.TotalResults
		if len(r.Resources) < 100 || start+100 > total {
			break
		}
	}
	return s, total, nil
}

func members(ids []string) []byte {
	var b bytes.Buffer
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"value":%q}`, id)
	}
	return b.Bytes()
}

func patchMembers(c *client, gid, op string, ids []string) (time.Duration, error) {
	body := append([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"`+op+`","path":"members","value":[`), members(ids)...)
	body = append(body, "]}]}"...)
	t := time.Now()
	_, _, err := c.do("PATCH", "/Groups/"+gid, body)
	return time.Since(t), err
}

func createGroup(c *client, name string) (string, error) {
	_, b, err := c.do("POST", "/Groups", []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"`+name+`"}`))
	if err != nil {
		return "", err
	}
	var r struct{ ID string }
	return r.ID, json.Unmarshal(b, &r)
}

// groupPhase: a group grown to 50,000 members 10,000 at a time, one more
// add of 10,000 and a remove of 10,000 by value list; then a group of
// every user, and a GET of it.
func groupPhase(c *client, o options, ids []string) error {
	const batch = 10000
	row := func(what string, members int, d time.Duration) error {
		r := fmt.Sprintf("| %s | %s | %d | %s |\n", o.label, what, members, ms(d))
		fmt.Fprint(os.Stderr, r)
		return appendTo(o.md+".groups", r)
	}
	gid, err := createGroup(c, "Staff")
	if err != nil {
		return err
	}
	size := 0
	for size+batch <= min(50000, len(ids)) {
		d, err := patchMembers(c, gid, "add", ids[size:size+batch])
		if err != nil {
			return err
		}
		size += batch
		if err := row(fmt.Sprintf("add %d (group → %d)", batch, size), size, d); err != nil {
			return err
		}
	}
	if size+batch <= len(ids) {
		d, err := patchMembers(c, gid, "add", ids[size:size+batch])
		if err != nil {
			return err
		}
		if err := row(fmt.Sprintf("add %d to a %d-member group", batch, size), size+batch, d); err != nil {
			return err
		}
		d, err = patchMembers(c, gid, "remove", ids[size-batch:size])
		if err != nil {
			return err
		}
		if err := row(fmt.Sprintf("remove %d by value list from a %d-member group", batch, size+batch), size, d); err != nil {
			return err
		}
	}
	all, err := createGroup(c, "Everyone")
	if err != nil {
		return err
	}
	var last time.Duration
	for n := 0; n < len(ids); n += batch {
		if last, err = patchMembers(c, all, "add", ids[n:min(n+batch, len(ids))]); err != nil {
			return err
		}
	}
	if err := row(fmt.Sprintf("last add of %d to the every-user group", batch), len(ids), last); err != nil {
		return err
	}
	t := time.Now()
	_, b, err := c.do("GET", "/Groups/"+all, nil)
	if err != nil {
		return err
	}
	var g struct{ Members []json.RawMessage }
	_ = json.Unmarshal(b, &g)
	if len(g.Members) != len(ids) {
		return fmt.Errorf("the every-user group has %d members, want %d", len(g.Members), len(ids))
	}
	return row("GET of the every-user group", len(g.Members), time.Since(t))
}
