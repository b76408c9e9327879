package ezeep_test

import (
	"github.com/dirsync/dirsync/connector/targettest"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeep"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"go.uber.org/zap"
)

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = targettest.LogBuffer

func debugLogger() (*zap.Logger, *syncBuffer) { return targettest.DebugLogger() }

// clock is a settable clock shared by the fake and the connector.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one fake server and a connector wired to it, with groups
// "staff" and "color" known to both.
type env struct {
	srv    *ezeepfake.Server
	url    string
	clock  *clock
	tg     connector.Connector
	core   *ezeep.Target
	logs   *syncBuffer
	groups map[string]string // name → id
}

func newEnv(t *testing.T, o ezeepfake.Options, c ezeep.Common, mods ...func(*ezeep.Settings)) *env {
	t.Helper()
	clk := newClock()
	if o.Now == nil {
		o.Now = clk.Now
	}
	srv, url := ezeepfake.NewTestServer(t, o)
	e := &env{srv: srv, url: url, clock: clk, groups: map[string]string{}}
	for _, g := range []string{"staff", "color"} {
		e.groups[g] = srv.AddGroup(g)
	}
	s := ezeep.Settings{AccountURL: url, PrintingURL: url + "/printing/v1", ClientID: srv.ClientID(),
		ClientSecret: config.NewSecret(srv.ClientSecret()), GroupIDs: e.groups}
	for _, m := range mods {
		m(&s)
	}
	log, buf := debugLogger()
	e.logs = buf
	tg, err := ezeep.New("ezeep", s, connector.Deps{Logger: log, Now: clk.Now, HTTPClient: &http.Client{Timeout: 5 * time.Second}}, c)
	if err != nil {
		t.Fatal(err)
	}
	e.tg = tg
	switch x := tg.(type) {
	case *ezeep.Target:
		e.core = x
	case *ezeep.Suspending:
		e.core = x.Target
	}
	return e
}

// writes returns "METHOD path" of every recorded request but reads, token
// requests and requests refused for an expired token (not applied; sent
// again with a fresh one).
func writes(calls []ezeepfake.Call) []string {
	var out []string
	for _, c := range calls {
		if c.Method != http.MethodGet && !strings.HasPrefix(c.Path, "/oauth/") && c.Status != http.StatusUnauthorized {
			out = append(out, c.Method+" "+c.Path)
		}
	}
	return out
}

func parseTargets(t *testing.T, yaml string) []config.Target { return targettest.ParseTargets(t, yaml) }
