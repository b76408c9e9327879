package targettest

import (
	"testing"
	"time"

	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
	"github.com/dirsync/dirsync/target/fakekit"
)

// Converge runs h (its fake injecting faults) until a run has no failure
// and ends ok, at most 8 runs, retrying quarantined accounts: convergence
// is what it checks. Then it calls stop (faults off) and checks that every
// kind of fault in injected() was injected, that the first run past
// planning applied at least minApplied actions (one user's failures do
// not hold up the others), and that some retry waited a Retry-After of 1s.
func Converge(t *testing.T, h *synctest.Harness, minApplied int, stop func(), injected func() []fakekit.Fault) {
	t.Helper()
	runs := 0
	firstApplied, firstFailed := -1, 0
	for ; runs < 8; runs++ {
		res := h.Run(dsync.RunOptions{Trigger: "test", RetryQuarantined: true})
		failed, applied, planned := 0, 0, true
		for _, d := range h.DecisionsOf(res.RunID) {
			switch d.Outcome {
			case "failed":
				failed++
				planned = planned && d.User != "*" // a failed list fails the run before any action
				t.Logf("run %d: %s %s: %s", runs+1, d.User, d.Action, d.Error)
			case "applied":
				applied++
			}
		}
		if planned && firstApplied < 0 {
			firstApplied, firstFailed = applied, failed
		}
		if failed == 0 && res.Status == "ok" {
			break
		}
	}
	stop()
	kinds := map[fakekit.Fault]int{}
	all := injected()
	for _, f := range all {
		if f != "" {
			kinds[f]++
		}
	}
	t.Logf("converged after %d run(s); %d requests, injected faults %v; first planned run: %d applied, %d failed", runs+1, len(all), kinds, firstApplied, firstFailed)
	if runs == 8 {
		t.Fatal("did not converge in 8 runs")
	}
	if len(kinds) != len(fakekit.AllFaults) {
		t.Fatalf("not every kind of fault was injected: %v", kinds)
	}
	if firstApplied < minApplied {
		t.Fatalf("the first planned run applied only %d actions (%d failed): failures were not isolated per user", firstApplied, firstFailed)
	}
	honoured := false
	for _, w := range h.Waits() {
		honoured = honoured || w == time.Second
	}
	if !honoured {
		t.Fatalf("no retry waited the Retry-After of 1s: %v", h.Waits())
	}
}
