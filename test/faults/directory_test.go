package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
)

// tripProxy forwards TCP connections to a server and, when armed, calls
// trip once after the server has sent that many bytes: the tests use it to
// kill slapd in the middle of a search.
type tripProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Int64 // bytes from the server after which to trip; 0: off
	sent   atomic.Int64
	mu     sync.Mutex
	trip   func()
}

func startProxy(t *testing.T, target string) *tripProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tripProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *tripProxy) addr() string { return p.ln.Addr().String() }

// arm makes the proxy call trip once the server has sent n more bytes.
func (p *tripProxy) arm(n int64, trip func()) {
	p.mu.Lock()
	p.trip = trip
	p.mu.Unlock()
	p.sent.Store(0)
	p.armed.Store(n)
}

func (p *tripProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(s, c); s.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			total := p.sent.Add(int64(n))
			if a := p.armed.Load(); a > 0 && total >= a && p.armed.CompareAndSwap(a, 0) {
				p.mu.Lock()
				trip := p.trip
				p.mu.Unlock()
				trip()
			}
		}
		if err != nil {
			return
		}
	}
}

// parseLines reads JSON log lines from a CLI's stderr.
func parseLines(text string) []logLine {
	var out []logLine
	for _, line := range strings.Split(text, "\n") {
		var l logLine
		if json.Unmarshal([]byte(line), &l) == nil && l != nil {
			out = append(out, l)
		}
	}
	return out
}

// directoryWorld is slapd with bigGroup users in the group vpn-users, a
// proxy in front of it, Netmaker, and two configs: one reading as
// cn=dirsync, one as cn=limited (size limit 500).
type directoryWorld struct {
	h        *harness
	srv      *slapd.Server
	proxy    *tripProxy
	nm       *netmakerApp
	cfg      string
	limited  string
	n        int
	members  string // the LDIF member lines of vpn-users
	services string
}

func newDirectoryWorld(t *testing.T, n int) *directoryWorld {
	h := newHarness(t)
	h.startRedis(false)
	w := &directoryWorld{h: h, n: n}
	c := &slapd.Config{Suffix: slapd.DefaultSuffix}
	w.services = "ou=services," + c.Suffix
	bindPW := h.secret("ldap bind password", "LDAP_BIND_PASSWORD")
	limitedPW := h.secret("ldap bind password (limited)", "LDAP_LIMITED_PASSWORD")
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: services\n\n", w.services)
	for _, sa := range []struct{ cn, pw string }{{"dirsync", bindPW}, {"limited", limitedPW}} {
		fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: %s\nuserPassword: %s\n\n", sa.cn, w.services, sa.cn, sa.pw)
	}
	var members strings.Builder
	for i := range n {
		b.WriteString(c.User(fmt.Sprintf("u%04d", i)))
		fmt.Fprintf(&members, "member: %s\n", c.UserDN(fmt.Sprintf("u%04d", i)))
	}
	w.members = members.String()
	fmt.Fprintf(&b, "dn: %s\nobjectClass: groupOfNames\ncn: vpn-users\n%s\n", c.GroupDN("vpn-users"), w.members)
	w.srv = slapd.Start(t, slapd.Options{LDIF: b.String(), Limits: []string{
		fmt.Sprintf(`dn.exact="cn=limited,%s" size=500`, w.services),
	}})
	w.proxy = startProxy(t, fmt.Sprintf("127.0.0.1:%d", w.srv.Port()))
	w.nm = h.newNetmaker(netmakerfake.Options{}, "NETMAKER_TOKEN", "developers", "operations")
	mk := func(name, bindDN, pwEnv string) string {
		return h.writeFile(name, []byte(h.stateYAML("5s")+fmt.Sprintf(`log: {level: info}
http: {listen: %q}
schedule: {full: "@daily"}
sources:
  - name: corp
    type: ldap
    urls: ["ldap://%s"]
    bind_dn: %q
    bind_password: ${%s}
    page_size: 200
    request_timeout: 20s
    users: {base_dn: %q}
    groups: {base_dn: %q}
    incremental: {mode: none}
targets:
%s`, listenAddr(t), w.proxy.addr(), bindDN, pwEnv, w.srv.PeopleDN(), w.srv.GroupsDN(),
			netmakerYAML("vpn", w.nm.url, "NETMAKER_TOKEN", "    scope: [vpn-users]\n    rate_limit: 1000\n    burst: 50\n    concurrency: 8\n"))))
	}
	w.cfg = mk("dirsync.yaml", "cn=dirsync,"+w.services, "LDAP_BIND_PASSWORD")
	w.limited = mk("limited.yaml", "cn=limited,"+w.services, "LDAP_LIMITED_PASSWORD")
	return w
}

