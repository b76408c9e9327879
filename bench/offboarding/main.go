// Command offboarding is the Go half of bench/offboarding.sh: how long a
// leaver takes to lose all four applications, measured as a user would.
// It starts a real slapd (syncrepl) and a real Samba AD DC, the fakes of
// the four applications (Ezeelogin, Netmaker, ezeep Blue, Allthenticate),
// and `dirsync run` as its own process, then, per trigger, for each trial:
// makes the change, waits until every application shows it, undoes it and
// waits again. It prints a Markdown table of p50/p95/max per trigger.
//
//	offboarding -dirsync ./dirsync -trials 20
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/internal/testsrv/samba"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
	"github.com/go-ldap/ldap/v3"
)

// The people of each trigger (prefix + two digits); all are in "staff",
// the scope of every application.
const (
	pLDAP    = "ldis" // OpenLDAP disable (ppolicy lock)
	pGroup   = "lgrp" // OpenLDAP removal from staff
	pMerged  = "merg" // OpenLDAP and the IdP (same email); SCIM active=false
	pIdP     = "idpo" // the IdP only; SCIM active=false
	pNotify  = "adno" // AD disable, change notifications
	pUSN     = "adus" // AD disable, USN polling at its default
	pExpiry  = "adex" // AD accountExpires passing
	pBurst   = "lbur" // OpenLDAP disable, many at once (prefix + four digits)
	pPull    = "pull" // a remote SCIM provider read by the scim_pull source; active=false
	emailDom = "@example.test"
)

var (
	ldapPrefixes = []string{pLDAP, pGroup, pMerged}
	adPrefixes   = []string{pNotify, pUSN, pExpiry}
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "offboarding:", err)
		os.Exit(1)
	}
}

type bench struct {
	dirsync string
	dir     string
	trials  int
	burst   int
	timeout time.Duration
	secrets map[string]string
	slapd   *slapd.Server
	ldapCfg *slapd.Config
	dc      *samba.Server
	ezState string
	nm      *netmakerfake.Server
	ez      *ezeepfake.Server
	ezGroup string
	at      *allthenticatefake.Server
	listen  string
	scimIDs map[string]string // username → SCIM id
	// The remote SCIM provider (dirsync's own SCIM server as its own
	// process) read by the scim_pull source; its ids by username.
	scimserve  string
	pullPoll   time.Duration
	remote     string
	remoteIDs  map[string]string
	remoteProc *exec.Cmd
	daemon     *exec.Cmd
	daemonCh   chan error
	log        io.Writer
}

