package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/internal/testenv"
	"github.com/dirsync/dirsync/internal/testsrv/oidcprov"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
	"github.com/dirsync/dirsync/state"
)

const (
	testOIDCSecret = "oidc-Client-Secret-9f8e7d"
	testAdminToken = "admin-Token-For-Setup-0042"
	testSessionKey = "session-Key-0123456789abcdef0123456789"
)

// hookReceiver is a local webhook receiver that records the bodies it gets.
type hookReceiver struct {
	mu     stdsync.Mutex
	bodies []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	h.mu.Unlock()
}

func (h *hookReceiver) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies)
}

// consoleEnv is a daemon with the console on, an in-test IdP, a webhook
// receiver, a healthy source feeding target "app" (in memory, recording)
// and a failing source feeding target "ledger".
type consoleEnv struct {
	*env
	idp   *oidcprov.Provider
	base  string
	hooks *hookReceiver
	hook  string
	d     *daemon
	app   *memtarget.Target
	stop  func()
}

func startConsoleEnv(t *testing.T, users int) *consoleEnv {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "dirsync.yaml"), hr: filepath.Join(dir, "hr.json")}
	e.writeUsers(users, nil)
	ce := &consoleEnv{env: e, idp: oidcprov.Start(t, "dirsync", testOIDCSecret), hooks: &hookReceiver{}}
	hs := httptest.NewServer(ce.hooks)
	t.Cleanup(hs.Close)
	ce.hook = hs.URL + "/services/T0/B0/hookSecretPart77"
	port := testenv.FreePort(t)
	ce.base = fmt.Sprintf("http://localhost:%d/ui/", port)
	t.Setenv("TEST_REDIS_PASSWORD", knownSecret)
	t.Setenv("TEST_OIDC_SECRET", testOIDCSecret)
	t.Setenv("TEST_ADMIN_TOKEN", testAdminToken)
	t.Setenv("TEST_SESSION_KEY", testSessionKey)
	t.Setenv("TEST_WEBHOOK_URL", ce.hook)
	cfg := fmt.Sprintf(`log: {level: info}
state:
  backend: embedded
  path: %[1]s/state.db
  redis: {password: "${TEST_REDIS_PASSWORD}"}
http:
  listen: "127.0.0.1:%[2]d"
  console:
    enabled: true
    base_url: %[3]s
    admin_token: ${TEST_ADMIN_TOKEN}
    session_key: ${TEST_SESSION_KEY}
    oidc:
      issuer: %[4]s
      client_id: dirsync
      client_secret: ${TEST_OIDC_SECRET}
      viewers: [it-staff]
      approvers: [it-oncall]
notify:
  webhooks:
    - {name: ops, type: slack, url: "${TEST_WEBHOOK_URL}"}
schedule: {incremental: 0}
sources:
  - {name: hr, type: file, path: %[1]s/hr.json}
  - {name: payroll, type: file, path: %[1]s/payroll-export-missing.json}
targets:
  - {name: app, type: memory, sources: [hr], scope: [staff], rate_limit: 1000}
  - {name: ledger, type: memory, sources: [payroll]}
`, dir, port, ce.base, ce.idp.Issuer)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ce.boot()
	waitFor(t, func() bool { return len(ce.app.Calls()) >= users })
	return ce
}

// boot starts the daemon on the current configuration file; stop ends it.
func (ce *consoleEnv) boot() {
	t := ce.t
	c, err := loadConfig(ce.config)
	if err != nil {
		t.Fatal(err)
	}
	var logs safeBuffer
	a, err := newApp(context.Background(), c, appOptions{logOut: &logs})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range a.targets {
		if s.Target.Name() == "app" {
			ce.app = s.Target.(*memtarget.Target)
		}
	}
	ce.d = newDaemon(a)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ce.d.serve(ctx, nil) }()
	var once stdsync.Once
	ce.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			a.close()
			if strings.Contains(logs.String(), knownSecret) || strings.Contains(logs.String(), "hookSecretPart77") || strings.Contains(logs.String(), testOIDCSecret) {
				t.Error("a configured secret reached the log")
			}
		})
	}
	t.Cleanup(ce.stop)
	<-ce.d.ready
}