// sync runs `dirsync sync` and returns its exit code, decisions and the
// Netmaker writes it caused.
func (w *directoryWorld) sync(cfg string) (int, []logLine, []httpCall, string) {
	cut := len(w.nm.rec.Calls())
	code, _, stderr := w.h.cli(cfg, "sync")
	var ds []logLine
	for _, l := range parseLines(stderr) {
		if l.decision() {
			ds = append(ds, l)
		}
	}
	var writes []httpCall
	for _, c := range w.nm.rec.Calls()[cut:] {
		if kind, _ := nmWrite(c); kind != "" {
			writes = append(writes, c)
		}
	}
	return code, ds, writes, stderr
}

// lock returns the LDIF that locks (locked) or unlocks a user (ppolicy).
func (w *directoryWorld) lock(uid string, locked bool) string {
	if locked {
		return fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n", w.srv.UserDN(uid))
	}
	return fmt.Sprintf("dn: %s\nchangetype: modify\ndelete: pwdAccountLockedTime\n", w.srv.UserDN(uid))
}

// TestDirectoryFaults is item 4. A directory of 1,600 people, all in
// vpn-users (the Netmaker scope), is read through faults: slapd killed in
// the middle of the pull, a size limit, a base DN that suddenly returns
// nothing (moved away; then an empty one in its place), and vpn-users read
// as empty. Each time: no Netmaker write at all, a decision that says why,
// and the next healthy run applies a real change (and nothing else).
func TestDirectoryFaults(t *testing.T) {
	const n = 1600
	w := newDirectoryWorld(t, n)
	h := w.h
	code, _, writes, stderr := w.sync(w.cfg)
	if code != 0 || len(writes) != n {
		t.Fatalf("first sync: exit %d, %d Netmaker writes (want %d creates):\n%s", code, len(writes), n, tail(stderr, 3000))
	}
	var figs []string
	// healthy runs the next sync with one real change (user uid locked or
	// unlocked), and wants exactly that one write.
	healthy := func(t *testing.T, uid string, locked bool) {
		t.Helper()
		w.srv.Modify(t, w.lock(uid, locked))
		code, ds, writes, stderr := w.sync(w.cfg)
		want := "disable"
		if !locked {
			want = "enable"
		}
		if code != 0 || len(writes) != 1 {
			t.Fatalf("healthy run: exit %d, %d writes (want one %s of %s):\n%s", code, len(writes), want, uid, tail(stderr, 3000))
		}
		if kind, user := nmWrite(writes[0]); kind != want || user != uid {
			t.Fatalf("healthy run wrote %s %s, want %s %s", kind, user, want, uid)
		}
		if c := countBy(ds, func(l logLine) string { return l.str("outcome") }); c["applied"] != 1 {
			t.Errorf("healthy run decisions: %s", summary(c))
		}
	}
	// refused checks a faulty run: the exit code, no write, and a decision
	// for the target whose reason and error say why.
	refused := func(t *testing.T, what string, code, wantCode int, ds []logLine, writes []httpCall, stderr string, why ...string) string {
		t.Helper()
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d", what, code, wantCode)
		}
		if len(writes) > 0 {
			t.Errorf("%s: %d Netmaker writes (first: %s %s), want none", what, len(writes), writes[0].Method, writes[0].Path)
		}
		for _, d := range ds {
			text := d.str("reason") + " " + d.str("error")
			ok := true
			for _, w := range why {
				ok = ok && strings.Contains(text, w)
			}
			if ok {
				t.Logf("%s: decision %s/%s %s: %s", what, d.str("target"), d.str("action"), d.str("outcome"), trim(text, 300))
				return trim(text, 160)
			}
		}
		t.Errorf("%s: no decision mentions %q; decisions: %v\n%s", what, why, ds, tail(stderr, 2000))
		return ""
	}

	t.Run("slapd killed mid-pull", func(t *testing.T) {
		w.proxy.arm(120<<10, w.srv.Kill) // about a quarter of the users
		code, ds, writes, stderr := w.sync(w.cfg)
		if w.srv.Running() {
			t.Fatal("the proxy never killed slapd: the pull was shorter than expected")
		}
		why := refused(t, "slapd killed", code, 1, ds, writes, stderr, "every source failed", "corp")
		figs = append(figs, "slapd killed mid-pull: exit 1, 0 writes, decision: "+why)
		w.srv.Restart(t)
		healthy(t, "u0007", true)
	})
	t.Run("size limit", func(t *testing.T) {
		code, ds, writes, stderr := w.sync(w.limited)
		why := refused(t, "size limit", code, 1, ds, writes, stderr, "Size Limit Exceeded")
		figs = append(figs, "size limit: exit 1, 0 writes, decision: "+why)
		healthy(t, "u0007", false)
	})
	t.Run("base DN moved away", func(t *testing.T) {
		w.srv.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modrdn\nnewrdn: ou=people-moved\ndeleteoldrdn: 1\n", w.srv.PeopleDN()))
		code, ds, writes, stderr := w.sync(w.cfg)
		why := refused(t, "base DN missing", code, 1, ds, writes, stderr, "No Such Object")
		figs = append(figs, "base DN gone: exit 1, 0 writes, decision: "+why)
		// Now an empty OU in its place: zero users.
		w.srv.Modify(t, fmt.Sprintf("dn: %s\nchangetype: add\nobjectClass: organizationalUnit\nou: people\n", w.srv.PeopleDN()))
		code, ds, writes, stderr = w.sync(w.cfg)
		why = refused(t, "base DN empty", code, 1, ds, writes, stderr, "zero users")
		figs = append(figs, "base DN empty: exit 1, 0 writes, decision: "+why)
		w.srv.Modify(t, fmt.Sprintf("dn: %s\nchangetype: delete\n", w.srv.PeopleDN()))
		w.srv.Modify(t, fmt.Sprintf("dn: ou=people-moved,%s\nchangetype: modrdn\nnewrdn: ou=people\ndeleteoldrdn: 1\n", w.srv.Suffix))
		healthy(t, "u0011", true)
	})
	t.Run("group read as empty", func(t *testing.T) {
		w.srv.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: member\nmember: %s\n", w.srv.GroupDN("vpn-users"), w.services))
		code, ds, writes, stderr := w.sync(w.cfg)
		held := 0
		for _, d := range ds {
			if d.str("outcome") == "held" && d.str("action") == "suspend" {
				held++
			}
		}
		why := refused(t, "group empty", code, 4, ds, writes, stderr, "held by the safety guard", "suspensions")
		if held != n-1 { // u0011 is already suspended
			t.Errorf("%d suspensions held, want %d", held, n-1)
		}
		figs = append(figs, fmt.Sprintf("vpn-users read as empty: exit 4 (held), 0 writes, %d suspensions held, decision: %s", held, why))
		// The directory is fixed: the group is whole again.
		var fix strings.Builder
		fmt.Fprintf(&fix, "dn: %s\nchangetype: modify\nreplace: member\n%s", w.srv.GroupDN("vpn-users"), w.members)
		w.srv.Modify(t, fix.String())
		healthy(t, "u0011", false)
	})
	if problems := checkLDAPNetmaker(w); len(problems) > 0 {
		t.Errorf("Netmaker at the end:\n%s", firstN(problems, 20))
	}
	h.cli(w.cfg, "decisions", "--output", "json", "--limit", "100")
	h.cli(w.cfg, "explain", "u0007")
	h.checkSecrets()
	result(t, "4 directory faults (1,600 users in the scope group)", 5, figs...)
}

// checkLDAPNetmaker: every user exists, enabled, nobody else was touched.
func checkLDAPNetmaker(w *directoryWorld) []string {
	var problems []string
	for i := range w.n {
		uid := fmt.Sprintf("u%04d", i)
		u, ok := w.nm.fake.User(uid)
		switch {
		case !ok:
			problems = append(problems, uid+": missing")
		case u.AccountDisabled:
			problems = append(problems, uid+": disabled")
		}
	}
	return problems
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