func run() error {
	b := &bench{secrets: map[string]string{}, scimIDs: map[string]string{}, remoteIDs: map[string]string{}, log: os.Stderr}
	flag.StringVar(&b.scimserve, "scimserve", "", "the scimserve binary: a remote SCIM provider for the scim-pull row (empty: no such row)")
	flag.DurationVar(&b.pullPoll, "pull-poll", 500*time.Millisecond, "the scim_pull source's poll_interval")
	flag.StringVar(&b.dirsync, "dirsync", "", "the dirsync binary")
	flag.IntVar(&b.trials, "trials", 20, "trials per trigger")
	flag.IntVar(&b.burst, "burst", 1000, "people disabled at once in the burst row (0: no burst row)")
	flag.DurationVar(&b.timeout, "timeout", 20*time.Second, "a trial's limit")
	only := flag.String("triggers", "", "comma-separated trigger names (default all)")
	flag.Parse()
	if b.dirsync == "" || b.trials < 1 || b.trials > 99 {
		return errors.New("usage: offboarding -dirsync PATH [-trials 1..99] [-burst N] [-timeout D] [-triggers a,b]")
	}
	dir, err := os.MkdirTemp("", "dirsync-offboarding-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b.dir = dir
	for _, k := range []string{"LDAP_PW", "SCIM_TOKEN", "EZEELOGIN_SECRET", "EZEEP_SECRET", "ALLTHENTICATE_KEY"} {
		b.secrets["BENCH_"+k] = fmt.Sprintf("bench-%s-%d", strings.ToLower(k), time.Now().UnixNano())
	}
	if err := b.startDirectories(); err != nil {
		return err
	}
	defer b.slapd.Stop()
	defer b.dc.Stop()
	if err := b.startApps(); err != nil {
		return err
	}
	defer b.nm.Close()
	defer b.ez.Close()
	defer b.at.Close()
	if b.scimserve != "" {
		if err := b.startRemote(); err != nil {
			return err
		}
		defer func() { _ = b.remoteProc.Process.Kill(); _ = b.remoteProc.Wait() }()
	}

	type trigger struct {
		name, label, prefix, adMode string
		off, on                     func(name string) error
		expiry                      bool
		// jitter: a random wait before each change, so changes do not
		// fall in step with a poll (each trial ends right after one).
		jitter time.Duration
	}
	triggers := []trigger{
		{name: "ldap-disable", label: "OpenLDAP disable (syncrepl)", prefix: pLDAP, adMode: "notify", off: b.ldapLock(true), on: b.ldapLock(false)},
		{name: "scim-idp-only", label: "IdP SCIM push `active=false`, person known only to the IdP", prefix: pIdP, adMode: "notify", off: b.scimActive(false), on: b.scimActive(true)},
		{name: "scim-merged", label: "IdP SCIM push `active=false` for a person also in the directory (merged by email)", prefix: pMerged, adMode: "notify", off: b.scimActive(false), on: b.scimActive(true)},
		{name: "ldap-group-removal", label: "OpenLDAP removal from the scope group (syncrepl)", prefix: pGroup, adMode: "notify", off: b.ldapStaff(false), on: b.ldapStaff(true)},
		{name: "ad-notify-disable", label: "Active Directory disable, change notifications", prefix: pNotify, adMode: "notify", off: b.adDisable(true), on: b.adDisable(false)},
		{name: "ad-expiry", label: "Active Directory `accountExpires` passing (set 3 s ahead)", prefix: pExpiry, adMode: "notify", expiry: true, on: b.adExpires(time.Time{})},
		{name: "scim-pull", label: fmt.Sprintf("SCIM provider `active=false`, read by the scim_pull source's lastModified poll (poll_interval %v)", b.pullPoll), prefix: pPull, adMode: "notify", off: b.remoteActive(false), on: b.remoteActive(true)},
		{name: "ad-usn-disable", label: "Active Directory disable, USN polling at the default interval", prefix: pUSN, adMode: "usn", off: b.adDisable(true), on: b.adDisable(false), jitter: 4 * time.Second},
	}
	var rows []string
	mode := ""
	defer b.stopDaemon()
	for _, tr := range triggers {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), tr.name) {
			continue
		}
		if tr.prefix == pPull && b.scimserve == "" {
			continue
		}
		if tr.adMode != mode {
			b.stopDaemon()
			if err := b.startDaemon(tr.adMode); err != nil {
				return err
			}
			mode = tr.adMode
		}
		fmt.Fprintf(b.log, "== %s: %d trials\n", tr.name, b.trials)
		var off, on []time.Duration
		offMiss, onMiss := 0, 0
		for i := 0; i < b.trials; i++ {
			name := fmt.Sprintf("%s%02d", tr.prefix, i)
			b.jitter(tr.jitter)
			var start time.Time
			if tr.expiry {
				start = time.Now().Add(3 * time.Second).Truncate(time.Second)
				if err := b.adExpires(start)(name); err != nil {
					return err
				}
			} else {
				start = time.Now()
				if err := tr.off(name); err != nil {
					return err
				}
			}
			d, ok := b.waitAll(name, false, start)
			if ok {
				off = append(off, d)
			} else {
				offMiss++
			}
			b.jitter(tr.jitter)
			start = time.Now()
			if err := tr.on(name); err != nil {
				return err
			}
			d, ok = b.waitAll(name, true, start)
			if ok {
				on = append(on, d)
			} else {
				onMiss++
			}
			fmt.Fprintf(b.log, "   %s: off %v, on %v\n", name, last(off, offMiss), last(on, onMiss))
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s |", tr.label, stats(off, offMiss, b.timeout), stats(on, onMiss, b.timeout)))
	}
	if b.burst > 0 && (*only == "" || slices.Contains(strings.Split(*only, ","), "burst")) {
		if mode != "notify" {
			b.stopDaemon()
			if err := b.startDaemon("notify"); err != nil {
				return err
			}
		}
		fmt.Fprintf(b.log, "== burst: %d people disabled at once\n", b.burst)
		off, err := b.burstRow(false)
		if err != nil {
			return err
		}
		on, err := b.burstRow(true)
		if err != nil {
			return err
		}
		rows = append(rows, fmt.Sprintf("| Burst: %d people disabled at once in OpenLDAP (syncrepl), 4 connections | %s | %s |", b.burst, off, on))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("offboarding benchmark: %d trials per trigger, `dirsync run` as a process, %d cores, load average %s\n\n",
		b.trials, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Println("| trigger | all four applications suspended | all four restored (re-enable) |")
	fmt.Println("|---|---|---|")
	for _, r := range rows {
		fmt.Println(r)
	}
	return nil
}

func (b *bench) jitter(d time.Duration) {
	if d > 0 {
		time.Sleep(time.Duration(rand.Int64N(int64(d))))
	}
}

func last(ds []time.Duration, miss int) string {
	if len(ds) == 0 {
		return fmt.Sprintf("- (%d timeouts)", miss)
	}
	return ds[len(ds)-1].Round(time.Millisecond).String()
}

// stats is "p50 X, p95 Y, max Z" (and how many trials timed out).
func stats(ds []time.Duration, miss int, limit time.Duration) string {
	if len(ds) == 0 {
		return fmt.Sprintf("never within %v (%d of %d)", limit, miss, miss)
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds)-1)+0.5))] }
	f := func(d time.Duration) string {
		if d < time.Second {
			return fmt.Sprintf("%d ms", d.Milliseconds())
		}
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	s := fmt.Sprintf("p50 %s, p95 %s, max %s", f(q(0.5)), f(q(0.95)), f(ds[len(ds)-1]))
	if miss > 0 {
		s += fmt.Sprintf("; %d of %d not within %v", miss, len(ds)+miss, limit)
	}
	return s
}

