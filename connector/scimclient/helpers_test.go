package scimclient

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/scimclient/scimfake"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const testToken = "tok-9f8e7d6c5b4a"

// env is one fake provider and the connector wired to it.
type env struct {
	fake *scimfake.Server
	srv  *httptest.Server
	tg   connector.Connector
	t    *Target
	logs *observer.ObservedLogs
	now  time.Time
}

// base is the provider's SCIM root URL.
func (e *env) base() string { return e.srv.URL + e.fake.Prefix() }

// start starts a fake with opts (a static token unless OAuth2 is set up)
// and wraps its handler with wrap when non-nil.
func startFake(t testing.TB, opts scimfake.Options, wrap func(http.Handler) http.Handler) (*scimfake.Server, *httptest.Server) {
	t.Helper()
	if opts.Token == "" && opts.ClientID == "" {
		opts.Token = testToken
	}
	f := scimfake.New(opts)
	var h http.Handler = f.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return f, srv
}

// newEnv starts a fake and builds a connector from the YAML settings
// (base_url and auth are added when absent).
func newEnv(t testing.TB, opts scimfake.Options, settings string) *env {
	t.Helper()
	f, srv := startFake(t, opts, nil)
	e := &env{fake: f, srv: srv}
	e.build(t, settings)
	return e
}

func (e *env) build(t testing.TB, settings string) {
	t.Helper()
	if !strings.Contains(settings, "base_url:") {
		settings = "base_url: " + e.base() + "\n" + settings
	}
	if !strings.Contains(settings, "auth:") {
		settings += "\nauth: {bearer_token: " + testToken + "}\n"
	}
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	e.now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tg, err := build(t, settings, connector.Deps{Logger: zap.New(core), Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatalf("Factory: %v", err)
	}
	e.tg = tg
	e.t = unwrap(tg)
}

// build parses settings as one target of type scim and calls Factory.
func build(t testing.TB, settings string, deps connector.Deps) (connector.Connector, error) {
	t.Helper()
	cfg, err := parseTarget(settings)
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	return Factory(cfg, deps)
}

func parseTarget(settings string) (config.Target, error) {
	var b strings.Builder
	b.WriteString("targets:\n  - name: acme\n    type: scim\n")
	for _, l := range strings.Split(strings.TrimRight(settings, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	cfg, err := config.Parse(strings.NewReader(b.String()))
	if err != nil {
		return config.Target{}, err
	}
	return cfg.Targets[0], nil
}

func unwrap(tg connector.Connector) *Target {
	switch x := tg.(type) {
	case *Target:
		return x
	case roleTarget:
		return x.Target
	case groupTarget:
		return x.Target
	case roleGroupTarget:
		return x.Target
	}
	panic("not a scim target")
}

// observeFake reads the fake's view of an account by userName.
func observeFake(f *scimfake.Server, userName string) (identity.Account, bool) {
	u, ok := f.UserByName(userName)
	if !ok {
		return identity.Account{}, false
	}
	return resourceAccount(u, f.MemberOf(str(u["id"]))), true
}

// resourceAccount converts a raw user resource the way a test reads it
// (independently of the connector's own parsing).
func resourceAccount(u map[string]any, groups []string) identity.Account {
	a := identity.Account{Username: str(u["userName"]), DisplayName: str(u["displayName"]), Exists: true,
		Remote: map[string]string{"id": str(u["id"])}, Groups: groups}
	if n, ok := u["name"].(map[string]any); ok {
		a.GivenName, a.FamilyName = str(n["givenName"]), str(n["familyName"])
	}
	if es, ok := u["emails"].([]any); ok && len(es) > 0 {
		a.Email = str(es[0].(map[string]any)["value"])
	}
	if act, ok := u["active"].(bool); ok {
		a.Suspended = !act
	}
	if rs, ok := u["roles"].([]any); ok && len(rs) > 0 {
		a.Role = str(rs[0].(map[string]any)["value"])
	}
	return a
}

// reqs returns the recorded requests as "METHOD /path" lines, with the
// filter (if any) appended.
func reqLines(f *scimfake.Server) []string {
	var out []string
	for _, r := range f.Requests() {
		l := r.Method + " " + r.Path
		if fl := r.Query.Get("filter"); fl != "" {
			l += " filter=" + fl
		}
		out = append(out, l)
	}
	return out
}

// jsonEq compares a recorded JSON body with the expected JSON text.
func jsonEq(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("recorded body is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("expected body is not JSON: %v\n%s", err, want)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("body mismatch\n got: %s\nwant: %s", gb, wb)
	}
}

// lastReq returns the last recorded request with this method and path prefix.
func lastReq(t *testing.T, f *scimfake.Server, method, path string) scimfake.Request {
	t.Helper()
	rs := f.Requests()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Method == method && strings.HasPrefix(rs[i].Path, path) {
			return rs[i]
		}
	}
	t.Fatalf("no %s %s request; got %v", method, path, reqLines(f))
	return scimfake.Request{}
}