// restart stops the daemon, edits its configuration file and starts it
// again on the same state store.
func (ce *consoleEnv) restart(edit func(cfg string) string) {
	ce.t.Helper()
	ce.stop()
	b, err := os.ReadFile(ce.config)
	if err != nil {
		ce.t.Fatal(err)
	}
	if err := os.WriteFile(ce.config, []byte(edit(string(b))), 0o600); err != nil {
		ce.t.Fatal(err)
	}
	ce.boot()
}

// runOnce triggers a full run and waits until it is recorded finished.
func (ce *consoleEnv) runOnce() {
	t := ce.t
	t.Helper()
	ctx := context.Background()
	rs, _ := ce.d.a.store.Runs(ctx, 1)
	last := ""
	if len(rs) > 0 {
		last = rs[0].ID
	}
	ce.d.Trigger(trigger{name: "schedule"})
	waitFor(t, func() bool {
		rs, _ := ce.d.a.store.Runs(ctx, 1)
		return len(rs) > 0 && rs[0].ID != last && rs[0].Status != "running"
	})
}

// holdTwelve disables 12 people (past the guard's limit of 10), runs, and
// returns the held run's id.
func (ce *consoleEnv) holdTwelve(users int) string {
	t := ce.t
	dis := map[int]bool{}
	for i := range 12 {
		dis[i] = true
	}
	ce.writeUsers(users, dis)
	ce.d.Trigger(trigger{name: "schedule"})
	var runID string
	waitFor(t, func() bool {
		ids, _ := ce.d.a.store.HeldRuns(context.Background())
		if len(ids) > 0 {
			runID, _, _ = strings.Cut(ids[0], "/") // stored as RUN/TARGET
		}
		return runID != ""
	})
	return runID
}

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	chrome := testenv.NeedBinary(t, "chromium")
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs browser steps, failing the test on an error.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// screenshot writes a full-page PNG into DIRSYNC_SCREENSHOTS (docs/console
// when refreshing the README's pictures), else into a temp folder.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("DIRSYNC_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func clearCookies(t *testing.T, ctx context.Context) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatalf("clear cookies: %v", err)
	}
}

// signIn signs in through the IdP as who, from a browser without cookies.
func (ce *consoleEnv) signIn(t *testing.T, ctx context.Context, who oidcprov.Person) {
	t.Helper()
	ce.idp.SignIn(who)
	clearCookies(t, ctx)
	do(t, ctx, "sign in as "+who.Email, chromedp.Navigate(ce.base),
		chromedp.WaitVisible(chromedp.ID("oidc")), chromedp.Click(chromedp.ID("oidc")),
		chromedp.WaitVisible(chromedp.ID("sources")))
}

// session returns the browser's session cookie and the page's CSRF token,
// for posts made outside the browser.
func session(t *testing.T, ctx context.Context) (cookie, csrf string) {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatalf("cookies: %v", err)
	}
	csrf = get(t, ctx, "csrf", chromedp.Value(chromedp.CSS(`input[name="csrf"]`)))
	for _, c := range res.Cookies {
		if c.Name == "dirsync_session" {
			if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteLax {
				t.Fatalf("session cookie flags: httpOnly=%v secure=%v sameSite=%v", c.HTTPOnly, c.Secure, c.SameSite)
			}
			return c.Name + "=" + c.Value, csrf
		}
	}
	t.Fatal("no session cookie in the browser")
	return "", ""
}

