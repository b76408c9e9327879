package sync_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
)

// Invariants 11 and 12, generically (memtarget); the Netmaker cases are in
// connector/netmaker/inv_engine_test.go.

func only(t *testing.T, ds []state.Decision, user, action string) state.Decision {
	t.Helper()
	var got []state.Decision
	for _, d := range ds {
		if d.User == user && d.Action == action {
			got = append(got, d)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d %s decisions of %s, want 1: %+v", len(got), action, user, ds)
	}
	return got[0]
}

// A leaver whose deletion cannot be done is suspended instead, with a
// decision: refused by the gate at plan time (u002), answered impossible
// by the application at apply time (u001). A protected account (every
// action refused, u003) gets neither; an ordinary leaver (u004) is deleted.
func TestImpossibleDeleteFallsBackToSuspend(t *testing.T) {
	no := false
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Deprovision = config.Deprovision{Action: "delete"}
		c.IncludeInactive = &no
	})
	us := people(100) // a few leavers stay within the guard
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Hook = func(act connector.Action, a identity.Account) error {
		if act == connector.ActDelete && a.Key == "u001" {
			return connector.Impossible("memory: delete %q: the application refuses to delete accounts its IdP owns", a.Username)
		}
		return nil
	}
	mt.GateFn = func(act connector.Action, a identity.Account) string {
		switch {
		case a.Key == "u002" && act == connector.ActDelete:
			return "owned by the IdP: cannot be deleted"
		case a.Key == "u003":
			return "protected"
		}
		return ""
	}
	mt.Reset()
	for i := 1; i <= 4; i++ {
		us[i].Active = false
	}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	ds := h.DecisionsOf(res.RunID)
	for _, k := range []string{"u001", "u002"} {
		if a, ok := mt.Get(k); !ok || !a.Suspended {
			t.Fatalf("%s: exists %v, suspended %v; decisions %+v", k, ok, a.Suspended, ds)
		}
		if d := only(t, ds, k, "delete"); d.Outcome != dsync.OutcomeSkipped {
			t.Fatalf("%s's delete: %+v", k, d)
		}
		if d := only(t, ds, k, "suspend"); d.Outcome != dsync.OutcomeApplied || !strings.Contains(d.Reason, "suspended instead") || !strings.Contains(d.Reason, "deprovision: delete") {
			t.Fatalf("%s's suspension: %+v", k, d)
		}
		if c := h.Accounts("app")[k]; !c.Exists || !c.Suspended || !c.Deprovisioned {
			t.Fatalf("%s's record: %+v", k, c)
		}
	}
	if got := mt.CallsFor("u003"); len(got) != 0 {
		t.Fatalf("protected account: calls %v", got)
	}
	if _, ok := mt.Get("u004"); ok {
		t.Fatal("u004 not deleted")
	}
	// The next run sends nothing for them.
	mt.Reset()
	res = h.Run(dsync.RunOptions{})
	for _, c := range mt.Calls() {
		if c.Action != connector.ActDelete || c.Key != "u001" {
			t.Fatalf("next run: call %+v (decisions %+v)", c, h.DecisionsOf(res.RunID))
		}
	}
	if a, _ := mt.Get("u001"); !a.Suspended {
		t.Fatal("u001 re-enabled")
	}
}

// A full run lists the application to adopt people missing from the cache
// even when the target refuses to create them: an existing account is
// adopted and, its person disabled in the source, suspended in that run.
func TestAdoptionListsWhenCreatesRefused(t *testing.T) {
	h, mt := setup(t)
	mt.GateFn = func(act connector.Action, _ identity.Account) string {
		if act == connector.ActCreate {
			return "this token cannot create accounts"
		}
		return ""
	}
	us := people(3)
	for _, u := range us[:2] {
		mt.Seed(identity.Account{Key: u.Key, Username: u.Username, Email: u.Email, GivenName: u.GivenName, FamilyName: u.FamilyName})
	}
	us[1].Active = false
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	ds := h.DecisionsOf(res.RunID)
	if a, _ := mt.Get("u001"); !a.Suspended {
		t.Fatalf("u001 not suspended in the first run: %+v", ds)
	}
	if a, _ := mt.Get("u000"); a.Suspended {
		t.Fatal("u000 suspended")
	}
	if d := only(t, ds, "u002", "create"); d.Outcome != dsync.OutcomeSkipped {
		t.Fatalf("u002's create: %+v", d)
	}
	if acc := h.Accounts("app"); !acc["u000"].Exists || !acc["u001"].Suspended {
		t.Fatalf("not adopted: %+v", acc)
	}
}

