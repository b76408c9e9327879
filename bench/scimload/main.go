// Command scimload measures a SCIM 2.0 server's write throughput and
// latency the way identity providers load it: it creates users (POST
// /Users), then disables and re-enables them (PATCH /Users/{id} replacing
// active), with a fixed number of concurrent connections. Both phases are
// bounded by a count and a time limit. It prints one result line and can
// append a Markdown table row to a file.
//
//	scimload -base http://127.0.0.1:8080/scim/corp/v2 -token T -users 2000 -patches 20000 -c 16
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	base, token, label, out string
	users, patches, conc    int
	limit                   time.Duration
	warmup                  int
}

func main() {
	var o options
	flag.StringVar(&o.base, "base", "", "SCIM base URL (…/v2)")
	flag.StringVar(&o.token, "token", os.Getenv("SCIM_TOKEN"), "bearer token (default $SCIM_TOKEN)")
	flag.StringVar(&o.label, "label", "server", "name of the server in the results")
	flag.StringVar(&o.out, "md", "", "append a Markdown table row to this file")
	flag.IntVar(&o.users, "users", 2000, "users to create")
	flag.IntVar(&o.patches, "patches", 20000, "PATCH requests to send")
	flag.IntVar(&o.conc, "c", 16, "concurrent connections")
	flag.IntVar(&o.warmup, "warmup", 500, "PATCH requests sent before measuring (not counted)")
	flag.DurationVar(&o.limit, "limit", 60*time.Second, "time limit per phase")
	freePort := flag.Bool("freeport", false, "print a free loopback TCP port and exit")
	flag.Parse()
	if *freePort {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fail(err)
		}
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		return
	}
	if o.base == "" || o.token == "" {
		fail(errors.New("-base and -token (or SCIM_TOKEN) are required"))
	}
	if err := run(o); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "scimload:", err)
	os.Exit(1)
}

// phase is the outcome of one load phase.
type phase struct {
	ok, errs int
	elapsed  time.Duration
	lat      []time.Duration
	firstErr string
}

func (p phase) rate() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.ok) / p.elapsed.Seconds()
}

func (p phase) pct(q float64) time.Duration {
	if len(p.lat) == 0 {
		return 0
	}
	s := slices.Clone(p.lat)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

func run(o options) error {
	tr := &http.Transport{MaxIdleConns: o.conc * 2, MaxIdleConnsPerHost: o.conc * 2, MaxConnsPerHost: o.conc,
		IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	base := strings.TrimRight(o.base, "/")
	run := fmt.Sprintf("%d", time.Now().UnixNano()%1e9)

	ids := make([]string, o.users)
	var idMu sync.Mutex
	create := load(o.conc, o.users, o.limit, func(i int) (int, error) {
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"load.%s.%d@example.com","externalId":"ext-%s-%d","active":true,"displayName":"Load User %d","name":{"givenName":"Load","familyName":"User %d"},"emails":[{"value":"load.%s.%d@example.com","type":"work","primary":true}]}`,
			run, i, run, i, i, i, run, i)
		status, resp, err := do(client, "POST", base+"/Users", o.token, body)
		if err != nil {
			return status, err
		}
		if status != http.StatusCreated {
			return status, fmt.Errorf("status %d, want 201", status)
		}
		var r struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(resp, &r); err != nil || r.ID == "" {
			return status, fmt.Errorf("no id in the 201 response")
		}
		idMu.Lock()
		ids[i] = r.ID
		idMu.Unlock()
		return status, nil
	})
	live := slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == "" })
	if len(live) == 0 {
		return fmt.Errorf("%s: no user created (%s)", o.label, create.firstErr)
	}
	patchFn := func(i int) (int, error) {
		id := live[i%len(live)]
		active := (i/len(live))%2 == 1 // first pass disables, second re-enables, ...
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":%t}]}`, active)
		status, _, err := do(client, "PATCH", base+"/Users/"+id, o.token, body)
		if err == nil && status != http.StatusOK && status != http.StatusNoContent {
			err = fmt.Errorf("status %d", status)
		}
		return status, err
	}
	if o.warmup > 0 {
		load(o.conc, o.warmup, o.limit, func(i int) (int, error) { return patchFn(i + o.patches) })
	}
	patch := load(o.conc, o.patches, o.limit, patchFn)

	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	fmt.Printf("%s: creates %d ok %d err in %s: %.0f/s p50 %sms p99 %sms | patches %d ok %d err in %s: %.0f/s p50 %sms p99 %sms\n",
		o.label, create.ok, create.errs, create.elapsed.Round(time.Millisecond), create.rate(), ms(create.pct(0.5)), ms(create.pct(0.99)),
		patch.ok, patch.errs, patch.elapsed.Round(time.Millisecond), patch.rate(), ms(patch.pct(0.5)), ms(patch.pct(0.99)))
	for _, p := range []phase{create, patch} {
		if p.firstErr != "" {
			fmt.Printf("  first error: %s\n", p.firstErr)
		}
	}
	if o.out != "" {
		row := fmt.Sprintf("| %s | %d | %.0f | %s | %s | %d | %.0f | %s | %s | %d |\n",
			o.label, create.ok, create.rate(), ms(create.pct(0.5)), ms(create.pct(0.99)),
			patch.ok, patch.rate(), ms(patch.pct(0.5)), ms(patch.pct(0.99)), create.errs+patch.errs)
		f, err := os.OpenFile(o.out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.WriteString(row); err != nil {
			return err
		}
	}
	return nil
}

// load runs n calls of fn on conc workers, stopping early at limit.
func load(conc, n int, limit time.Duration, fn func(i int) (int, error)) phase {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var p phase
	lats := make([][]time.Duration, conc)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				_, err := fn(i)
				d := time.Since(t0)
				mu.Lock()
				if err != nil {
					p.errs++
					if p.firstErr == "" {
						p.firstErr = err.Error()
					}
				} else {
					p.ok++
				}
				mu.Unlock()
				if err == nil {
					lats[w] = append(lats[w], d)
				}
			}
		}()
	}
	wg.Wait()
	p.elapsed = time.Since(start)
	for _, l := range lats {
		p.lat = append(p.lat, l...)
	}
	return p
}

func do(c *http.Client, method, url, token, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	req.Header.Set("Accept", "application/scim+json")
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, nil, err
	}
	if res.StatusCode >= 400 {
		return res.StatusCode, b, fmt.Errorf("status %d: %.200s", res.StatusCode, b)
	}
	return res.StatusCode, b, nil
}
