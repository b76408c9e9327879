package allthenticate_test

import (
	"github.com/dirsync/dirsync/connector/targettest"
	"net/http"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/allthenticate"
	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"go.uber.org/zap"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = targettest.LogBuffer

func debugLogger() (*zap.Logger, *syncBuffer) { return targettest.DebugLogger() }

// env is one fake organisation and a connector wired to it.
type env struct {
	srv  *allthenticatefake.Server
	url  string
	tg   *allthenticate.Target
	logs *syncBuffer
	// mem is the connector's memory, shared by every connector a test
	// builds on this env (a restarted process finds what was learnt).
	mem *connector.MapMemory
}

func newEnv(t *testing.T, o allthenticatefake.Options, mods ...func(*allthenticate.Settings)) *env {
	t.Helper()
	srv, url := allthenticatefake.NewTestServer(t, o)
	e := &env{srv: srv, url: url, mem: connector.NewMapMemory()}
	s := allthenticate.Settings{BaseURL: url, APIKey: config.NewSecret(srv.APIKey())}
	for _, m := range mods {
		m(&s)
	}
	log, buf := debugLogger()
	e.logs = buf
	tg, err := allthenticate.New("allthenticate", s, connector.Deps{Logger: log, HTTPClient: &http.Client{Timeout: 5 * time.Second}, Memory: e.mem})
	if err != nil {
		t.Fatal(err)
	}
	e.tg = tg
	return e
}

// writes returns "METHOD path" of every request but reads.
func writes(calls []allthenticatefake.Call) []string {
	var out []string
	for _, c := range calls {
		if c.Method != http.MethodGet {
			out = append(out, c.Method+" "+c.Path)
		}
	}
	return out
}

// toggles counts the toggle requests sent.
func toggles(calls []allthenticatefake.Call) int {
	n := 0
	for _, c := range calls {
		if c.Path == "/togglesuspension" {
			n++
		}
	}
	return n
}

func parseTargets(t *testing.T, yaml string) []config.Target { return targettest.ParseTargets(t, yaml) }
