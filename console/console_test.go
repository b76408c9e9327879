package console

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/internal/testsrv/oidcprov"
	"github.com/dirsync/dirsync/report"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
)

// fakeBackend serves fixed data and records approvals.
type fakeBackend struct {
	runs      []state.Run
	mu        stdsync.Mutex
	approved  []string
	discarded []string
	lastError string
}

func (f *fakeBackend) Overview(context.Context) (Overview, error) {
	return Overview{Now: time.Now(), Leader: "leader", Sources: []SourceHealth{{Name: "corp-ad", LastError: f.lastError, Status: Status{Level: "bad", Reason: "failed"}}},
		Targets: []TargetHealth{{Name: "netmaker", Status: Status{Level: "ok"}}}}, nil
}
func (f *fakeBackend) Runs(context.Context, int) ([]state.Run, error) {
	if f.runs != nil {
		return f.runs, nil
	}
	return []state.Run{{ID: "R1", Trigger: "schedule", Status: "held"}}, nil
}
func (f *fakeBackend) Run(_ context.Context, id string) (state.Run, error) {
	if id != "R1" && id != "R2" {
		return state.Run{}, fmt.Errorf("bolt: run %q: %w", id, state.ErrNotFound)
	}
	return state.Run{ID: id}, nil
}
func (f *fakeBackend) Decisions(context.Context, state.DecisionQuery) ([]state.Decision, error) {
	return []state.Decision{{RunID: "R1", Target: "netmaker", User: "jo", Action: "suspend", Outcome: "held"},
		{RunID: "R1", Target: "ezeep", User: "ann", Action: "create", Outcome: "applied"},
		{RunID: "R1", Target: "ezeep", User: "bob", Action: "create", Outcome: "failed", Error: "ezeep: 503"}}, nil
}
func (f *fakeBackend) HeldPlans(context.Context) ([]Held, error) {
	return []Held{{RunID: "R1", Targets: []string{"netmaker"}, Steps: []Step{{Target: "netmaker", User: "jo", Action: "suspend"}}}}, nil
}
func (f *fakeBackend) Recheck(context.Context, string) (Held, error) {
	return Held{RunID: "R1", Targets: []string{"netmaker"}, Rechecked: true, Steps: []Step{{Target: "netmaker", User: "jo", Action: "suspend", Wanted: true}}}, nil
}
func (f *fakeBackend) Approve(_ context.Context, id string, only []string, by string) (ApproveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.approved = append(f.approved, id+" by "+by+" only "+strings.Join(only, ","))
	return ApproveResult{RunID: "R2"}, nil
}
func (f *fakeBackend) Approval(_ context.Context, id string) (Approval, error) {
	return Approval{HeldRun: id, Total: 3, Done: 1, Started: time.Now()}, nil
}
func (f *fakeBackend) Discard(_ context.Context, id, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discarded = append(f.discarded, id+" by "+by)
	return nil
}
func (f *fakeBackend) Explain(_ context.Context, who string) ([]Explanation, error) {
	if who == "ann.smith@example.test" {
		return []Explanation{{Target: "netmaker", InScope: true, Why: "member of staff"}}, nil
	}
	return nil, nil
}
func (f *fakeBackend) FindPeople(_ context.Context, q string, limit int) ([]PersonMatch, error) {
	all := []PersonMatch{{Key: "k1", Username: "ann.smith", Email: "ann.smith@example.test", Name: "Ann Smith"},
		{Key: "k2", Username: "annabel", Email: "annabel@example.test", Name: "Annabel Lee"}}
	var out []PersonMatch
	for _, m := range all {
		if strings.HasPrefix(strings.ToLower(m.Name), strings.ToLower(q)) || strings.Contains(strings.ToLower(m.Name), " "+strings.ToLower(q)) {
			out = append(out, m)
		}
	}
	return out, nil
}
func (f *fakeBackend) Leavers(_ context.Context, since time.Time) (*report.LeaversReport, error) {
	t := since.Add(time.Hour)
	return &report.LeaversReport{Since: since, Until: t.Add(time.Hour), Leavers: []report.Leaver{{Person: "p1", Name: "sam", SourceTime: t, SourceTimeFrom: "whenChanged",
		Applications: []report.LeaverApp{{Application: "netmaker", Account: "sam", Action: "suspend", Confirmed: t.Add(1500 * time.Millisecond), Seconds: 1.5},
			{Application: "ezeep", Account: "sam@x", Action: "delete", Pending: "held: by the safety guard"}}, Pending: 1}},
		Applications: []report.AppStat{{Application: "netmaker", Confirmed: 1, P50: 1.5, P95: 1.5}}}, nil
}

