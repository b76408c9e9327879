package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state"
)

// Two replicas on one Redis: SCIM pushes received by the standby reach the
// leader through the change log, and only the leader applies and writes
// shared state (invariant 7).
func TestStandbyForwardsPushesToTheLeader(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{})
	dir := t.TempDir()
	const token = "replica-test-token-42"
	t.Setenv("SCIM_TOKEN", token)
	cfgText := fmt.Sprintf(`state: {backend: redis, redis: {addrs: ["%s"], key_prefix: "r:"}, lock_ttl: 3s}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@daily"}
sources:
  - name: idp
    type: scim
    tokens: ["${SCIM_TOKEN}"]
targets:
  - name: app
    type: memory
    path: %s
`, srv.Addr(), filepath.Join(dir, "app.json"))
	cfgPath := filepath.Join(dir, "dirsync.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	type replica struct {
		d         *daemon
		base      string
		decisions chan state.Decision
		count     atomic.Int32
	}
	start := func(name string) *replica {
		cfg, err := loadConfig(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{decisions: make(chan state.Decision, 100)}
		var logs safeBuffer
		a, err := newApp(context.Background(), cfg, appOptions{logOut: &logs, onDecision: func(d state.Decision) {
			r.count.Add(1)
			r.decisions <- d
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.close)
		r.d = newDaemon(a)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		addr := make(chan string, 1)
		go r.d.serve(ctx, func(s string) { addr <- s })
		r.base = "http://" + <-addr + "/scim/idp/v2"
		return r
	}
	leader := start("a")
	deadline := time.Now().Add(10 * time.Second)
	for !leader.d.leader.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !leader.d.leader.Load() {
		t.Fatal("the first replica never became leader")
	}
	standby := start("b")
	time.Sleep(300 * time.Millisecond)
	if standby.d.leader.Load() {
		t.Fatal("two leaders")
	}
	do := func(method, url, body string) map[string]any {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d", method, url, resp.StatusCode)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	// Pushed to the standby only.
	u := do("POST", standby.base+"/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"kim@example.test",
		"emails":[{"value":"kim@example.test","primary":true}],"active":true}`)
	id, _ := u["id"].(string)
	waitDecision(t, leader.decisions, "create", 10*time.Second)
	start2 := time.Now()
	do("PATCH", standby.base+"/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	d := waitDecision(t, leader.decisions, "suspend", 10*time.Second)
	if d.Outcome != "applied" {
		t.Fatalf("suspend decision: %+v", d)
	}
	t.Logf("push to the standby → suspended by the leader in %v", time.Since(start2))
	if n := standby.count.Load(); n != 0 {
		t.Fatalf("the standby made %d decisions: only the leader applies", n)
	}
	// The leader drained the change log.
	left, err := leader.d.a.store.KVList(context.Background(), changeLogBucket)
	if err != nil || len(left) != 0 {
		t.Fatalf("change log after the runs: %d entries (%v)", len(left), err)
	}
}