func (ce *consoleEnv) postForm(t *testing.T, path, cookie, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(ce.base, "/ui/")+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var (
	consoleOncall = oidcprov.Person{Subject: "p-ann", Email: "ann.oncall@corp.example", Groups: []string{"it-oncall"}}
	consoleViewer = oidcprov.Person{Subject: "p-vic", Email: "vic.viewer@corp.example", Groups: []string{"it-staff"}}
)

// TestConsoleInBrowser drives the console with headless Chromium: OIDC
// sign-in, a failing source in red, a viewer refused, a forged post
// refused, a held plan approved (the application receives exactly the
// steps still wanted), and no page showing a configured secret.
func TestConsoleInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	const users = 100
	ce := startConsoleEnv(t, users)
	runID := ce.holdTwelve(users)
	// Two of the twelve come back before anyone approves: a plan made now
	// no longer wants their suspension.
	ce.writeUsers(users, map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true, 10: true, 11: true})
	ce.runOnce() // the page re-checks against the last reads
	before := len(ce.app.Calls())
	var pages []string
	grab := func(what string) {
		pages = append(pages, get(t, ctx, "read "+what, chromedp.OuterHTML(chromedp.CSS("html"))))
	}

	// A viewer sees the held plan but cannot approve it.
	ce.signIn(t, ctx, consoleViewer)
	do(t, ctx, "viewer held page", chromedp.Navigate(ce.base+"held/"+runID), chromedp.WaitVisible(chromedp.ID("steps")))
	if n := get(t, ctx, "approve buttons", chromedp.Evaluate[int](`document.querySelectorAll("#approve").length`)); n != 0 {
		t.Fatal("a viewer is shown the approve button")
	}
	grab("held page (viewer)")
	cookie, csrf := session(t, ctx)
	if code := ce.postForm(t, "/ui/held/"+runID+"/approve", cookie, "csrf="+csrf); code != http.StatusForbidden {
		t.Fatalf("viewer approve: HTTP %d, want 403", code)
	}

	// The approver: overview with the failing source in red.
	ce.signIn(t, ctx, consoleOncall)
	cls := get(t, ctx, "payroll class", chromedp.AttributeValue(chromedp.ID("source-payroll"), "class")).Value
	payroll := get(t, ctx, "payroll row", chromedp.Text(chromedp.ID("source-payroll")))
	if cls != "bad" || !strings.Contains(payroll, "payroll-export-missing.json") {
		t.Fatalf("payroll row: class %q, text %q; want bad with the error", cls, payroll)
	}
	if cls := get(t, ctx, "hr class", chromedp.AttributeValue(chromedp.ID("source-hr"), "class")).Value; cls != "ok" {
		t.Fatalf("hr row class %q, want ok", cls)
	}
	grab("overview")
	screenshot(t, ctx, "overview")

	// A forged post (no CSRF token) with the approver's own cookie is refused.
	cookie, _ = session(t, ctx)
	if code := ce.postForm(t, "/ui/held/"+runID+"/approve", cookie, "only=suspend"); code != http.StatusForbidden {
		t.Fatalf("approve without a CSRF token: HTTP %d, want 403", code)
	}
	if got := len(ce.app.Calls()); got != before {
		t.Fatalf("refused approvals sent %d calls", got-before)
	}

	// The held plan, re-checked now: 10 of the 12 steps are still wanted.
	do(t, ctx, "held page", chromedp.Navigate(ce.base+"held/"+runID), chromedp.WaitVisible(chromedp.ID("approve")))
	if wanted := get(t, ctx, "wanted", chromedp.Text(chromedp.ID("wanted"))); wanted != "10 of 12" {
		t.Fatalf("still wanted = %q, want 10 of 12", wanted)
	}
	grab("held page")
	screenshot(t, ctx, "held-plan")
	do(t, ctx, "approve", chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.CSS("table.decisions")))
	decisions := get(t, ctx, "approval decisions", chromedp.Text(chromedp.CSS("table.decisions")))
	grab("approval run")
	calls := ce.app.Calls()[before:]
	var got []string
	for _, c := range calls {
		got = append(got, string(c.Action)+" "+c.Account.Username)
	}
	slices.Sort(got)
	var want []string
	for i := 2; i < 12; i++ {
		want = append(want, fmt.Sprintf("%s user%03d", connector.ActSuspend, i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the application received %v\nwant exactly %v", got, want)
	}
	if !strings.Contains(decisions, "approved by ann.oncall@corp.example") {
		t.Fatalf("the approval run's decisions do not name the approver:\n%s", decisions)
	}

	// A person's chain, and the other pages.
	do(t, ctx, "person", chromedp.Navigate(ce.base+"person?q=user005@example.test"), chromedp.WaitVisible(chromedp.CSS("section.explain")))
	chain := get(t, ctx, "chain", chromedp.Text(chromedp.CSS("section.explain")))
	for _, want := range []string{"hr", "disabled", "in scope", "suspended"} {
		if !strings.Contains(chain, want) {
			t.Fatalf("person page lacks %q:\n%s", want, chain)
		}
	}
	grab("person")
	screenshot(t, ctx, "person")
	for _, p := range []string{"runs", "held", ""} {
		do(t, ctx, "page "+p, chromedp.Navigate(ce.base+p), chromedp.WaitVisible(chromedp.CSS("main")))
		grab(p)
	}
	clearCookies(t, ctx)
	do(t, ctx, "login page", chromedp.Navigate(ce.base+"login"), chromedp.WaitVisible(chromedp.ID("oidc")))
	grab("login")
	for _, secret := range []string{knownSecret, testOIDCSecret, testAdminToken, testSessionKey, "hookSecretPart77"} {
		for i, html := range pages {
			if strings.Contains(html, secret) {
				t.Fatalf("page %d contains a configured secret", i)
			}
		}
	}

	// The held plan was announced once, with its link.
	waitFor(t, func() bool { return len(ce.hooks.all()) > 0 })
	heldMsgs := 0
	for _, b := range ce.hooks.all() {
		if strings.Contains(b, "held a plan") {
			heldMsgs++
			if !strings.Contains(b, ce.base+"held/"+runID) {
				t.Fatalf("held notification without its link: %s", b)
			}
		}
	}
	if heldMsgs != 1 {
		t.Fatalf("%d held notifications, want 1: %v", heldMsgs, ce.hooks.all())
	}
}

// browserCookie returns the browser's session cookie value.
func browserCookie(t *testing.T, ctx context.Context) string {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatalf("cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == "dirsync_session" {
			return c.Value
		}
	}
	return ""
}

