package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
	type replica struct {
		d         *daemon
		base      string
		decisions chan state.Decision
	}
	start := func(name string) *replica {
		d, addr, decisions := startTestDaemon(t, filepath.Join(dir, name), cfgText)
		return &replica{d: d, base: "http://" + addr + "/scim/idp/v2", decisions: decisions}
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
	// Pushed to the standby only.
	u := scimCall(t, token, "POST", standby.base+"/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"kim@example.test",
		"emails":[{"value":"kim@example.test","primary":true}],"active":true}`)
	id, _ := u["id"].(string)
	waitDecision(t, leader.decisions, "create", 10*time.Second)
	start2 := time.Now()
	scimCall(t, token, "PATCH", standby.base+"/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	d := waitDecision(t, leader.decisions, "suspend", 10*time.Second)
	if d.Outcome != "applied" {
		t.Fatalf("suspend decision: %+v", d)
	}
	t.Logf("push to the standby → suspended by the leader in %v", time.Since(start2))
	if n := len(standby.decisions); n != 0 {
		t.Fatalf("the standby made %d decisions: only the leader applies", n)
	}
	// The leader drained the change log.
	left, err := leader.d.a.store.KVList(context.Background(), changeLogBucket)
	if err != nil || len(left) != 0 {
		t.Fatalf("change log after the runs: %d entries (%v)", len(left), err)
	}
}

// Three replicas on a real Redis Cluster with state.leases: per_target
// split six targets two by two; SCIM pushes received by a replica without
// the sources' lease reach each target's holder, every target's decisions
// come from its holder alone, and an approval of a held run reaches the
// holder of its targets.
func TestReplicasShareTargets(t *testing.T) {
	cl := redissrv.StartCluster(t, 3)
	dir := t.TempDir()
	const token = "replica-share-token-42"
	t.Setenv("SCIM_TOKEN", token)
	var addrs []string
	for _, a := range cl.Addrs() {
		addrs = append(addrs, `"`+a+`"`)
	}
	var tg strings.Builder
	names := []string{"t1", "t2", "t3", "t4", "t5", "t6"}
	for _, n := range names {
		fmt.Fprintf(&tg, "  - {name: %s, type: memory, scope: [staff]}\n", n)
	}
	cfgText := fmt.Sprintf(`state: {backend: redis, redis: {addrs: [%s], key_prefix: "s:"}, lock_ttl: 3s, leases: per_target}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@daily"}
sources:
  - name: idp
    type: scim
    tokens: ["${SCIM_TOKEN}"]
targets:
%s`, strings.Join(addrs, ", "), tg.String())
	type replica struct {
		d         *daemon
		base      string
		decisions chan state.Decision
	}
	var rs []*replica
	for _, n := range []string{"a", "b", "c"} {
		d, addr, decisions := startTestDaemon(t, filepath.Join(dir, n), cfgText)
		rs = append(rs, &replica{d: d, base: "http://" + addr + "/scim/idp/v2", decisions: decisions})
	}
	// Fair share: two targets each, every target held once.
	split := func() bool {
		seen := map[string]int{}
		for _, r := range rs {
			h := r.d.leases.held()
			if len(h) != 2 {
				return false
			}
			for _, x := range h {
				seen[x]++
			}
		}
		return len(seen) == 6
	}
	for deadline := time.Now().Add(20 * time.Second); !split() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if !split() {
		for i, r := range rs {
			t.Logf("replica %d holds %v", i, r.d.leases.held())
		}
		t.Fatal("the six targets were not split two by two")
	}
	holder := map[string]int{}
	for i, r := range rs {
		for _, x := range r.d.leases.held() {
			holder[x] = i
		}
	}
	// Pushed to a replica that does not hold the sources' lease.
	push := rs[0]
	for _, r := range rs {
		if !r.d.leader.Load() {
			push = r
			break
		}
	}
	// collect waits for want decisions of action with outcome on every
	// target, each made by the target's holder, and returns the run ids.
	collect := func(action, outcome string, want int) map[string]bool {
		t.Helper()
		got, runs := map[string]int{}, map[string]bool{}
		done := func() bool {
			for _, n := range names {
				if got[n] < want {
					return false
				}
			}
			return true
		}
		for deadline := time.Now().Add(20 * time.Second); !done() && time.Now().Before(deadline); {
			for i, r := range rs {
				select {
				case d := <-r.decisions:
					if d.Action != action || d.Outcome != outcome {
						continue
					}
					if holder[d.Target] != i {
						t.Errorf("%s (%s) on %s by replica %d; its holder is %d", action, outcome, d.Target, i, holder[d.Target])
					}
					got[d.Target]++
					runs[d.RunID] = true
				default:
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // and nothing more
		for _, r := range rs {
			for len(r.decisions) > 0 {
				if d := <-r.decisions; d.Action == action && d.Outcome == outcome {
					got[d.Target]++
				}
			}
		}
		for _, n := range names {
			if got[n] != want {
				t.Errorf("%s (%s) on %s: %d decisions, want %d", action, outcome, n, got[n], want)
			}
		}
		return runs
	}
	var ids []string
	for _, who := range []string{"kim", "lee"} {
		u := scimCall(t, token, "POST", push.base+"/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s@example.test",
			"emails":[{"value":"%[1]s@example.test","primary":true}],"active":true}`, who))
		ids = append(ids, u["id"].(string))
	}
	g := scimCall(t, token, "POST", push.base+"/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"staff",
		"members":[{"value":"%s"},{"value":"%s"}]}`, ids[0], ids[1]))
	collect("create", "applied", 2)
	// Both leave the scope in one change: two suspensions of two accounts
	// is a mass change, held on every target by its holder.
	scimCall(t, token, "PATCH", push.base+"/Groups/"+g["id"].(string), `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members"}]}`)
	held := collect("suspend", "held", 2)
	if len(held) == 0 {
		t.Fatal("no held run")
	}
	for run := range held {
		if _, err := askLeader(context.Background(), push.d.a.store, request{Op: "approve", RunID: run, By: "test"}, 20*time.Second); err != nil {
			t.Fatalf("approve %s: %v", run, err)
		}
	}
	collect("suspend", "applied", 2)
	// Back in scope, then out again: held again, and discarded from the
	// sources' holder, each target's holder drops its part.
	gid := g["id"].(string)
	scimCall(t, token, "PATCH", push.base+"/Groups/"+gid, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"%s"},{"value":"%s"}]}]}`, ids[0], ids[1]))
	collect("unsuspend", "applied", 2)
	scimCall(t, token, "PATCH", push.base+"/Groups/"+gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members"}]}`)
	var src *daemon
	for _, r := range rs {
		if r.d.leader.Load() {
			src = r.d
		}
	}
	api := &consoleAPI{a: src.a, leading: src.a.leading, handOver: src.handOverApproval, leader: func() string { return "test" }}
	for run := range collect("suspend", "held", 2) {
		if err := api.Discard(context.Background(), run, "test"); err != nil && !strings.Contains(err.Error(), "no held plan") {
			t.Fatalf("discard %s: %v", run, err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		left, err := src.a.store.HeldRuns(context.Background())
		if err == nil && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("held plans left after the discard: %v %v", left, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With state.leases: per_target, one-shot commands take every target's
// lease: sync applies, plan shows every target, a held run is approved.
func TestCommandsWithPerTargetLeases(t *testing.T) {
	e := newEnv(t, 100, "")
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.config, []byte(strings.Replace(string(b), "  backend: embedded\n", "  backend: embedded\n  leases: per_target\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errb := e.run("sync"); code != exitOK || !strings.Contains(out, "100 applied") {
		t.Fatalf("first sync: exit %d\n%s\n%s", code, out, errb)
	}
	dis := map[int]bool{}
	for i := range 12 {
		dis[i] = true
	}
	e.writeUsers(100, dis)
	if code, out, _ := e.run("plan"); code != exitOK || !strings.Contains(out, "suspend") {
		t.Fatalf("plan: exit %d: %s", code, out)
	}
	code, _, errb := e.run("sync")
	if code != exitHeld {
		t.Fatalf("exit %d, want %d (held): %s", code, exitHeld, errb)
	}
	run := regexp.MustCompile("approve ([0-9]{8}T[0-9]{6}Z-[0-9a-f]{6})").FindStringSubmatch(errb)
	if run == nil {
		t.Fatalf("no run id in %q", errb)
	}
	if code, out, errb := e.run("approve", run[1]); code != exitOK || !strings.Contains(out, "12 applied") {
		t.Fatalf("approve: exit %d: %s %s", code, out, errb)
	}
}