// ---- directories ----

func (b *bench) startDirectories() error {
	fmt.Fprintln(b.log, "== starting slapd and a Samba AD DC (provisioning takes a few seconds)")
	cfg := &slapd.Config{Suffix: slapd.DefaultSuffix}
	var ldif strings.Builder
	var members []string
	for _, p := range ldapPrefixes {
		for i := 0; i < b.trials; i++ {
			name := fmt.Sprintf("%s%02d", p, i)
			ldif.WriteString(cfg.User(name))
			members = append(members, cfg.UserDN(name))
		}
	}
	for _, name := range b.burstNames() {
		ldif.WriteString(cfg.User(name))
		members = append(members, cfg.UserDN(name))
	}
	ldif.WriteString(cfg.Group("staff", members...))
	c, err := slapd.WriteConfig(filepath.Join(b.dir, "slapd"), slapd.Options{LDIF: ldif.String()})
	if err != nil {
		return err
	}
	b.ldapCfg = c
	if b.slapd, err = slapd.Launch(c, freePort(), 0); err != nil {
		return err
	}
	var ad strings.Builder
	for _, ou := range []string{"Staff", "Groups"} {
		fmt.Fprintf(&ad, "dn: OU=%s,{BASE}\nobjectClass: organizationalUnit\nou: %s\n\n", ou, ou)
	}
	var adMembers []string
	for _, p := range adPrefixes {
		for i := 0; i < b.trials; i++ {
			name := fmt.Sprintf("%s%02d", p, i)
			fmt.Fprintf(&ad, "dn: CN=%s,OU=Staff,{BASE}\nobjectClass: user\nsAMAccountName: %s\nmail: %s%s\ngivenName: %s\nsn: Test\nuserAccountControl: 512\npwdLastSet: -1\n\n",
				name, name, name, emailDom, name)
			adMembers = append(adMembers, "member: CN="+name+",OU=Staff,{BASE}")
		}
	}
	fmt.Fprintf(&ad, "dn: CN=staff,OU=Groups,{BASE}\nobjectClass: group\nsAMAccountName: staff\n%s\n\n", strings.Join(adMembers, "\n"))
	base := samba.NewTemplate()
	defer base.Close() // the running copy is in b.dir
	tmpl := base.With(func(dir string) error { return samba.AddOffline(dir, ad.String()) })
	if b.dc, err = tmpl.Launch(filepath.Join(b.dir, "samba")); err != nil {
		return err
	}
	return nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// allNames is everyone the applications know.
func (b *bench) allNames() []string {
	var out []string
	prefixes := append(append(slices.Clone(ldapPrefixes), adPrefixes...), pIdP)
	if b.scimserve != "" {
		prefixes = append(prefixes, pPull)
	}
	for _, p := range prefixes {
		for i := 0; i < b.trials; i++ {
			out = append(out, fmt.Sprintf("%s%02d", p, i))
		}
	}
	return append(out, b.burstNames()...)
}

// burstNames are the people of the burst row.
func (b *bench) burstNames() []string {
	out := make([]string, b.burst)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", pBurst, i)
	}
	return out
}

