package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

type env struct {
	t      *testing.T
	dir    string
	config string
	hr     string
}

type hrUser struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Email    string   `json:"email"`
	Active   bool     `json:"active"`
	Groups   []string `json:"groups,omitempty"`
	Expires  string   `json:"expires,omitempty"`
}

const knownSecret = "s3cr3t-Value-!@#"

func newEnv(t *testing.T, n int, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "dirsync.yaml"), hr: filepath.Join(dir, "hr.json")}
	e.writeUsers(n, nil)
	t.Setenv("TEST_REDIS_PASSWORD", knownSecret)
	cfg := fmt.Sprintf(`log: {level: debug}
state:
  backend: embedded
  path: %s
  redis: {password: "${TEST_REDIS_PASSWORD}"}
http: {listen: "127.0.0.1:0"}
schedule: {incremental: 100ms}
sources:
  - name: hr
    type: file
    path: %s
targets:
  - name: app
    type: memory
    path: %s
    scope: [staff]
%s`, filepath.Join(dir, "state.db"), e.hr, filepath.Join(dir, "app.json"), extra)
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// writeUsers writes n staff users; the ones in disabled are inactive.
func (e *env) writeUsers(n int, disabled map[int]bool) { e.writeUsersExp(n, disabled, nil) }

// writeUsersExp is writeUsers with expiry times for some users.
func (e *env) writeUsersExp(n int, disabled map[int]bool, expires map[int]time.Time) {
	e.t.Helper()
	var us []hrUser
	for i := range n {
		u := hrUser{ID: fmt.Sprintf("e%03d", i), Username: fmt.Sprintf("user%03d", i), Email: fmt.Sprintf("user%03d@example.test", i),
			Active: !disabled[i], Groups: []string{"staff"}}
		if t, ok := expires[i]; ok {
			u.Expires = t.UTC().Format(time.RFC3339)
		}
		us = append(us, u)
	}
	b, _ := json.Marshal(map[string]any{"users": us})
	if err := os.WriteFile(e.hr, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) run(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	args = append(args, "--config", e.config)
	code = runMain(context.Background(), args, &out, &errb)
	if strings.Contains(out.String()+errb.String(), knownSecret) {
		e.t.Fatalf("dirsync %v printed a configured secret", args)
	}
	return code, out.String(), errb.String()
}

func TestValidateReportsEveryProblemWithItsKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	os.WriteFile(p, []byte(`state: {backend: embeded}
schedule: {timezone: Mars/Olympus}
sources:
  - {name: hr, type: file, path: /x.json, colour: red}
targets:
  - {name: app, type: memory, sources: [nope], rate_limit: -1, deprovision: {action: vanish}}
  - {name: app, type: nosuch}
`), 0o600)
	var out, errb bytes.Buffer
	code := runMain(context.Background(), []string{"validate", "--config", p}, &out, &errb)
	if code != exitFailed {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitFailed, errb.String())
	}
	for _, want := range []string{"state.backend", "schedule.timezone", "sources[0].colour: unknown key", "targets[0].sources[0]: unknown source \"nope\"",
		"targets[0].rate_limit: must be > 0", "targets[0].deprovision.action", "targets[1].name: duplicate", "targets[1].type: unknown target type \"nosuch\""} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, errb.String())
		}
	}
}

