package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
)

// Operator slips (issue 19), run the way an IT team makes them: the CLI on
// a file source of 40 people, a memory target, embedded state and the
// default safety limits — unless the slip needs something else.

// TestSlipTwoDeploymentsOneApplicationWarned: two daemons on one Redis with
// different key_prefix each hold their own leader lock, so both lead and
// both apply to the same application. Each registers the application's
// endpoint in the shared registry: /readyz and `dirsync validate` name the
// other deployment.
func TestSlipTwoDeploymentsOneApplicationWarned(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{})
	dir := t.TempDir()
	hr := filepath.Join(dir, "hr.json")
	os.WriteFile(hr, []byte(`{"users":[{"id":"e1","username":"ann","email":"ann@example.test","active":true}]}`), 0o600)
	app := filepath.Join(dir, "app.json")
	cfgFor := func(prefix string) string {
		return fmt.Sprintf(`state: {backend: redis, redis: {addrs: ["%s"], key_prefix: "%s"}, lock_ttl: 3s}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@daily"}
sources: [{name: hr, type: file, path: %s}]
targets: [{name: app-%s, type: memory, path: %s}]
`, srv.Addr(), prefix, hr, strings.TrimSuffix(prefix, ":"), app)
	}
	_, addrA, _ := startTestDaemon(t, filepath.Join(dir, "a"), cfgFor("a:"))
	_, addrB, _ := startTestDaemon(t, filepath.Join(dir, "b"), cfgFor("b:"))
	readyz := func(addr string) string {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, c := range []struct{ addr, other string }{{addrA, `key_prefix "b:"`}, {addrB, `key_prefix "a:"`}} {
		deadline := time.Now().Add(15 * time.Second)
		body := readyz(c.addr)
		for !strings.Contains(body, "WARNING") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			body = readyz(c.addr)
		}
		if !strings.Contains(body, "WARNING") || !strings.Contains(body, c.other) || !strings.Contains(body, "memory "+app) {
			t.Fatalf("/readyz does not warn about the other deployment:\n%s", body)
		}
	}
	cfgPath := filepath.Join(dir, "a", "dirsync.yaml")
	var out, errb strings.Builder
	code := runMain(context.Background(), []string{"validate", "--config", cfgPath}, &out, &errb)
	if code != exitOK || !strings.Contains(errb.String(), `warning: target app-a: another dirsync deployment (key_prefix "b:", its target app-b) also writes to memory `+app) {
		t.Fatalf("validate: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// TestSlipTwoTargetsOneApplicationWarned: validate warns when two targets of
// one configuration write to the same application.
func TestSlipTwoTargetsOneApplicationWarned(t *testing.T) {
	e := newEnv(t, 40, "")
	e.appendConfig(fmt.Sprintf("  - {name: app2, type: memory, path: %s}\n", filepath.Join(e.dir, "app.json")))
	code, _, errb := e.run("validate")
	if code != exitOK || !strings.Contains(errb, "warning: targets app, app2 all write to memory "+filepath.Join(e.dir, "app.json")) {
		t.Fatalf("validate: exit %d\n%s", code, errb)
	}
}

// appendConfig adds lines at the end of the config file (under targets:).
func (e *env) appendConfig(lines string) {
	e.t.Helper()
	b, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.config, append(b, lines...), 0o600); err != nil {
		e.t.Fatal(err)
	}
}
