package sync_test

// Regression tests for issue 18, one group per class (TestRegression18<Class>...):
// what reconcile finds survives approval, an account belongs to one person
// by the application's own id, the same rules on every path, a link
// conflict is not an orphan, the clock, and end dates in the guard. Each
// uses the engine's harness (synctest, memtarget, memstore) and asserts
// the calls the application received, the decisions and the cache.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	dsync "github.com/dirsync/dirsync/sync"
)

// --- 5. The clock ---

// An expiry passes; the next run is a targeted run for someone else (a SCIM
// push). The expired person stays due, and the run the timer then makes
// suspends them.
func TestRegression18ExpiryStaysDueAcrossTargetedRun(t *testing.T) {
	h, mt := setup(t)
	us := people(30)
	exp := h.Clock.Now().Add(time.Hour)
	us[1].Expires = &exp
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if at, keys := h.Engine.Due(); !at.Equal(exp) || !slices.Equal(keys, []string{"u001"}) {
		t.Fatalf("Due() = %v %v, want %v [u001]", at, keys, exp)
	}
	h.Clock.Advance(2 * time.Hour) // the expiry passed; no run yet
	other := us[5]
	other.DisplayName = "Renamed"
	h.Source.Set(append(slices.Clone(us[:5]), append([]identity.User{other}, us[6:]...)...)...)
	keys, err := h.Engine.MergeChange(t.Context(), "hr", source.Change{Upserts: []identity.User{other}})
	if err != nil {
		t.Fatal(err)
	}
	h.Run(dsync.RunOptions{Trigger: "scim", Keys: keys})
	at, due := h.Engine.Due()
	if !at.Equal(exp) || !slices.Equal(due, []string{"u001"}) {
		t.Fatalf("Due() = %v %v after a targeted run for u005; want the passed expiry %v [u001]", at, due, exp)
	}
	h.Run(dsync.RunOptions{Trigger: "expiry", UseStored: true}) // what the timer runs
	if a, _ := mt.Get("u001"); !a.Suspended {
		t.Fatal("the expired contractor is still active after the timer's run")
	}
	if at, _ := h.Engine.Due(); !at.IsZero() {
		t.Fatalf("Due() = %v after the expiry was applied; want nothing", at)
	}
}

// --- 6. End dates in the guard ---

// A bad read gives all 40 people an end date: in the past (the suspensions
// and the expiries are held), or two hours ahead (the expiries are held).
// No set_expiry reaches the application.
func TestRegression18MassEndDatesAreHeld(t *testing.T) {
	for _, ahead := range []time.Duration{-time.Hour, 2 * time.Hour} {
		t.Run(ahead.String(), func(t *testing.T) {
			h, mt := setup(t)
			us := people(40)
			h.Source.Set(us...)
			h.Run(dsync.RunOptions{})
			mt.Reset()
			end := h.Clock.Now().Add(ahead)
			for i := range us {
				us[i].Expires = &end
			}
			h.Source.Set(us...)
			res := h.Run(dsync.RunOptions{})
			if !res.Held {
				t.Fatalf("40 end dates were not held: status %s, decisions %v", res.Status, actionsOf(h.DecisionsOf(res.RunID), ""))
			}
			if n := count(mt, connector.ActSetExpiry, ""); n != 0 {
				t.Fatalf("%d set_expiry calls went out", n)
			}
			if n := count(mt, connector.ActSuspend, ""); n != 0 {
				t.Fatalf("%d suspend calls went out", n)
			}
			if err := approve(h.Engine, res.RunID); err != nil {
				t.Fatal(err)
			}
			if n := count(mt, connector.ActSetExpiry, ""); n != 40 {
				t.Fatalf("approved: %d set_expiry calls, want 40", n)
			}
		})
	}
}

// --- 1. What reconcile finds survives approval ---

// 12 leavers are re-enabled by hand; the reconcile's 12 re-suspensions
// exceed the guard and are held. Approving re-reads the application: the
// 11 still active are suspended, the one an administrator suspended again
// in between is skipped with a decision, and the next reconcile is clean.
func TestRegression18HeldReconcileDriftIsApplied(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "report"} })
	us := people(60)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	for i := range 12 {
		us[i].Active = false
	}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{AllowMassChange: true})
	for i := range 12 {
		mt.Edit(us[i].Key, func(a *identity.Account) { a.Suspended = false })
	}
	mt.Reset()
	res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	if !res.Held || count(mt, connector.ActSuspend, "") != 0 {
		t.Fatalf("12 re-suspensions: held=%v, %d sent; want held and none sent", res.Held, count(mt, connector.ActSuspend, ""))
	}
	checks, err := h.Engine.Recheck(t.Context(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		for id, wanted := range c.Wanted {
			if !wanted {
				t.Errorf("re-check: held step %s no longer wanted, though the application still has it active", id)
			}
		}
	}
	mt.Edit("u000", func(a *identity.Account) { a.Suspended = true }) // fixed by hand meanwhile
	if err := approve(h.Engine, res.RunID); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if a, _ := mt.Get(us[i].Key); !a.Suspended {
			t.Errorf("leaver %s re-enabled by hand is still active after the approval", us[i].Key)
		}
	}
	if n := count(mt, connector.ActSuspend, ""); n != 11 {
		t.Errorf("approval sent %d suspensions, want 11 (u000 was suspended by hand)", n)
	}
	mt.Reset()
	res = h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	if res.Held || len(mt.Calls()) != 0 {
		t.Fatalf("the next reconcile: held=%v calls=%v; want nothing to do", res.Held, mt.Calls())
	}
	if held, _ := h.Engine.HeldPlans(t.Context()); len(held) != 0 {
		t.Fatalf("held plans left after the approval: %+v", held)
	}
}

// Orphan suspensions held by the guard are applied when approved.
func TestRegression18HeldOrphanSuspensionsAreApplied(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Reconcile = config.Reconcile{Orphans: "suspend"} })
	h.Source.Set(people(20)...)
	h.Run(dsync.RunOptions{})
	for i := range 15 {
		mt.Seed(identity.Account{Key: fmt.Sprintf("o%02d", i), Username: fmt.Sprintf("former%02d", i)})
	}
	res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	if !res.Held || count(mt, connector.ActSuspend, "") != 0 {
		t.Fatalf("15 orphans: held=%v; want held, none sent", res.Held)
	}
	if err := approve(h.Engine, res.RunID); err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		if a, _ := mt.Get(fmt.Sprintf("o%02d", i)); !a.Suspended {
			t.Errorf("orphan o%02d is active after the approval", i)
		}
	}
}