func TestSyncExplainDecisions(t *testing.T) {
	e := newEnv(t, 40, "")
	code, out, errb := e.run("sync")
	if code != exitOK || !strings.Contains(out, "40 applied") {
		t.Fatalf("first sync: exit %d\n%s\n%s", code, out, errb)
	}
	if code, out, _ = e.run("sync"); code != exitOK || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second sync: exit %d: %s", code, out)
	}
	e.writeUsers(40, map[int]bool{7: true})
	if code, out, _ = e.run("sync"); code != exitOK || !strings.Contains(out, "1 applied") {
		t.Fatalf("sync after a disable: exit %d: %s", code, out)
	}
	code, out, _ = e.run("decisions", "--user", "user007", "--output", "json")
	if code != exitOK || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"action":"suspend"`) {
		t.Fatalf("decisions: exit %d:\n%s", code, out)
	}
	code, out, _ = e.run("explain", "user007")
	for _, want := range []string{"source hr:", "active=false", "in scope (member of staff)", "suspended=true", "nothing to do"} {
		if !strings.Contains(out, want) {
			t.Fatalf("explain lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}

func TestHeldRunAndApprove(t *testing.T) {
	e := newEnv(t, 100, "")
	e.run("sync")
	dis := map[int]bool{}
	for i := range 12 {
		dis[i] = true
	}
	e.writeUsers(100, dis)
	code, _, errb := e.run("sync")
	if code != exitHeld {
		t.Fatalf("exit %d, want %d (held): %s", code, exitHeld, errb)
	}
	run := regexp.MustCompile("approve ([0-9]{8}T[0-9]{6}Z-[0-9a-f]{6})").FindStringSubmatch(errb)
	if run == nil {
		t.Fatalf("no run id in %q", errb)
	}
	if code, out, _ := e.run("approve"); code != exitOK || !strings.Contains(out, run[1]) {
		t.Fatalf("approve (list): exit %d: %s", code, out)
	}
	if code, out, errb := e.run("approve", run[1]); code != exitOK || !strings.Contains(out, "12 applied") {
		t.Fatalf("approve: exit %d: %s %s", code, out, errb)
	}
}

func TestPlanFileAndStaleApply(t *testing.T) {
	e := newEnv(t, 30, "")
	pf := filepath.Join(e.dir, "plan.json")
	// The default rate limit (10 calls/s, burst 10): 20 calls after the burst.
	if code, out, _ := e.run("plan", "--out", pf); code != exitOK || !strings.Contains(out, "30 planned actions") ||
		!strings.Contains(out, "about 2 s at 10 calls/s for app: 30 creates") {
		t.Fatalf("plan: exit %d: %s", code, out)
	}
	if code, out, _ := e.run("apply", pf); code != exitOK || !strings.Contains(out, "30 applied") {
		t.Fatalf("apply: exit %d: %s", code, out)
	}
	e.writeUsers(30, map[int]bool{1: true})
	e.run("plan", "--out", pf)
	e.writeUsers(31, map[int]bool{1: true})
	e.run("sync")
	if code, _, errb := e.run("apply", pf); code != exitStale {
		t.Fatalf("stale apply: exit %d, want %d: %s", code, exitStale, errb)
	}
}

func TestEmptySourceFailsWithoutTouchingTargets(t *testing.T) {
	e := newEnv(t, 30, "")
	e.run("sync")
	os.WriteFile(e.hr, []byte(`{"users":[]}`), 0o600)
	before, _ := os.ReadFile(filepath.Join(e.dir, "app.json"))
	code, _, errb := e.run("sync")
	if code != exitFailed || !strings.Contains(errb, "hr") {
		t.Fatalf("exit %d: %s", code, errb)
	}
	after, _ := os.ReadFile(filepath.Join(e.dir, "app.json"))
	if !bytes.Equal(before, after) {
		t.Fatal("the target changed after an empty source")
	}
}

func TestDaemonServesAndPicksUpChanges(t *testing.T) {
	e := newEnv(t, 30, "")
	cfg, err := loadConfig(e.config)
	if err != nil {
		t.Fatal(err)
	}
	var logs safeBuffer
	a, err := newApp(context.Background(), cfg, appOptions{logOut: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	d := newDaemon(a)
	ctx, cancel := context.WithCancel(context.Background())
	addrCh := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- d.serve(ctx, func(addr string) { addrCh <- addr }) }()
	addr := <-addrCh
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if c, _ := get("/healthz"); c != 200 {
		t.Fatalf("/healthz %d", c)
	}
	waitFor(t, func() bool { return d.runCount.Load() >= 1 })
	if c, body := get("/readyz"); c != 200 || !strings.Contains(body, "leader") {
		t.Fatalf("/readyz %d %s", c, body)
	}
	e.writeUsers(30, map[int]bool{3: true})
	waitFor(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(e.dir, "app.json"))
		return strings.Contains(string(b), `"suspended":true`)
	})
	waitFor(t, func() bool {
		c, body := get("/metrics")
		return c == 200 && strings.Contains(body, `dirsync_actions_total{action="suspend",outcome="applied",target="app"} 1`)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
	if strings.Contains(logs.String(), knownSecret) {
		t.Fatal("a configured secret reached the log")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An expiry passing suspends the account within seconds, though nothing
// changed in the source and no scheduled run is due.
func TestDaemonSuspendsAtExpiry(t *testing.T) {
	e := newEnv(t, 30, "")
	// No polling: only the clock can trigger the suspension.
	b, _ := os.ReadFile(e.config)
	os.WriteFile(e.config, []byte(strings.Replace(string(b), "schedule: {incremental: 100ms}", "schedule: {incremental: 0s, full: \"@daily\"}", 1)), 0o600)
	exp := time.Now().Add(3 * time.Second).Truncate(time.Second) // the file holds whole seconds
	e.writeUsersExp(30, nil, map[int]time.Time{5: exp})
	cfg, err := loadConfig(e.config)
	if err != nil {
		t.Fatal(err)
	}
	var logs safeBuffer
	a, err := newApp(context.Background(), cfg, appOptions{logOut: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	d := newDaemon(a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.serve(ctx, nil)
	waitFor(t, func() bool {
		return strings.Contains(logs.String(), `"trigger":"expiry","target":"app","user":"user005","action":"suspend"`)
	})
	if late := time.Since(exp); late < 0 {
		t.Fatalf("suspended %v before the expiry", -late)
	}
	b, _ = os.ReadFile(filepath.Join(e.dir, "app.json"))
	if !strings.Contains(string(b), `"suspended":true`) {
		t.Fatal("the application does not show the account suspended")
	}
}