// setBrowserCookie puts a session cookie back into the browser.
func (ce *consoleEnv) setBrowserCookie(t *testing.T, ctx context.Context, value string) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: "dirsync_session", Value: value, URL: ce.base,
		Path: "/ui/", HTTPOnly: new(true), Secure: new(true), SameSite: network.CookieSameSiteLax}); err != nil {
		t.Fatalf("set cookie: %v", err)
	}
}

// TestConsoleSessionsInBrowser: a deep link from the held notification
// lands on its plan after sign-in; after sign-out the old cookie opens
// nothing; an approver removed from the configuration is refused at the
// next request after a restart.
func TestConsoleSessionsInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	const users = 30
	ce := startConsoleEnv(t, users)
	runID := ce.holdTwelve(users)

	// The notification's link, opened without a session.
	var link string
	waitFor(t, func() bool {
		for _, b := range ce.hooks.all() {
			if i := strings.Index(b, ce.base+"held/"); i >= 0 {
				link = b[i:]
				link = link[:strings.IndexAny(link, "\"> |\\")]
				return true
			}
		}
		return false
	})
	if !strings.Contains(link, runID) {
		t.Fatalf("notification link %q does not name run %s", link, runID)
	}
	ce.idp.SignIn(consoleOncall)
	clearCookies(t, ctx)
	do(t, ctx, "deep link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("oidc")),
		chromedp.Click(chromedp.ID("oidc")), chromedp.WaitVisible(chromedp.ID("steps")))
	if loc := get(t, ctx, "location", chromedp.Location()); loc != link {
		t.Fatalf("after sign-in the browser is at %s, want %s", loc, link)
	}

	// Sign out, then put the old cookie back: signed out all the same.
	old := browserCookie(t, ctx)
	do(t, ctx, "sign out", chromedp.Click(chromedp.CSS(`form.who button`)), chromedp.WaitVisible(chromedp.ID("oidc")))
	ce.setBrowserCookie(t, ctx, old)
	do(t, ctx, "old cookie", chromedp.Navigate(ce.base+"held/"+runID), chromedp.WaitVisible(chromedp.ID("oidc")))
	if msg := get(t, ctx, "error", chromedp.Text(chromedp.ID("error"))); !strings.Contains(msg, "session ended") {
		t.Fatalf("old cookie after sign-out: page says %q", msg)
	}

	// Signed in again; the approvers are removed and the daemon restarted.
	ce.signIn(t, ctx, consoleOncall)
	ce.restart(func(cfg string) string { return strings.Replace(cfg, "approvers: [it-oncall]", "approvers: []", 1) })
	do(t, ctx, "after restart", chromedp.Navigate(ce.base+"held/"+runID), chromedp.WaitVisible(chromedp.ID("oidc")))
	if loc := get(t, ctx, "location", chromedp.Location()); !strings.Contains(loc, "/ui/login") {
		t.Fatalf("an approver removed from the configuration still sees %s", loc)
	}
	if n, _ := ce.d.a.store.HeldRuns(context.Background()); len(n) == 0 {
		t.Fatal("the held plan went away")
	}
}