// burstRow disables (or re-enables) every burst person at once, from four
// connections, and reports the time from the first write until the last
// person shows it in all four applications, and how many runs the daemon
// made for it.
func (b *bench) burstRow(access bool) (string, error) {
	names := b.burstNames()
	runs0, err := b.runsTotal()
	if err != nil {
		return "", err
	}
	start := time.Now()
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			c, err := b.ldapConn()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := w; i < len(names); i += 4 {
				req := ldap.NewModifyRequest(b.ldapCfg.UserDN(names[i]), nil)
				if access {
					req.Delete("pwdAccountLockedTime", nil)
				} else {
					req.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
				}
				if err := c.Modify(req); err != nil {
					errs <- fmt.Errorf("modify %s: %w", names[i], err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			return "", err
		}
	}
	written := time.Since(start)
	// The slowest application's throughput sets the pace here (the
	// Ezeelogin fake starts a process per call), not the trigger.
	limit := max(b.timeout, 10*time.Minute)
	deadline := start.Add(limit)
	left := slices.Clone(names)
	var appDone [4]time.Duration // when each application showed everyone
	for len(left) > 0 && time.Now().Before(deadline) {
		all := b.accessAll()
		for app := range appDone {
			if appDone[app] == 0 && !slices.ContainsFunc(names, func(n string) bool { return all[n][app] != b2i(access) }) {
				appDone[app] = time.Since(start)
			}
		}
		left = slices.DeleteFunc(left, func(n string) bool { return all[n] == [4]int8{b2i(access), b2i(access), b2i(access), b2i(access)} })
		if len(left) > 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	took := time.Since(start)
	// The last run may still be recording when the applications show it.
	time.Sleep(500 * time.Millisecond)
	runs1, err := b.runsTotal()
	if err != nil {
		return "", err
	}
	var per []string
	for app, name := range []string{"ezeelogin", "netmaker", "ezeep", "allthenticate"} {
		if appDone[app] > 0 {
			per = append(per, fmt.Sprintf("%s %s", name, appDone[app].Round(100*time.Millisecond)))
		}
	}
	s := fmt.Sprintf("%d runs; last person everywhere after %s (writes took %s; each application done: %s)", int(runs1-runs0),
		took.Round(time.Millisecond), written.Round(time.Millisecond), strings.Join(per, ", "))
	if len(left) > 0 {
		s += fmt.Sprintf("; %d of %d not within %v", len(left), len(names), limit)
	}
	fmt.Fprintf(b.log, "   access=%v: %s\n", access, s)
	return s, nil
}

func b2i(v bool) int8 {
	if v {
		return 1
	}
	return 0
}

// accessAll is access for everyone, reading each application once.
func (b *bench) accessAll() map[string][4]int8 {
	out := map[string][4]int8{}
	get := func(n string) [4]int8 {
		if v, ok := out[n]; ok {
			return v
		}
		return [4]int8{-1, -1, -1, -1}
	}
	if st, err := ezeeloginfake.Load(b.ezState); err == nil {
		for n, u := range st.Users {
			v := get(n)
			v[0] = map[bool]int8{true: 0, false: 1}[u.Suspended]
			out[n] = v
		}
	}
	for _, u := range b.nm.Users() {
		v := get(u.Username)
		v[1] = map[bool]int8{true: 0, false: 1}[u.AccountDisabled]
		out[u.Username] = v
	}
	for _, n := range b.burstNames() {
		v := get(n)
		if u, ok := b.ez.UserByEmail(n + emailDom); ok {
			v[2] = map[bool]int8{true: 1, false: 0}[slices.Contains(u.Groups, b.ezGroup)]
		}
		if u, ok := b.at.UserByEmail(n + emailDom); ok {
			v[3] = map[bool]int8{true: 0, false: 1}[u.Suspended]
		}
		out[n] = v
	}
	return out
}

// runsTotal is the daemon's dirsync_runs_total, summed over triggers.
func (b *bench) runsTotal() (float64, error) {
	resp, err := http.Get("http://" + b.listen + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var n float64
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "dirsync_runs_total{") {
			var v float64
			if _, err := fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v); err == nil {
				n += v
			}
		}
	}
	return n, nil
}

