package console

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/state"
)

// signedOut reports whether a GET of the overview lands on the sign-in page.
func (f *fixture) signedOut(c *http.Client) bool {
	return strings.Contains(f.lastURL(c), "/ui/login")
}

func TestLogoutEndsTheSessionForTheOldCookie(t *testing.T) {
	f := newFixture(t)
	c, _, body := f.signIn(oncall)
	u, _ := url.Parse(f.srv.URL + "/ui/")
	old := c.Jar.Cookies(u)
	if code, _ := f.post(c, "/ui/logout", url.Values{"csrf": {csrfOf(t, body)}}); code != 200 || !f.signedOut(c) {
		t.Fatalf("sign-out: %d", code)
	}
	// A copy of the cookie taken before sign-out opens nothing.
	c2 := f.client()
	c2.Jar.SetCookies(u, old)
	code, page := f.get(c2, "/ui/held")
	if code != 200 || strings.Contains(page, `id="held"`) || !strings.Contains(page, signInErrors["ended"]) {
		t.Fatalf("old cookie after sign-out: %d\n%s", code, page)
	}
	if code, _ := f.post(c2, "/ui/held/R1/discard", url.Values{"csrf": {csrfOf(t, body)}}); code != http.StatusUnauthorized {
		t.Fatalf("post with the old cookie: %d, want 401", code)
	}
	if len(f.be.discarded) != 0 {
		t.Fatalf("discarded after sign-out: %v", f.be.discarded)
	}
}

func TestRoleFollowsConfigurationAndIdP(t *testing.T) {
	f := newFixture(t)
	c, _, body := f.signIn(oncall)
	csrf := csrfOf(t, body)
	// Restarted with no approvers: the old cookie is refused at once.
	cfg := f.cfg
	cfg.OIDC.Approvers = nil
	f.restart(cfg)
	if code, _ := f.post(c, "/ui/held/R1/discard", url.Values{"csrf": {csrf}}); code != http.StatusUnauthorized {
		t.Fatalf("discard after the approver was removed: %d, want 401", code)
	}
	if !f.signedOut(c) || len(f.be.discarded) != 0 {
		t.Fatalf("an approver removed from the configuration kept a session (discarded %v)", f.be.discarded)
	}

	// Demoted in the IdP: the next request after the refresh interval
	// reads the groups again and the approver becomes a viewer.
	cfg.OIDC.Approvers = []string{"it-oncall"}
	f.restart(cfg)
	c, _, body = f.signIn(oncall)
	f.idp.SetGroups(oncall.Subject, []string{"it-staff"})
	f.clock.Advance(5 * time.Minute)
	if _, page := f.get(c, "/ui/"); !strings.Contains(page, "· approver") {
		t.Fatal("groups re-read before the refresh interval")
	}
	f.clock.Advance(6 * time.Minute)
	if _, page := f.get(c, "/ui/"); !strings.Contains(page, "ann@corp.example · viewer") {
		t.Fatalf("after the refresh interval the role is not re-read:\n%s", page)
	}
	if f.idp.Refreshes != 1 {
		t.Fatalf("refreshes = %d, want 1", f.idp.Refreshes)
	}
	if code, _ := f.post(c, "/ui/held/R1/discard", url.Values{"csrf": {csrfOf(t, body)}}); code != http.StatusForbidden {
		t.Fatalf("discard by a demoted approver: %d, want 403", code)
	}
	// Removed from the IdP: the refresh fails and the session ends.
	f.idp.Forget(oncall.Subject)
	f.clock.Advance(11 * time.Minute)
	if !f.signedOut(c) {
		t.Fatal("a person removed from the IdP kept a session")
	}
}