const (
	clientSecret = "oidc-client-secret-value-42"
	adminToken   = "static-admin-token-value-0001"
)

type fixture struct {
	t     *testing.T
	idp   *oidcprov.Provider
	srv   *httptest.Server
	be    *fakeBackend
	store *memstore.Store
	clock *fakeClock
	cfg   config.Console
}

// fakeClock is the console's clock in tests: real time plus an offset.
type fakeClock struct {
	mu  stdsync.Mutex
	off time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	idp := oidcprov.Start(t, "dirsync", clientSecret)
	f := &fixture{t: t, idp: idp, be: &fakeBackend{}}
	f.srv = httptest.NewUnstartedServer(nil)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	cfg := config.Console{Enabled: true, BaseURL: f.srv.URL + "/ui/", AdminToken: config.NewSecret(adminToken),
		OIDC: config.ConsoleOIDC{Issuer: idp.Issuer, ClientID: "dirsync", ClientSecret: config.NewSecret(clientSecret),
			Viewers: []string{"it-staff"}, Approvers: []string{"it-oncall"}}}
	f.store = memstore.New(memstore.Options{})
	f.clock = &fakeClock{}
	f.restart(cfg)
	return f
}

// restart serves a new console process with cfg on the same store, as a
// daemon restarted with an edited configuration would.
func (f *fixture) restart(cfg config.Console) {
	f.t.Helper()
	f.cfg = cfg
	s, err := New(Options{Config: cfg, Backend: f.be, Sessions: f.store, Now: f.clock.Now, Secrets: []string{clientSecret, adminToken, "redis-password-xyz"}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.srv.Config.Handler = s.Handler()
}

// client is a browser stand-in: a cookie jar, following redirects.
func (f *fixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	c := f.srv.Client()
	c.Jar = jar
	return c
}

func (f *fixture) get(c *http.Client, path string) (int, string) {
	f.t.Helper()
	resp, err := c.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *fixture) post(c *http.Client, path string, form url.Values) (int, string) {
	f.t.Helper()
	resp, err := c.PostForm(f.srv.URL+path, form)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *fixture) signIn(who oidcprov.Person) (*http.Client, int, string) {
	f.idp.SignIn(who)
	c := f.client()
	code, body := f.get(c, "/ui/login/oidc")
	return c, code, body
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

var oncall = oidcprov.Person{Subject: "u1", Email: "ann@corp.example", Groups: []string{"it-oncall"}}
var viewer = oidcprov.Person{Subject: "u2", Email: "vic@corp.example", Groups: []string{"it-staff"}}

func TestSignInWithPKCEAndSessionCookie(t *testing.T) {
	f := newFixture(t)
	c, code, body := f.signIn(oncall)
	if code != 200 || !strings.Contains(body, "ann@corp.example · approver") {
		t.Fatalf("after sign-in: %d\n%s", code, body)
	}
	u, _ := url.Parse(f.srv.URL + "/ui/")
	var sess *http.Cookie
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			sess = ck
		}
	}
	if sess == nil {
		t.Fatal("no session cookie")
	}
	// The jar hides the attributes: check them on a fresh response.
	f.idp.SignIn(oncall)
	c2 := f.client()
	c2.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.Contains(req.URL.Path, "/ui/") && !strings.Contains(req.URL.Path, "callback") && len(via) > 1 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := c2.Get(f.srv.URL + "/ui/login/oidc")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	setc := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
	for _, want := range []string{sessionCookie + "=", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(setc, want) {
			t.Fatalf("session Set-Cookie lacks %q:\n%s", want, setc)
		}
	}
	if f.idp.Exchanges != 2 {
		t.Fatalf("code exchanges = %d, want 2", f.idp.Exchanges)
	}
}

func TestRefusedTokens(t *testing.T) {
	f := newFixture(t)
	f.idp.SignIn(oncall)
	f.idp.ExpireTokens()
	c := f.client()
	code, body := f.get(c, "/ui/login/oidc")
	if code != http.StatusUnauthorized || !strings.Contains(body, "expired") {
		t.Fatalf("expired token: %d\n%s", code, body)
	}
	if code, _ := f.get(c, "/ui/"); code != 200 || !strings.Contains(f.lastURL(c), "/ui/login") {
		t.Fatalf("an expired token must not leave a session")
	}
	f.idp.SignIn(oncall)
	f.idp.WrongAudience("some-other-app")
	code, body = f.get(f.client(), "/ui/login/oidc")
	if code != http.StatusUnauthorized || !strings.Contains(body, "audience") {
		t.Fatalf("wrong audience: %d\n%s", code, body)
	}
	_, code, body = f.signIn(oidcprov.Person{Subject: "u3", Email: "eve@corp.example", Groups: []string{"sales"}})
	if code != http.StatusForbidden || !strings.Contains(body, "none of the groups") {
		t.Fatalf("no console group: %d\n%s", code, body)
	}
}

func (f *fixture) lastURL(c *http.Client) string {
	resp, err := c.Get(f.srv.URL + "/ui/")
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Request.URL.String()
}

func TestViewerCannotApproveAndCSRFIsRequired(t *testing.T) {
	f := newFixture(t)
	vc, _, body := f.signIn(viewer)
	_, held := f.get(vc, "/ui/held/R1")
	if strings.Contains(held, "approve-form") {
		t.Fatal("a viewer is shown the approve form")
	}
	code, _ := f.post(vc, "/ui/held/R1/approve", url.Values{"csrf": {csrfOf(t, body)}})
	if code != http.StatusForbidden {
		t.Fatalf("viewer approve: %d, want 403", code)
	}
	ac, _, _ := f.signIn(oncall)
	_, held = f.get(ac, "/ui/held/R1")
	if code, _ := f.post(ac, "/ui/held/R1/approve", url.Values{"only": {"suspend"}}); code != http.StatusForbidden {
		t.Fatalf("approve without CSRF token: %d, want 403", code)
	}
	if code, _ := f.post(ac, "/ui/held/R1/approve", url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("approve with a forged CSRF token: %d, want 403", code)
	}
	// The right token, but posted from another site's page.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/ui/held/R1/approve", strings.NewReader(url.Values{"csrf": {csrfOf(t, held)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := ac.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site post: %d, want 403", resp.StatusCode)
	}
	if len(f.be.approved) != 0 {
		t.Fatalf("refused posts reached the backend: %v", f.be.approved)
	}
	if code, _ := f.post(ac, "/ui/held/R1/approve", url.Values{"csrf": {csrfOf(t, held)}, "only": {"suspend"}}); code != 200 {
		t.Fatalf("approver approve: %d", code)
	}
	if len(f.be.approved) != 1 || f.be.approved[0] != "R1 by ann@corp.example only suspend" {
		t.Fatalf("approvals = %v", f.be.approved)
	}
}