func (b *bench) ldapConn() (*ldap.Conn, error) {
	c, err := ldap.DialURL(b.slapd.URL)
	if err != nil {
		return nil, err
	}
	return c, c.Bind(b.ldapCfg.AdminDN, slapd.AdminPassword)
}

func (b *bench) adConn() (*ldap.Conn, error) {
	c, err := ldap.DialURL(b.dc.URL)
	if err != nil {
		return nil, err
	}
	return c, c.Bind(samba.AdminDN, samba.AdminPassword)
}

func modify(conn func() (*ldap.Conn, error), req *ldap.ModifyRequest) error {
	c, err := conn()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Modify(req); err != nil {
		return fmt.Errorf("modify %s: %w", req.DN, err)
	}
	return nil
}

func (b *bench) ldapLock(lock bool) func(string) error {
	return func(name string) error {
		req := ldap.NewModifyRequest(b.ldapCfg.UserDN(name), nil)
		if lock {
			req.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
		} else {
			req.Delete("pwdAccountLockedTime", nil)
		}
		return modify(b.ldapConn, req)
	}
}

func (b *bench) ldapStaff(member bool) func(string) error {
	return func(name string) error {
		req := ldap.NewModifyRequest("cn=staff,"+b.ldapCfg.GroupsDN(), nil)
		if member {
			req.Add("member", []string{b.ldapCfg.UserDN(name)})
		} else {
			req.Delete("member", []string{b.ldapCfg.UserDN(name)})
		}
		return modify(b.ldapConn, req)
	}
}

func adDN(name string) string { return "CN=" + name + ",OU=Staff," + samba.BaseDN }

func (b *bench) adDisable(disable bool) func(string) error {
	return func(name string) error {
		uac := "512"
		if disable {
			uac = "514"
		}
		req := ldap.NewModifyRequest(adDN(name), nil)
		req.Replace("userAccountControl", []string{uac})
		return modify(b.adConn, req)
	}
}

// adExpires sets accountExpires to t (the zero time: never).
func (b *bench) adExpires(t time.Time) func(string) error {
	return func(name string) error {
		v := "0"
		if !t.IsZero() {
			v = fmt.Sprint(t.UnixNano()/100 + 116444736000000000)
		}
		req := ldap.NewModifyRequest(adDN(name), nil)
		req.Replace("accountExpires", []string{v})
		return modify(b.adConn, req)
	}
}

// ---- the IdP ----

func (b *bench) scim(method, path, body string) (map[string]any, error) {
	return scimRequest("http://"+b.listen+"/scim/idp/v2", b.secrets["BENCH_SCIM_TOKEN"], method, path, body)
}

