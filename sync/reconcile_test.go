package sync_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/memtarget"
)

func setupReconcile(t *testing.T, mods ...func(*config.TargetCommon)) (*synctest.Harness, *memtarget.Target) {
	t.Helper()
	mods = append([]func(*config.TargetCommon){func(c *config.TargetCommon) {
		c.Roles = []config.RoleRule{{Group: "admins", Role: "admin"}}
		c.DefaultRole = "user"
		c.Groups = []config.GroupRule{{Group: "vpn"}, {Group: "ops"}}
		c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "report"}
	}}, mods...)
	h, mt := setup(t, mods...)
	us := people(40)
	us[3].Groups = []string{"staff", "vpn"}
	us[6].Groups = []string{"staff", "ops"}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	us[2].Active = false // a leaver
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()
	return h, mt
}

func decisionsOf(ds []state.Decision, action string) []state.Decision {
	var out []state.Decision
	for _, d := range ds {
		if d.Action == action {
			out = append(out, d)
		}
	}
	return out
}

func TestReconcileRevertsAccessAddedByHand(t *testing.T) {
	h, mt := setupReconcile(t)
	// An admin re-enables the leaver, raises u005 to admin and adds u003 to ops.
	mt.Edit("u002", func(a *identity.Account) { a.Suspended = false })
	mt.Edit("u005", func(a *identity.Account) { a.Role = "admin" })
	mt.Edit("u003", func(a *identity.Account) { a.Groups = []string{"ops", "vpn"} })
	// A normal run trusts the cache: nothing is noticed.
	h.Run(dsync.RunOptions{})
	if n := len(mt.Calls()); n != 0 {
		t.Fatalf("a normal run sent %d calls", n)
	}
	res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	calls := actionsOf(h.DecisionsOf(res.RunID), dsync.OutcomeApplied)
	want := []string{"u002:drift", "u002:suspend", "u003:drift", "u003:set_groups", "u005:drift", "u005:set_role"}
	if !slices.Equal(calls, want) {
		t.Fatalf("applied decisions %v, want %v", calls, want)
	}
	if a, _ := mt.Get("u002"); !a.Suspended {
		t.Fatal("the leader re-enabled by hand is still active")
	}
	if a, _ := mt.Get("u005"); a.Role != "user" {
		t.Fatalf("role raised by hand not lowered: %q", a.Role)
	}
	if a, _ := mt.Get("u003"); !slices.Equal(a.Groups, []string{"vpn"}) {
		t.Fatalf("groups added by hand not removed: %v", a.Groups)
	}
	for _, d := range decisionsOf(h.DecisionsOf(res.RunID), "drift") {
		if !strings.Contains(d.Reason, "changed outside dirsync") || !strings.Contains(d.Reason, "cached") || !strings.Contains(d.Reason, "live") {
			t.Fatalf("drift decision must name the field, cached and live values: %+v", d)
		}
	}
	// A no-op reconcile sends no write.
	mt.Reset()
	res = h.Run(dsync.RunOptions{Reconcile: true})
	if n := len(mt.Calls()); n != 0 || len(h.DecisionsOf(res.RunID)) != 0 {
		t.Fatalf("no-op reconcile: %d calls, decisions %+v", n, h.DecisionsOf(res.RunID))
	}
}

func TestReconcileDriftReportOnlyForNonAccessChanges(t *testing.T) {
	h, mt := setupReconcile(t, func(c *config.TargetCommon) { c.Reconcile.Drift = "report" })
	mt.Edit("u006", func(a *identity.Account) { a.Groups = nil; a.DisplayName = "Changed By Hand" }) // removal + profile
	mt.Edit("u007", func(a *identity.Account) { a.Suspended = false; a.Role = "admin" })             // nothing to add: role raised
	res := h.Run(dsync.RunOptions{Reconcile: true})
	got := actionsOf(h.DecisionsOf(res.RunID), "")
	want := []string{"u006:drift", "u006:drift", "u007:drift", "u007:set_role"}
	if !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	if a, _ := mt.Get("u006"); a.DisplayName != "Changed By Hand" {
		t.Fatal("report-only drift was changed")
	}
}

func TestReconcileOrphansAndMissing(t *testing.T) {
	h, mt := setupReconcile(t, func(c *config.TargetCommon) {
		c.Reconcile.Orphans = "suspend"
		c.Reconcile.Allow = []string{"svc-*", "breakglass"}
	})
	mt.Seed(identity.Account{Key: "hand-made", Username: "old.employee", Email: "old@example.test"})
	mt.Seed(identity.Account{Key: "svc", Username: "svc-backup", Email: "backup@example.test"})
	mt.Seed(identity.Account{Key: "bg", Username: "breakglass"})
	mt.Remove("u009") // deleted by hand
	res := h.Run(dsync.RunOptions{Reconcile: true})
	got := actionsOf(h.DecisionsOf(res.RunID), "")
	want := []string{"old.employee:suspend", "u009:create", "u009:missing", "u009:set_role"}
	if !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	if a, _ := mt.Get("hand-made"); !a.Suspended {
		t.Fatal("orphan not suspended")
	}
	for _, k := range []string{"svc", "bg"} {
		if a, _ := mt.Get(k); a.Suspended || len(mt.CallsFor(k)) != 0 {
			t.Fatalf("allow-listed account %s touched", k)
		}
	}
	rep, err := dsync.LastReconcile(t.Context(), h.Store, "app")
	if err != nil || len(rep.Orphans) != 1 || !slices.Equal(rep.Missing, []string{"u009"}) {
		t.Fatalf("report = %+v, %v", rep, err)
	}
}

func TestReconcileReportsOrphansByDefaultAndHoldsMassOrphans(t *testing.T) {
	h, mt := setupReconcile(t)
	mt.Seed(identity.Account{Key: "x", Username: "someone"})
	res := h.Run(dsync.RunOptions{Reconcile: true})
	ds := h.DecisionsOf(res.RunID)
	if len(ds) != 1 || ds[0].Action != "orphan" || ds[0].Outcome != dsync.OutcomeSkipped || len(mt.Calls()) != 0 {
		t.Fatalf("default orphan policy must only report: %+v", ds)
	}
	h2, mt2 := setupReconcile(t, func(c *config.TargetCommon) { c.Reconcile.Orphans = "suspend" })
	for i := range 200 {
		mt2.Seed(identity.Account{Key: "o" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Username: "orphan" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	res = h2.Run(dsync.RunOptions{Reconcile: true})
	if !res.Held || len(mt2.Calls()) != 0 {
		t.Fatalf("200 orphans: held=%v calls=%d; want held and none sent", res.Held, len(mt2.Calls()))
	}
	if n := len(decisionsOf(h2.DecisionsOf(res.RunID), string(target.ActSuspend))); n != 200 {
		t.Fatalf("%d held suspend decisions, want 200", n)
	}
}