func TestAdminTokenAndHeaders(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	_, login := f.get(c, "/ui/login")
	if code, _ := f.post(c, "/ui/login/token", url.Values{"csrf": {csrfOf(t, login)}, "token": {"wrong-token-123456"}}); code != 200 || strings.Contains(f.lastURL(c), "/ui/login") == false {
		t.Fatalf("a wrong admin token signed in")
	}
	_, login = f.get(c, "/ui/login")
	code, body := f.post(c, "/ui/login/token", url.Values{"csrf": {csrfOf(t, login)}, "token": {adminToken}})
	if code != 200 || !strings.Contains(body, "admin (static token) · approver") {
		t.Fatalf("admin token: %d\n%s", code, body)
	}
	resp, err := c.Get(f.srv.URL + "/ui/runs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"} {
		if got := resp.Header.Get(h); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src") {
		t.Error("the CSP allows scripts")
	}
}

func TestPageWithASecretIsRefused(t *testing.T) {
	f := newFixture(t)
	c, _, _ := f.signIn(oncall)
	f.be.lastError = "redis: AUTH redis-password-xyz failed"
	code, body := f.get(c, "/ui/")
	if code != http.StatusInternalServerError || strings.Contains(body, "redis-password-xyz") {
		t.Fatalf("page with a secret: %d\n%s", code, body)
	}
}

func TestRunPageFilters(t *testing.T) {
	f := newFixture(t)
	c, _, _ := f.signIn(viewer)
	for q, want := range map[string][]string{
		"":                                {"jo", "ann", "bob"},
		"?target=ezeep":                   {"ann", "bob"},
		"?outcome=failed":                 {"bob"},
		"?action=suspend&target=netmaker": {"jo"},
		"?user=AN":                        {"ann"},
		"?target=ezeep&outcome=held":      {},
	} {
		_, body := f.get(c, "/ui/runs/R1"+q)
		rows := regexp.MustCompile(`<tr class="out-[a-z_]+"><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>`).FindAllStringSubmatch(body, -1)
		var got []string
		for _, r := range rows {
			got = append(got, r[1])
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("run page %q shows %v, want %v", q, got, want)
		}
	}
}