// scimRequest sends one SCIM request with a bearer token and decodes the
// answer; a non-2xx status is an error.
func scimRequest(base, token, method, path, body string) (map[string]any, error) {
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("scim %s %s%s: %s: %s", method, base, path, resp.Status, raw)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m, nil
}

func (b *bench) pushIdP() error {
	var members []string
	for _, p := range []string{pIdP, pMerged} {
		for i := 0; i < b.trials; i++ {
			name := fmt.Sprintf("%s%02d", p, i)
			m, err := b.scim("POST", "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"externalId":%q,
"name":{"givenName":%q,"familyName":"Test"},"emails":[{"value":"%s%s","type":"work","primary":true}],"active":true}`, name, name, name, name, emailDom))
			if err != nil {
				return err
			}
			id, _ := m["id"].(string)
			b.scimIDs[name] = id
			if p == pIdP {
				members = append(members, fmt.Sprintf(`{"value":%q}`, id))
			}
		}
	}
	_, err := b.scim("POST", "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"staff","members":[%s]}`, strings.Join(members, ",")))
	return err
}

func (b *bench) scimActive(active bool) func(string) error {
	return func(name string) error {
		_, err := b.scim("PATCH", "/Users/"+b.scimIDs[name], fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":%t}]}`, active))
		return err
	}
}

// ---- the remote SCIM provider (scim_pull) ----

// startRemote starts scimserve as its own process and creates the pull
// people there, all in "staff".
func (b *bench) startRemote() error {
	b.secrets["BENCH_REMOTE_TOKEN"] = fmt.Sprintf("bench-remote-%d", time.Now().UnixNano())
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd := exec.Command(b.scimserve, "-listen", addr, "-source", "hr")
	cmd.Env = append(os.Environ(), "SCIM_TOKEN="+b.secrets["BENCH_REMOTE_TOKEN"])
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start scimserve: %w", err)
	}
	b.remoteProc = cmd
	b.remote = "http://" + addr + "/scim/hr/v2"
	for i := 0; ; i++ {
		if _, err := b.remoteCall("GET", "/ServiceProviderConfig", ""); err == nil {
			break
		} else if i > 200 {
			return fmt.Errorf("scimserve not ready: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var members []string
	for i := 0; i < b.trials; i++ {
		name := fmt.Sprintf("%s%02d", pPull, i)
		m, err := b.remoteCall("POST", "/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"externalId":%q,
"name":{"givenName":%q,"familyName":"Test"},"emails":[{"value":"%s%s","type":"work","primary":true}],"active":true}`, name, name, name, name, emailDom))
		if err != nil {
			return err
		}
		id, _ := m["id"].(string)
		b.remoteIDs[name] = id
		members = append(members, fmt.Sprintf(`{"value":%q}`, id))
	}
	_, err := b.remoteCall("POST", "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"staff","members":[%s]}`, strings.Join(members, ",")))
	return err
}

func (b *bench) remoteCall(method, path, body string) (map[string]any, error) {
	return scimRequest(b.remote, b.secrets["BENCH_REMOTE_TOKEN"], method, path, body)
}

func (b *bench) remoteActive(active bool) func(string) error {
	return func(name string) error {
		_, err := b.remoteCall("PATCH", "/Users/"+b.remoteIDs[name], fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":%t}]}`, active))
		return err
	}
}

// pullSource is the scim_pull source's config entry ("" without a remote).
func (b *bench) pullSource() string {
	if b.scimserve == "" {
		return ""
	}
	return fmt.Sprintf("  - name: hr-pull\n    type: scim_pull\n    url: %s\n    token: ${BENCH_REMOTE_TOKEN}\n    poll_interval: %s\n    rate_limit: 1000\n", b.remote, b.pullPoll)
}

// ---- the applications ----

func (b *bench) startApps() error {
	names := b.allNames()
	b.ezState = filepath.Join(b.dir, "ezeelogin.json")
	if err := ezeeloginfake.Create(b.ezState, ezeeloginfake.Options{Secret: b.secrets["BENCH_EZEELOGIN_SECRET"], Users: names}); err != nil {
		return err
	}
	b.nm = netmakerfake.New(netmakerfake.Options{})
	nmURL, err := b.nm.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	b.secrets["BENCH_NETMAKER_TOKEN"] = b.nm.AdminToken()
	b.secrets["BENCH_NETMAKER_URL"] = nmURL
	b.ez = ezeepfake.New(ezeepfake.Options{ClientID: "bench", ClientSecret: b.secrets["BENCH_EZEEP_SECRET"]})
	ezURL, err := b.ez.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	b.secrets["BENCH_EZEEP_URL"] = ezURL
	b.ezGroup = b.ez.AddGroup("printing-staff")
	b.at = allthenticatefake.New(allthenticatefake.Options{APIKey: b.secrets["BENCH_ALLTHENTICATE_KEY"]})
	atURL, err := b.at.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	b.secrets["BENCH_ALLTHENTICATE_URL"] = atURL
	for _, n := range names {
		b.ez.AddUser(ezeepfake.User{Email: n + emailDom, FirstName: n, LastName: "Test", Role: "user", IsVerified: true})
		b.at.AddUser(allthenticatefake.User{Email: n + emailDom, Username: n, FirstName: n, LastName: "Test", Tag: "USER", Rank: "REGULAR"})
	}
	return nil
}

// state reports, per application, whether name has access (true), has
// lost it (false), or is unknown there yet (missing).
func (b *bench) access(name string) [4]int8 {
	const yes, no, missing = 1, 0, -1
	var out [4]int8
	out[0] = missing
	if u, ok, err := ezeeloginfake.GetUser(b.ezState, name); err == nil && ok {
		out[0] = map[bool]int8{true: no, false: yes}[u.Suspended]
	}
	out[1] = missing
	for _, u := range b.nm.Users() {
		if u.Username == name {
			out[1] = map[bool]int8{true: no, false: yes}[u.AccountDisabled]
		}
	}
	out[2] = missing
	if u, ok := b.ez.UserByEmail(name + emailDom); ok {
		out[2] = map[bool]int8{true: yes, false: no}[slices.Contains(u.Groups, b.ezGroup)]
	}
	out[3] = missing
	if u, ok := b.at.UserByEmail(name + emailDom); ok {
		out[3] = map[bool]int8{true: no, false: yes}[u.Suspended]
	}
	return out
}

// waitAll waits until every application shows name with access (or
// without), and returns the time since start.
func (b *bench) waitAll(name string, access bool, start time.Time) (time.Duration, bool) {
	deadline := start.Add(b.timeout)
	if d := time.Until(start); d > 0 {
		deadline = deadline.Add(d) // an expiry still ahead
	}
	return b.waitUntil(name, access, start, deadline)
}

func (b *bench) waitUntil(name string, access bool, start, deadline time.Time) (time.Duration, bool) {
	want := int8(0)
	if access {
		want = 1
	}
	for time.Now().Before(deadline) {
		got := b.access(name)
		if got == [4]int8{want, want, want, want} {
			return time.Since(start), true
		}
		time.Sleep(3 * time.Millisecond)
	}
	fmt.Fprintf(b.log, "   %s: not every application shows access=%v in time (ezeelogin, netmaker, ezeep, allthenticate: %v)\n", name, access, b.access(name))
	return 0, false
}

// ---- dirsync ----

func (b *bench) config(adMode string) string {
	target := func(name, body string) string {
		return fmt.Sprintf("  - name: %s\n%s    scope: [staff]\n    rate_limit: 1000\n    concurrency: 4\n", name, body)
	}
	return fmt.Sprintf(`log: {level: info, format: json}
state: {backend: embedded, path: %q}
http: {listen: %q}
schedule: {full: "@hourly", incremental: 1s}
safety: {max_suspend: 1000, max_suspend_percent: 100, max_delete: 1000, max_delete_percent: 100}
sources:
  - name: directory
    type: ldap
    urls: [%q]
    flavour: openldap
    bind_dn: %q
    bind_password: ${BENCH_LDAP_PW}
    users: {base_dn: %q}
    groups: {base_dn: %q}
    incremental: {mode: syncrepl}
  - name: ad
    type: ldap
    urls: [%q]
    flavour: active_directory
    bind_dn: %q
    bind_password: ${BENCH_AD_PW}
    users: {base_dn: "OU=Staff,%s"}
    groups: {base_dn: "OU=Groups,%s"}
    incremental: {mode: %s}
  - name: idp
    type: scim
    tokens: ["${BENCH_SCIM_TOKEN}"]
%s
targets:
%s%s%s%s`, filepath.Join(b.dir, "state.db"), b.listen, b.slapd.URL, b.ldapCfg.AdminDN, b.ldapCfg.PeopleDN(), b.ldapCfg.GroupsDN(),
		b.dc.URL, samba.AdminDN, samba.BaseDN, samba.BaseDN, adMode, b.pullSource(),
		target("ssh-gateway", fmt.Sprintf("    type: ezeelogin\n    api_url: https://gateway.bench.test/ezlogin\n    secret: ${BENCH_EZEELOGIN_SECRET}\n    version: \"7.41.0\"\n    command: [%q, __ezwapi-fake, --state, %q]\n", b.dirsync, b.ezState)),
		target("vpn", "    type: netmaker\n    base_url: ${BENCH_NETMAKER_URL}\n    token: ${BENCH_NETMAKER_TOKEN}\n    default_role: platform-user\n"),
		target("printing", "    type: ezeep\n    client_id: bench\n    client_secret: ${BENCH_EZEEP_SECRET}\n    account_url: ${BENCH_EZEEP_URL}\n    printing_url: ${BENCH_EZEEP_URL}/printing/v1\n    token_url: ${BENCH_EZEEP_URL}/oauth/access_token/\n"+
			fmt.Sprintf("    group_ids: {printing-staff: %s}\n    default_role: user\n    groups: [{group: staff, as: printing-staff}]\n", b.ezGroup)),
		target("door-access", "    type: allthenticate\n    base_url: ${BENCH_ALLTHENTICATE_URL}\n    api_key: ${BENCH_ALLTHENTICATE_KEY}\n    default_role: REGULAR\n"),
	)
}

func (b *bench) startDaemon(adMode string) error {
	if b.listen == "" {
		b.listen = fmt.Sprintf("127.0.0.1:%d", freePort())
	}
	b.secrets["BENCH_LDAP_PW"] = slapd.AdminPassword
	b.secrets["BENCH_AD_PW"] = samba.AdminPassword
	cfg := filepath.Join(b.dir, "dirsync-"+adMode+".yaml")
	if err := os.WriteFile(cfg, []byte(b.config(adMode)), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(b.dir, "dirsync-"+adMode+".log"))
	if err != nil {
		return err
	}
	fmt.Fprintf(b.log, "== starting `dirsync run` (AD incremental mode %s)\n", adMode)
	cmd := exec.Command(b.dirsync, "run", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	for k, v := range b.secrets {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	b.daemon, b.daemonCh = cmd, make(chan error, 1)
	go func() { b.daemonCh <- cmd.Wait(); logf.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for {
		resp, err := http.Get("http://" + b.listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-b.daemonCh:
			return fmt.Errorf("dirsync run exited (%v): see %s", err, logf.Name())
		case <-ctx.Done():
			return fmt.Errorf("dirsync run not ready after 120s: see %s", logf.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if len(b.scimIDs) == 0 {
		if err := b.pushIdP(); err != nil {
			return err
		}
	}
	// Everyone provisioned everywhere before the first trial.
	for _, n := range b.allNames() {
		if _, ok := b.waitUntil(n, true, time.Now(), time.Now().Add(120*time.Second)); !ok {
			return fmt.Errorf("%s never provisioned in all four applications: see %s", n, logf.Name())
		}
	}
	return nil
}

func (b *bench) stopDaemon() {
	if b.daemon == nil {
		return
	}
	_ = b.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.daemonCh:
	case <-time.After(10 * time.Second):
		_ = b.daemon.Process.Kill()
		<-b.daemonCh
	}
	b.daemon = nil
}