func TestSessionTimeouts(t *testing.T) {
	f := newFixture(t)
	c, _, _ := f.signIn(viewer)
	f.clock.Advance(29 * time.Minute)
	if f.signedOut(c) {
		t.Fatal("signed out before the idle timeout")
	}
	f.clock.Advance(31 * time.Minute) // idle 31m (the refresh kept it alive at 29m)
	if !f.signedOut(c) {
		t.Fatal("an idle session survived the idle timeout")
	}
	// Absolute: busy every 20 minutes, still ended at 8h. (The admin
	// token's session: the test IdP's tokens follow the real clock.)
	c = f.client()
	_, login := f.get(c, "/ui/login")
	f.post(c, "/ui/login/token", url.Values{"csrf": {csrfOf(t, login)}, "token": {adminToken}})
	for range 23 {
		f.clock.Advance(20 * time.Minute)
		if f.signedOut(c) {
			t.Fatal("a busy session ended before the absolute timeout")
		}
	}
	f.clock.Advance(20 * time.Minute)
	if !f.signedOut(c) {
		t.Fatal("a session outlived the absolute timeout")
	}
	if n, _ := f.store.KVList(t.Context(), sessionBucket); len(n) > 1 {
		t.Fatalf("%d sessions kept, want expired ones gone", len(n))
	}
}

func TestAdminTokenThrottled(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	for i := range 300 {
		_, login := f.get(c, "/ui/login")
		if i == 0 && !strings.Contains(login, `name="token"`) {
			t.Fatal("no token form")
		}
		if strings.Contains(login, signInErrors["throttled"]) {
			break
		}
		f.post(c, "/ui/login/token", url.Values{"csrf": {csrfOf(t, login)}, "token": {"guess-number-" + string(rune('a'+i%26))}})
	}
	_, login := f.get(c, "/ui/login")
	_, body := f.post(c, "/ui/login/token", url.Values{"csrf": {csrfOf(t, login)}, "token": {adminToken}})
	if !strings.Contains(body, signInErrors["throttled"]) || !f.signedOut(c) {
		t.Fatalf("the right token after many wrong ones signed in:\n%s", body)
	}
	// Another address is shut out too: the account itself is throttled.
	f.clock.Advance(16 * time.Minute)
	_, login = f.get(c, "/ui/login")
	if _, body := f.post(c, "/ui/login/token", url.Values{"csrf": {csrfOf(t, login)}, "token": {adminToken}}); !strings.Contains(body, "admin (static token) · approver") {
		t.Fatal("the window passed and the right token is still refused")
	}
}

func TestLoginErrorsFromAFixedList(t *testing.T) {
	f := newFixture(t)
	c := f.client()
	for _, q := range []string{"Your+account+is+locked.+Call++1-555-0100", "%3Cscript%3E", "token"} {
		_, body := f.get(c, "/ui/login?error="+q)
		if strings.Contains(body, "555-0100") || strings.Contains(strings.ToLower(body), "&lt;script") {
			t.Fatalf("login page shows request text:\n%s", body)
		}
		if q == "token" && !strings.Contains(body, signInErrors["token"]) {
			t.Fatal("a known code shows no message")
		}
	}
}

func TestUnknownIDsAndStaticFolder(t *testing.T) {
	f := newFixture(t)
	c, _, _ := f.signIn(viewer)
	code, body := f.get(c, "/ui/runs/doesnotexist")
	if code != http.StatusNotFound || strings.Contains(body, "bolt") || strings.Contains(body, "state:") {
		t.Fatalf("unknown run: %d\n%s", code, body)
	}
	for _, p := range []string{"/ui/static/", "/ui/static"} {
		code, body := f.get(c, p)
		if code != http.StatusNotFound || strings.Contains(body, "console.css") {
			t.Fatalf("GET %s: %d\n%s", p, code, body)
		}
	}
	if code, _ := f.get(c, "/ui/static/console.css"); code != 200 {
		t.Fatalf("stylesheet: %d", code)
	}
}

func TestDeepLinkSurvivesSignIn(t *testing.T) {
	f := newFixture(t)
	f.idp.SignIn(oncall)
	c := f.client()
	// Not signed in: the held plan's link goes through the sign-in page.
	if _, body := f.get(c, "/ui/held/R1?from=notify"); !strings.Contains(body, `id="oidc"`) {
		t.Fatalf("not on the sign-in page:\n%s", body)
	}
	if got := f.finalURL(c, "/ui/login/oidc"); got != f.srv.URL+"/ui/held/R1?from=notify" {
		t.Fatalf("after sign-in: %s", got)
	}
	// Links elsewhere are not followed.
	for _, next := range []string{"https://evil.example/", "//evil.example/ui/", "/ui/../x", "/elsewhere", "/ui/login?x"} {
		c := f.client()
		f.get(c, "/ui/login?next="+url.QueryEscape(next))
		if got := f.finalURL(c, "/ui/login/oidc"); got != f.srv.URL+"/ui/" {
			t.Fatalf("next=%s led to %s", next, got)
		}
	}
}

