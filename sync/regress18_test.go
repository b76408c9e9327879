package sync_test

// Regression tests for issue 18, one group per class (TestRegression18<Class>...):
// what reconcile finds survives approval, an account belongs to one person
// by the application's own id, the same rules on every path, a link
// conflict is not an orphan, the clock, and end dates in the guard. Each
// uses the engine's harness (synctest, memtarget, memstore) and asserts
// the calls the application received, the decisions and the cache.

import (
	"slices"
	"testing"
	"time"

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