// Drift on an account the gate refuses to change (protected) is not
// "put back": it is a skipped decision saying it is left as it is, logged
// once while it stays the same; the account is not touched.
func TestProtectedDriftLoggedOnceNotPutBack(t *testing.T) {
	h, mt := setupReconcile(t)
	mt.GateFn = func(_ connector.Action, a identity.Account) string {
		if a.Key == "u005" {
			return "u005 is protected"
		}
		return ""
	}
	mt.Edit("u005", func(a *identity.Account) { a.Role = "admin"; a.Groups = []string{"ops"} })
	for i := range 3 {
		res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
		ds := h.DecisionsOf(res.RunID)
		var drift []state.Decision
		for _, d := range ds {
			if d.User == "u005" {
				drift = append(drift, d)
			}
		}
		switch {
		case i == 0 && (len(drift) != 1 || drift[0].Action != "drift" || drift[0].Outcome != dsync.OutcomeSkipped ||
			!strings.Contains(drift[0].Reason, "role changed outside dirsync") || !strings.Contains(drift[0].Reason, "groups changed outside dirsync") ||
			!strings.Contains(drift[0].Reason, "not put back: u005 is protected")):
			t.Fatalf("first reconcile: %+v", drift)
		case i > 0 && len(drift) != 0:
			t.Fatalf("reconcile %d logged again: %+v", i+1, drift)
		}
	}
	if got := mt.CallsFor("u005"); len(got) != 0 {
		t.Fatalf("protected account changed: %v", got)
	}
	if a, _ := mt.Get("u005"); a.Role != "admin" {
		t.Fatalf("role %q", a.Role)
	}
}

// A dry-run reconcile's drift and adoption decisions are dry_run.
func TestReconcileDryRunDecisionsAreDryRun(t *testing.T) {
	h, mt := setupReconcile(t)
	mt.Edit("u005", func(a *identity.Account) { a.Role = "admin" })
	mt.Remove("u007")
	res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile", DryRun: true})
	ds := h.DecisionsOf(res.RunID)
	var seen []string
	for _, d := range ds {
		if d.Outcome == dsync.OutcomeApplied {
			t.Fatalf("dry run: %+v", d)
		}
		if d.Action == "drift" || d.Action == "missing" {
			seen = append(seen, fmt.Sprintf("%s:%s:%s", d.User, d.Action, d.Outcome))
		}
	}
	slices.Sort(seen)
	if !slices.Contains(seen, "u005:drift:dry_run") || !slices.Contains(seen, "u007:missing:dry_run") {
		t.Fatalf("decisions %v", seen)
	}
	if n := len(mt.Calls()); n != 0 {
		t.Fatalf("dry run sent %d calls", n)
	}
}

// A target that cannot delete at all, under deprovision: delete, suspends
// its leavers instead (a skip says why the delete is not done); one
// already suspended needs nothing more.
func TestPlanDeleteUnsupportedSuspends(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	capab := dsync.Capability{Supports: func(a connector.Action) bool { return a != connector.ActDelete }, Order: connector.DefaultOrder}
	in := dsync.PlanInput{Target: "app", Cap: capab, Now: now, Rules: dsync.Rules{Deprovision: config.Deprovision{Action: "delete"}},
		Cached: map[string]identity.Account{
			"p1": {Key: "p1", Username: "ann", Exists: true},
			"p2": {Key: "p2", Username: "bob", Exists: true, Suspended: true},
		}}
	p := dsync.MakePlan(in)
	if len(p.Steps) != 1 || p.Steps[0].Key != "p1" || p.Steps[0].Action != connector.ActSuspend || !strings.Contains(p.Steps[0].Reason, "app cannot delete accounts") ||
		!p.Steps[0].After.Suspended || !p.Steps[0].After.Deprovisioned {
		t.Fatalf("steps %+v", p.Steps)
	}
	if len(p.Skips) != 2 || p.Skips[0].Action != connector.ActDelete || p.Skips[1].Action != connector.ActDelete {
		t.Fatalf("skips %+v", p.Skips)
	}
}
