package sync_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

func heldDecisions(t *testing.T, st state.Store) []state.Decision {
	t.Helper()
	ds, err := st.Decisions(context.Background(), state.DecisionQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var out []state.Decision
	for _, d := range ds {
		if d.Outcome == dsync.OutcomeHeld {
			out = append(out, d)
		}
	}
	return out
}

// heldTwelve syncs 100 people, then disables 12 (past the guard's 10): the
// second run holds their suspensions.
func heldTwelve(t *testing.T) (*synctest.Harness, *memtarget.Target, []identity.User, *dsync.Result) {
	t.Helper()
	h, mt := setup(t, func(c *config.TargetCommon) { c.Scope = []string{"staff"} })
	us := people(100)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	for i := range 12 {
		us[i].Active = false
	}
	h.Source.Set(us...)
	return h, mt, us, h.Run(dsync.RunOptions{})
}

func heldIDs(t *testing.T, st state.Store) []string {
	t.Helper()
	ids, err := st.HeldRuns(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// A plan that waits through 100 runs is one held decision per step in the
// journal, and one stored plan; two people coming back leave it as it is
// (its re-check says 10 of 12).
func TestHeldPlanWaitsThrough100RunsWithOneDecisionPerStep(t *testing.T) {
	h, _, us, first := heldTwelve(t)
	for range 100 {
		if res := h.Run(dsync.RunOptions{}); !res.Held {
			t.Fatalf("run %s not held", res.RunID)
		}
	}
	if n := len(heldDecisions(t, h.Store)); n != 12 {
		t.Fatalf("%d held decisions after 101 runs, want 12 (one per step)", n)
	}
	if ids := heldIDs(t, h.Store); len(ids) != 1 || !strings.HasPrefix(ids[0], first.RunID) {
		t.Fatalf("held plans %v, want the first run's only", ids)
	}
	us[0].Active, us[1].Active = true, true
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	checks, err := h.Engine.RecheckStored(context.Background(), first.RunID)
	if err != nil {
		t.Fatal(err)
	}
	wanted := 0
	for _, w := range checks[0].Wanted {
		if w {
			wanted++
		}
	}
	if ids := heldIDs(t, h.Store); len(ids) != 1 || wanted != 10 || len(heldDecisions(t, h.Store)) != 12 {
		t.Fatalf("after two came back: plans %v, %d wanted, %d held decisions", ids, wanted, len(heldDecisions(t, h.Store)))
	}
}

// A plan a run no longer wants any step of resolves itself, with a
// decision saying so.
func TestHeldPlanNoLongerWantedResolvesItself(t *testing.T) {
	h, mt, us, held := heldTwelve(t)
	for i := range 12 {
		us[i].Active = true
	}
	h.Source.Set(us...)
	mt.Reset()
	res := h.Run(dsync.RunOptions{})
	if ids := heldIDs(t, h.Store); len(ids) != 0 {
		t.Fatalf("held plans %v after nothing is wanted any more", ids)
	}
	ds := h.DecisionsOf(res.RunID)
	if len(ds) != 1 || ds[0].Action != "held_plan" || !strings.Contains(ds[0].Reason, "held plan of run "+held.RunID+" resolved itself") {
		t.Fatalf("decisions %+v, want one saying the plan resolved itself", ds)
	}
	if len(mt.Calls()) != 0 {
		t.Fatalf("calls %v", mt.Calls())
	}
}

// A discarded plan stays discarded while the sources say the same; a new
// leaver makes a new plan.
func TestDiscardedPlanStaysDiscardedUntilTheSourcesChange(t *testing.T) {
	h, mt, us, held := heldTwelve(t)
	if err := h.Engine.Discard(context.Background(), held.RunID, "ann"); err != nil {
		t.Fatal(err)
	}
	mt.Reset()
	for range 3 {
		h.Run(dsync.RunOptions{})
	}
	if ids := heldIDs(t, h.Store); len(ids) != 0 || len(heldDecisions(t, h.Store)) != 12 || len(mt.Calls()) != 0 {
		t.Fatalf("after a discard: plans %v, %d held decisions, calls %v", ids, len(heldDecisions(t, h.Store)), mt.Calls())
	}
	us[12].Active = false
	h.Source.Set(us...)
	again := h.Run(dsync.RunOptions{})
	if ids := heldIDs(t, h.Store); len(ids) != 1 || !strings.HasPrefix(ids[0], again.RunID) || len(heldDecisions(t, h.Store)) != 25 {
		t.Fatalf("a new leaver after the discard: plans %v, %d held decisions (want a new plan of 13)", ids, len(heldDecisions(t, h.Store)))
	}
}

// The plan index answers what Explain and RecheckStored answer, from one
// plan-only run.
func TestPlanIndexMatchesExplainAndRecheck(t *testing.T) {
	h, _, us, held := heldTwelve(t)
	us[0].Active, us[1].Active = true, true
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{}) // held as before; reads updated
	ctx := context.Background()
	ix, err := h.Engine.IndexPlan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := h.Engine.RecheckStored(ctx, held.RunID)
	if err != nil {
		t.Fatal(err)
	}
	hps, err := h.Engine.HeldPlans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := ix.WantedOf(hps[0]).Wanted
	for k, w := range checks[0].Wanted {
		if got[k] != w {
			t.Fatalf("step %s: index says wanted=%v, re-check %v", k, got[k], w)
		}
	}
	xs, err := h.Engine.Explain(ctx, "u005", dsync.RunOptions{UseStored: true})
	if err != nil {
		t.Fatal(err)
	}
	ixs := ix.ByKey[ix.Names["u005"]]
	if len(xs) != 1 || len(ixs) != 1 || len(xs[0].Steps) != len(ixs[0].Steps) || xs[0].InScope != ixs[0].InScope || ixs[0].User == nil || ixs[0].User.Active {
		t.Fatalf("explain %+v\nindex %+v", xs, ixs)
	}
}
