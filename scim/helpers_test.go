package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
)

const testToken = "t0ken-for-tests-only"

// sourceConfig parses a one-source config with the given extra YAML lines
// (indented under the source).
func sourceConfig(t testing.TB, name string, extra ...string) config.Source {
	t.Helper()
	y := fmt.Sprintf("sources:\n  - name: %s\n    type: scim\n", name)
	for _, l := range extra {
		y += "    " + l + "\n"
	}
	cfg, err := config.Parse(strings.NewReader(y))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg.Sources[0]
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond) // strictly increasing: creation order is stable
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testEnv is a SCIM server on a loopback httptest server.
type testEnv struct {
	t      testing.TB
	srv    *Server
	http   *httptest.Server
	store  state.Store
	base   string
	clock  *fakeClock
	logs   *observer.ObservedLogs
	token  string
	client *http.Client
}

type envOpt struct {
	store state.Store
	extra []string
	name  string
	// quiet drops log lines instead of keeping them (fuzzing: the
	// observer would keep every line of millions of writes).
	quiet bool
}

func newEnv(t testing.TB, o envOpt) *testEnv {
	t.Helper()
	if o.store == nil {
		o.store = memstore.New(memstore.Options{})
	}
	if o.name == "" {
		o.name = "corp"
	}
	if len(o.extra) == 0 {
		o.extra = []string{fmt.Sprintf("tokens: [%q]", testToken)}
	}
	core, logs := observer.New(zapcore.DebugLevel)
	logger := zap.New(core)
	if o.quiet {
		logger = zap.NewNop()
	}
	clock := newClock()
	s, err := New(sourceConfig(t, o.name, o.extra...), o.store, logger, WithClock(clock.Now))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle(s.MountPath()+"/", s.Handler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &testEnv{t: t, srv: s, http: hs, store: o.store, base: hs.URL + s.MountPath(), clock: clock,
		logs: logs, token: testToken, client: hs.Client()}
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r resp) str(path string) string {
	v := dig(r.json, path)
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// dig follows a dotted path with numeric indexes ("emails.0.value").
func dig(v any, path string) any {
	if path == "" {
		return v
	}
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscanf(p, "%d", &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func (e *testEnv) do(method, path string, body any, headers ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	u := path
	if !strings.HasPrefix(path, "http") {
		u = e.base + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("Content-Type", "application/scim+json")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, body: b}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &r.json)
	}
	return r
}

func (e *testEnv) must(status int, r resp) resp {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

// createUser creates a user and returns its id.
func (e *testEnv) createUser(userName string, extra map[string]any) string {
	e.t.Helper()
	body := map[string]any{
		"schemas":  []string{URNUser},
		"userName": userName,
		"name":     map[string]any{"givenName": "Given " + userName, "familyName": "Family"},
		"emails":   []any{map[string]any{"value": userName + "@example.com", "type": "work", "primary": true}},
		"active":   true,
	}
	for k, v := range extra {
		if v == nil {
			delete(body, k)
			continue
		}
		body[k] = v
	}
	r := e.must(http.StatusCreated, e.do("POST", "/Users", body))
	return r.str("id")
}

func (e *testEnv) createGroup(name string, members ...string) string {
	e.t.Helper()
	ms := []any{}
	for _, m := range members {
		ms = append(ms, map[string]any{"value": m})
	}
	r := e.must(http.StatusCreated, e.do("POST", "/Groups", map[string]any{
		"schemas": []string{URNGroup}, "displayName": name, "members": ms}))
	return r.str("id")
}

func patchBody(ops ...map[string]any) map[string]any {
	l := make([]any, len(ops))
	for i, o := range ops {
		l[i] = o
	}
	return map[string]any{"schemas": []string{urnPatchOp}, "Operations": l}
}

func op(o, path string, value any) map[string]any {
	m := map[string]any{"op": o}
	if path != "" {
		m["path"] = path
	}
	if value != nil {
		m["value"] = value
	}
	return m
}

// logText is every logged message and field, for leak checks.
func (e *testEnv) logText() string {
	var b strings.Builder
	for _, l := range e.logs.All() {
		b.WriteString(l.Message)
		for k, v := range l.ContextMap() {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
		b.WriteString("\n")
	}
	return b.String()
}