// TestConsoleStoppedSourceRedInBrowser: an LDAP source read through its
// syncrepl watch (no polls, the next full run a day away) turns red on the
// overview within 10 s of slapd stopping, and /metrics says so in the
// metric the DirsyncSourceFailing alert keys on.
func TestConsoleStoppedSourceRedInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	lc := &slapd.Config{Suffix: slapd.DefaultSuffix}
	srv := slapd.Start(t, slapd.Options{LDIF: lc.User("jo") + lc.User("al") + lc.Group("staff", lc.UserDN("jo"), lc.UserDN("al"))})
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "dirsync.yaml")}
	ce := &consoleEnv{env: e, idp: oidcprov.Start(t, "dirsync", testOIDCSecret), hooks: &hookReceiver{}}
	port := testenv.FreePort(t)
	ce.base = fmt.Sprintf("http://localhost:%d/ui/", port)
	t.Setenv("LDAP_PW", slapd.AdminPassword)
	t.Setenv("TEST_OIDC_SECRET", testOIDCSecret)
	cfg := fmt.Sprintf(`state: {backend: embedded, path: %[1]s/state.db}
http:
  listen: "127.0.0.1:%[2]d"
  console:
    enabled: true
    base_url: %[3]s
    oidc: {issuer: %[4]s, client_id: dirsync, client_secret: "${TEST_OIDC_SECRET}", approvers: [it-oncall]}
schedule: {full: "@daily", reconcile: "off", incremental: 0}
sources:
  - name: corp
    type: ldap
    urls: [%[5]q]
    bind_dn: %[6]q
    bind_password: ${LDAP_PW}
    users: {base_dn: %[7]q}
    groups: {base_dn: %[8]q}
targets:
  - {name: app, type: memory}
`, dir, port, ce.base, ce.idp.Issuer, srv.URL, srv.AdminDN, srv.PeopleDN(), srv.GroupsDN())
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ce.boot()
	waitFor(t, func() bool { return len(ce.app.Calls()) >= 2 })
	ce.signIn(t, ctx, consoleOncall)
	if cls := get(t, ctx, "corp class", chromedp.AttributeValue(chromedp.ID("source-corp"), "class")).Value; cls != "ok" {
		t.Fatalf("corp row class %q before slapd stops, want ok", cls)
	}
	time.Sleep(500 * time.Millisecond) // the syncrepl watch is up
	srv.Stop()
	stopped := time.Now()
	var cls, row string
	for time.Since(stopped) < 10*time.Second {
		do(t, ctx, "overview", chromedp.Navigate(ce.base), chromedp.WaitVisible(chromedp.ID("source-corp")))
		cls = get(t, ctx, "corp class", chromedp.AttributeValue(chromedp.ID("source-corp"), "class")).Value
		if cls == "bad" {
			row = get(t, ctx, "corp row", chromedp.Text(chromedp.ID("source-corp")))
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if cls != "bad" || !strings.Contains(row, "change watch") {
		t.Fatalf("10 s after slapd stopped the corp row is %q: %q", cls, row)
	}
	t.Logf("red %v after slapd stopped: %s", time.Since(stopped).Round(100*time.Millisecond), row)
	resp, err := http.Get("http://" + *ce.d.addr.Load() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := regexp.MustCompile(`dirsync_source_consecutive_failures\{source="corp"\} ([0-9]+)`).FindStringSubmatch(string(b)); m == nil || m[1] == "0" {
		t.Fatalf("consecutive failures after slapd stopped: %v", m)
	}
	for _, r := range ce.d.a.mustRuns(t) {
		if !strings.HasPrefix(r.Trigger, "incremental:") && r.Trigger != "startup" && r.Trigger != "leader" {
			t.Fatalf("a run other than the first ones and targeted ones: %+v", r)
		}
	}
}

// mustRuns lists the stored runs.
func (a *app) mustRuns(t *testing.T) []state.Run {
	t.Helper()
	rs, err := a.store.Runs(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestConsoleResolvedPlanDisappearsInBrowser: the twelve people of a held
// plan come back; after the next run the plan is gone from the held list
// and the target is no longer amber, and the journal says why.
func TestConsoleResolvedPlanDisappearsInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	const users = 30
	ce := startConsoleEnv(t, users)
	runID := ce.holdTwelve(users)
	ce.signIn(t, ctx, consoleViewer)
	do(t, ctx, "held list", chromedp.Navigate(ce.base+"held"), chromedp.WaitVisible(chromedp.ID("held")))
	if list := get(t, ctx, "held list", chromedp.Text(chromedp.ID("held"))); !strings.Contains(list, runID) {
		t.Fatalf("held list without %s: %s", runID, list)
	}
	ce.writeUsers(users, nil)
	ce.runOnce()
	do(t, ctx, "held list again", chromedp.Navigate(ce.base+"held"), chromedp.WaitVisible(chromedp.ID("held")))
	if list := get(t, ctx, "held list", chromedp.Text(chromedp.ID("held"))); strings.Contains(list, runID) || !strings.Contains(list, "nothing is held") {
		t.Fatalf("a plan no step of which is wanted is still listed: %s", list)
	}
	ce.d.refresh <- struct{}{}
	waitFor(t, func() bool {
		do(t, ctx, "overview", chromedp.Navigate(ce.base), chromedp.WaitVisible(chromedp.ID("target-app")))
		return get(t, ctx, "app class", chromedp.AttributeValue(chromedp.ID("target-app"), "class")).Value == "ok"
	})
	ds, err := ce.d.a.store.Decisions(context.Background(), state.DecisionQuery{Target: "app"})
	if err != nil {
		t.Fatal(err)
	}
	resolved := false
	for _, d := range ds {
		resolved = resolved || (d.Action == "held_plan" && strings.Contains(d.Reason, runID+" resolved itself"))
	}
	if !resolved {
		t.Fatal("no decision says the plan resolved itself")
	}
}