// finalURL follows redirects from path (to this server and the IdP only)
// and returns where they end.
func (f *fixture) finalURL(c *http.Client, path string) string {
	f.t.Helper()
	cc := *c
	cc.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(req.URL.String(), f.srv.URL) && !strings.HasPrefix(req.URL.String(), f.idp.Issuer) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := cc.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 {
		return loc
	}
	return resp.Request.URL.String()
}

func TestLeaversPageAndCSV(t *testing.T) {
	f := newFixture(t)
	c, _, _ := f.signIn(viewer)
	code, body := f.get(c, "/ui/leavers?since=2026-11-01")
	if code != 200 || !strings.Contains(body, "whenChanged") || !strings.Contains(body, "1.5s") || !strings.Contains(body, "held: by the safety guard") {
		t.Fatalf("leavers page: %d\n%s", code, body)
	}
	code, body = f.get(c, "/ui/leavers.csv?since=2026-11-01")
	if code != 200 || !strings.HasPrefix(body, "person,name,source") || !strings.Contains(body, "2026-11-01T01:00:00Z") {
		t.Fatalf("leavers CSV: %d\n%s", code, body)
	}
	if code, _ := f.get(c, "/ui/leavers?since=<x>"); code != http.StatusBadRequest {
		t.Fatalf("bad since: %d", code)
	}
}

func TestApprovalProgressPage(t *testing.T) {
	f := newFixture(t)
	c, _, _ := f.signIn(viewer)
	code, body := f.get(c, "/ui/held/R1/approval")
	if code != 200 || !strings.Contains(body, `http-equiv="refresh" content="1"`) || !strings.Contains(body, "<b>1</b> decisions of up to <b>3</b>") {
		t.Fatalf("approval page: %d\n%s", code, body)
	}
}

func TestRunsPagedAndFilteredByTime(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range 250 { // newest first, one a minute
		f.be.runs = append(f.be.runs, state.Run{ID: fmt.Sprintf("R%03d", 249-i), Trigger: "incremental", Status: "ok", Started: t0.Add(time.Duration(249-i) * time.Minute)})
	}
	c, _, _ := f.signIn(viewer)
	rowRe := regexp.MustCompile(`href="/ui/runs/(R[0-9]+)"`)
	ids := func(body string) []string {
		var out []string
		for _, m := range rowRe.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	_, p1 := f.get(c, "/ui/runs")
	_, p3 := f.get(c, "/ui/runs?page=3")
	if got := ids(p1); len(got) != 100 || got[0] != "R249" || !strings.Contains(p1, "page 1 of 3") || !strings.Contains(p1, `id="next"`) {
		t.Fatalf("page 1: %d runs from %v", len(got), got[:min(1, len(got))])
	}
	if got := ids(p3); len(got) != 50 || got[49] != "R000" {
		t.Fatalf("page 3: %v", got)
	}
	_, win := f.get(c, "/ui/runs?since=2026-12-01T01:00&until=2026-12-01T01:10")
	if got := ids(win); len(got) != 10 || got[0] != "R069" || got[9] != "R060" {
		t.Fatalf("01:00 to 01:10: %v", got)
	}
	if code, _ := f.get(c, "/ui/runs?since=yesterday"); code != http.StatusBadRequest {
		t.Fatalf("bad since: %d", code)
	}
}

func TestPersonSearchByNameAndPrefix(t *testing.T) {
	f := newFixture(t)
	c, _, _ := f.signIn(viewer)
	_, body := f.get(c, "/ui/person?q=ann")
	if !strings.Contains(body, `id="matches"`) || !strings.Contains(body, "Ann Smith") || !strings.Contains(body, "Annabel Lee") {
		t.Fatalf("prefix search:\n%s", body)
	}
	_, body = f.get(c, "/ui/person?q=smi")
	if !strings.Contains(body, `id="explain-netmaker"`) {
		t.Fatalf("one match (surname prefix) is not explained:\n%s", body)
	}
}
