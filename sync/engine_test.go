package sync_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

func setup(t *testing.T, mods ...func(*config.TargetCommon)) (*synctest.Harness, *memtarget.Target) {
	t.Helper()
	mt := memtarget.New("app")
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(mt, synctest.Common(mods...))}, synctest.Options{})
	return h, mt
}

func people(n int) []identity.User {
	var us []identity.User
	for i := range n {
		us = append(us, synctest.User(fmt.Sprintf("u%03d", i), "staff"))
	}
	return us
}

func actionsOf(ds []state.Decision, outcome string) []string {
	var out []string
	for _, d := range ds {
		if outcome == "" || d.Outcome == outcome {
			out = append(out, d.User+":"+d.Action)
		}
	}
	slices.Sort(out)
	return out
}

func TestDisableSuspendsAndReenableUnsuspends(t *testing.T) {
	h, mt := setup(t)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()

	us[3].Active = false
	us[3].Facts = map[string]string{identity.FactActive: "userAccountControl ACCOUNTDISABLE set"}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	if got := mt.CallsFor("u003"); !slices.Equal(got, []connector.Action{connector.ActSuspend}) {
		t.Fatalf("calls for u003 = %v, want [suspend]", got)
	}
	ds := h.DecisionsOf(res.RunID)
	if len(ds) != 1 || ds[0].Outcome != "applied" || !strings.Contains(ds[0].Reason, "hr: userAccountControl ACCOUNTDISABLE set") {
		t.Fatalf("decisions = %+v, want one applied suspend naming the source fact", ds)
	}
	if a, _ := mt.Get("u003"); !a.Suspended {
		t.Fatal("u003 not suspended in the application")
	}

	us[3].Active = true
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if got := mt.CallsFor("u003"); !slices.Equal(got, []connector.Action{connector.ActSuspend, connector.ActUnsuspend}) {
		t.Fatalf("calls for u003 = %v, want [suspend unsuspend]", got)
	}
}

func TestNoOpSecondRunPlansNothing(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Roles = []config.RoleRule{{Group: "admins", Role: "admin"}}
		c.DefaultRole = "user"
		c.Groups = []config.GroupRule{{Group: "staff", As: "everyone"}}
	})
	us := people(20)
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	us[0].Expires = &exp
	us[1].MustChangePassword = true
	us[2].Active = false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	first := len(mt.Calls())
	if first == 0 {
		t.Fatal("first run made no calls")
	}
	mt.Reset()
	res := h.Run(dsync.RunOptions{})
	if n := len(mt.Calls()); n != 0 {
		t.Fatalf("second run made %d calls: %+v", n, mt.Calls())
	}
	if ds := h.DecisionsOf(res.RunID); len(ds) != 0 {
		t.Fatalf("second run made decisions: %+v", ds)
	}
	for _, p := range res.Plans {
		if len(p.Steps) != 0 {
			t.Fatalf("second run planned %d steps", len(p.Steps))
		}
	}
}

func TestExpirySetChangedClearedAndPassing(t *testing.T) {
	h, mt := setup(t)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()

	e1 := h.Clock.Now().Add(48 * time.Hour)
	us[5].Expires = &e1
	us[5].Facts = map[string]string{identity.FactExpires: "accountExpires 2026-11-25"}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	if a, _ := mt.Get("u005"); a.Expires == nil || !a.Expires.Equal(e1) {
		t.Fatalf("expiry not set: %+v", a.Expires)
	}
	if at, keys := h.Engine.Due(); !at.Equal(e1) || !slices.Equal(keys, []string{"u005"}) {
		t.Fatalf("Due() = %v %v, want %v [u005]", at, keys, e1)
	}
	if ds := h.DecisionsOf(res.RunID); len(ds) != 1 || !strings.Contains(ds[0].Reason, "accountExpires 2026-11-25") {
		t.Fatalf("decisions = %+v", ds)
	}

	e2 := e1.Add(24 * time.Hour)
	us[5].Expires = &e2
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	us[5].Expires = nil
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if got := mt.CallsFor("u005"); !slices.Equal(got, []connector.Action{connector.ActSetExpiry, connector.ActSetExpiry, connector.ActSetExpiry}) {
		t.Fatalf("calls = %v", got)
	}
	if a, _ := mt.Get("u005"); a.Expires != nil {
		t.Fatal("expiry not cleared")
	}

	// The clock passing an expiry suspends, with no directory change: a
	// targeted run for the due keys, from the stored snapshot.
	us[5].Expires = &e1
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()
	pulls := h.Source.Pulls()
	h.Clock.Set(e1.Add(time.Second))
	_, keys := h.Engine.Due()
	res = h.Run(dsync.RunOptions{Trigger: "expiry", Keys: keys})
	if h.Source.Pulls() != pulls {
		t.Fatal("a targeted expiry run pulled the source")
	}
	if got := mt.CallsFor("u005"); !slices.Equal(got, []connector.Action{connector.ActSuspend}) {
		t.Fatalf("after expiry calls = %v, want [suspend]", got)
	}
	if ds := h.DecisionsOf(res.RunID); len(ds) != 1 || !strings.Contains(ds[0].Reason, "expired at") {
		t.Fatalf("decisions = %+v", ds)
	}
}

func TestExpiryBeforeSuspend(t *testing.T) {
	h, mt := setup(t)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()
	e := h.Clock.Now().Add(240 * time.Hour)
	us[1].Expires, us[1].Active = &e, false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if got := mt.CallsFor("u001"); !slices.Equal(got, []connector.Action{connector.ActSetExpiry, connector.ActSuspend}) {
		t.Fatalf("calls = %v, want [set_expiry suspend]", got)
	}
}

func TestGroupChangeChangesRoleAndGroups(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Roles = []config.RoleRule{{Group: "netadmins", Role: "admin"}, {Group: "staff", Role: "user"}}
		c.Groups = []config.GroupRule{{Group: "vpn", As: "vpn-users"}, {Group: "ops"}}
	})
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if a, _ := mt.Get("u007"); a.Role != "user" || len(a.Groups) != 0 {
		t.Fatalf("initial = %+v", a)
	}
	mt.Reset()
	us[7].Groups = []string{"staff", "netadmins", "vpn", "ops"}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	if got := mt.CallsFor("u007"); !slices.Equal(got, []connector.Action{connector.ActSetRole, connector.ActSetGroups}) {
		t.Fatalf("calls = %v", got)
	}
	a, _ := mt.Get("u007")
	if a.Role != "admin" || !slices.Equal(a.Groups, []string{"ops", "vpn-users"}) {
		t.Fatalf("account = %+v", a)
	}
	for _, d := range h.DecisionsOf(res.RunID) {
		if d.Action == "set_role" && !strings.Contains(d.Reason, "netadmins") {
			t.Fatalf("role reason %q does not name the group", d.Reason)
		}
	}
}

func TestDeprovisionModes(t *testing.T) {
	t.Run("suspend then delete after delay, and coming back", func(t *testing.T) {
		h, mt := setup(t, func(c *config.TargetCommon) {
			c.Scope = []string{"staff"}
			c.Deprovision = config.Deprovision{Action: "suspend", DeleteAfter: config.Duration(30 * 24 * time.Hour)}
		})
		us := people(100)
		h.Source.Set(us...)
		h.Run(dsync.RunOptions{})
		mt.Reset()
		us[2].Groups, us[3].Groups = nil, nil
		h.Source.Set(us...)
		res := h.Run(dsync.RunOptions{})
		if got := actionsOf(h.DecisionsOf(res.RunID), "applied"); !slices.Equal(got, []string{"u002:suspend", "u003:suspend"}) {
			t.Fatalf("decisions = %v", got)
		}
		h.Clock.Advance(10 * 24 * time.Hour)
		us[3].Groups = []string{"staff"} // u003 comes back
		h.Source.Set(us...)
		h.Run(dsync.RunOptions{})
		h.Clock.Advance(21 * 24 * time.Hour)
		res = h.Run(dsync.RunOptions{})
		if got := actionsOf(h.DecisionsOf(res.RunID), "applied"); !slices.Equal(got, []string{"u002:delete"}) {
			t.Fatalf("after 31 days decisions = %v, want u002 deleted", got)
		}
		if _, ok := mt.Get("u002"); ok {
			t.Fatal("u002 still exists")
		}
		if a, ok := mt.Get("u003"); !ok || a.Suspended {
			t.Fatalf("u003 = %+v, want active", a)
		}
	})
	t.Run("delete", func(t *testing.T) {
		h, mt := setup(t, func(c *config.TargetCommon) { c.Deprovision.Action = "delete" })
		us := people(30)
		h.Source.Set(us...)
		h.Run(dsync.RunOptions{})
		h.Source.Set(us[1:]...)
		h.Run(dsync.RunOptions{})
		if _, ok := mt.Get("u000"); ok {
			t.Fatal("u000 not deleted")
		}
	})
	t.Run("none", func(t *testing.T) {
		h, mt := setup(t, func(c *config.TargetCommon) { c.Deprovision.Action = "none" })
		us := people(30)
		h.Source.Set(us...)
		h.Run(dsync.RunOptions{})
		mt.Reset()
		h.Source.Set(us[1:]...)
		h.Run(dsync.RunOptions{})
		if len(mt.Calls()) != 0 {
			t.Fatalf("calls = %+v", mt.Calls())
		}
	})
}

func TestForcePasswordChangeOncePerEvent(t *testing.T) {
	h, mt := setup(t)
	us := people(10)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	us[4].MustChangePassword = true
	h.Source.Set(us...)
	for range 3 {
		h.Run(dsync.RunOptions{})
	}
	if got := mt.CallsFor("u004"); !slices.Equal(got, []connector.Action{connector.ActCreate, connector.ActForcePasswordChange}) {
		t.Fatalf("calls = %v, want one force_password_change", got)
	}
	// The user changes their password, then it is reset again: a new event.
	us[4].MustChangePassword = false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	us[4].MustChangePassword = true
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if n := strings.Count(fmt.Sprint(mt.CallsFor("u004")), "force_password_change"); n != 2 {
		t.Fatalf("force_password_change sent %d times, want 2", n)
	}
}

func TestCrashAfterKOfNAppliesEachActionOnce(t *testing.T) {
	h, mt := setup(t)
	us := people(40)
	h.Source.Set(us...)
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	mt.Hook = func(act connector.Action, a identity.Account) error {
		if calls.Add(1) == 17 {
			cancel() // the process dies here: this call and all later ones never land
		}
		if ctx.Err() != nil {
			return connector.Retryable(ctx.Err())
		}
		return nil
	}
	if _, err := h.Engine.Run(ctx, dsync.RunOptions{}); err != nil {
		t.Logf("interrupted run: %v", err)
	}
	landed := len(mt.Calls())
	if landed == 0 || landed >= 40 {
		t.Fatalf("%d calls landed before the crash", landed)
	}
	mt.Hook = nil
	h.Run(dsync.RunOptions{})
	seen := map[string]int{}
	for _, c := range mt.Calls() {
		seen[c.Key+":"+string(c.Action)]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s applied %d times", k, n)
		}
	}
	if len(seen) != 40 {
		t.Fatalf("%d accounts created, want 40", len(seen))
	}
}

func TestGuardHoldsAndApproveApplies(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Scope = []string{"staff"} })
	us := people(100)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()
	for i := range 12 {
		us[i].Active = false
	}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	if !res.Held || res.Status != "held" {
		t.Fatalf("run not held: %+v", res)
	}
	if len(mt.Calls()) != 0 {
		t.Fatalf("held run made calls: %+v", mt.Calls())
	}
	held := actionsOf(h.DecisionsOf(res.RunID), "held")
	if len(held) != 12 || !strings.Contains(h.DecisionsOf(res.RunID)[0].Reason, "dirsync approve "+res.RunID) {
		t.Fatalf("held decisions = %v", held)
	}
	if _, err := h.Engine.Approve(context.Background(), dsync.ApproveRequest{RunID: res.RunID}); err != nil {
		t.Fatal(err)
	}
	if n := len(mt.Calls()); n != 12 {
		t.Fatalf("approve made %d calls, want 12", n)
	}
	if _, err := h.Store.GetHeld(context.Background(), res.RunID); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("held plan still stored: %v", err)
	}
}

func TestPartialApproval(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Scope = []string{"staff"}
		c.Deprovision.Action = "delete"
	})
	us := people(100)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()
	for i := range 12 {
		us[i].Active = false
	}
	for i := 50; i < 62; i++ {
		us[i].Groups = nil
	}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	if !res.Held {
		t.Fatal("not held")
	}
	if _, err := h.Engine.Approve(context.Background(), dsync.ApproveRequest{RunID: res.RunID, Only: []connector.Action{connector.ActSuspend}}); err != nil {
		t.Fatal(err)
	}
	var sus, del int
	for _, c := range mt.Calls() {
		switch c.Action {
		case connector.ActSuspend:
			sus++
		case connector.ActDelete:
			del++
		}
	}
	if sus != 12 || del != 0 {
		t.Fatalf("suspend %d delete %d, want 12 and 0", sus, del)
	}
	if _, err := h.Store.GetHeld(context.Background(), res.RunID+"/app"); err != nil {
		t.Fatalf("deletions no longer held: %v", err)
	}
	if _, err := h.Engine.Approve(context.Background(), dsync.ApproveRequest{RunID: res.RunID}); err != nil {
		t.Fatal(err)
	}
	if _, ok := mt.Get("u050"); ok {
		t.Fatal("u050 not deleted after full approval")
	}
}

func TestSourceGuard(t *testing.T) {
	for _, tc := range []struct {
		name string
		next func(s *synctest.Source, us []identity.User)
		want string
	}{
		{"empty", func(s *synctest.Source, _ []identity.User) { s.Set() }, "zero users"},
		{"shrunk", func(s *synctest.Source, us []identity.User) { s.Set(us[:50]...) }, "down from 100"},
		{"failed", func(s *synctest.Source, _ []identity.User) { s.Fail(errors.New("ldap: size limit exceeded")) }, "size limit exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, mt := setup(t)
			us := people(100)
			h.Source.Set(us...)
			h.Run(dsync.RunOptions{})
			mt.Reset()
			tc.next(h.Source, us)
			res, err := h.Engine.Run(context.Background(), dsync.RunOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if res.Status != "failed" || len(mt.Calls()) != 0 {
				t.Fatalf("status %s, %d calls", res.Status, len(mt.Calls()))
			}
			ds := h.DecisionsOf(res.RunID)
			if len(ds) != 1 || ds[0].Outcome != "failed" || !strings.Contains(ds[0].Error, tc.want) {
				t.Fatalf("decisions = %+v", ds)
			}
			h.Source.Fail(nil)
			h.Source.Set(us...)
			h.Run(dsync.RunOptions{})
			if len(mt.Calls()) != 0 {
				t.Fatalf("healthy run after the fault made calls: %+v", mt.Calls())
			}
		})
	}
}

func TestRetriesQuarantineAndBreaker(t *testing.T) {
	t.Run("retry then success honours Retry-After", func(t *testing.T) {
		h, mt := setup(t)
		var n atomic.Int32
		mt.Hook = func(act connector.Action, a identity.Account) error {
			if a.Key == "u001" && n.Add(1) <= 2 {
				return connector.RateLimited(errors.New("429"), 3*time.Second)
			}
			return nil
		}
		h.Source.Set(people(5)...)
		res := h.Run(dsync.RunOptions{})
		if res.Counts["applied"] != 5 {
			t.Fatalf("counts = %v", res.Counts)
		}
		if w := h.Waits(); len(w) != 2 || w[0] != 3*time.Second {
			t.Fatalf("waits = %v, want two of 3s", w)
		}
	})
	t.Run("permanent failure quarantines after N runs and isolates the user", func(t *testing.T) {
		h, mt := setup(t)
		mt.Hook = func(act connector.Action, a identity.Account) error {
			if a.Key == "u002" {
				return connector.Permanent(errors.New("400 invalid username"))
			}
			return nil
		}
		h.Source.Set(people(10)...)
		for range h.Limits.QuarantineAfter {
			h.Run(dsync.RunOptions{})
		}
		if got := len(mt.Calls()); got != 9 {
			t.Fatalf("%d accounts created, want the 9 others", got)
		}
		res := h.Run(dsync.RunOptions{})
		ds := h.DecisionsOf(res.RunID)
		if len(ds) != 1 || ds[0].Outcome != "skipped" || !strings.Contains(ds[0].Reason, "quarantined") {
			t.Fatalf("decisions = %+v", ds)
		}
		mt.Hook = nil
		h.Run(dsync.RunOptions{RetryQuarantined: true})
		if _, ok := mt.Get("u002"); !ok {
			t.Fatal("u002 not created after retry-quarantined")
		}
	})
	t.Run("a dead target trips the breaker with one decision", func(t *testing.T) {
		dead := memtarget.New("dead")
		dead.Hook = func(connector.Action, identity.Account) error { return connector.Retryable(errors.New("503")) }
		ok := memtarget.New("ok")
		h := synctest.New(t, []dsync.TargetSpec{
			synctest.Spec(dead, synctest.Common(func(c *config.TargetCommon) { c.Concurrency = 1 })),
			synctest.Spec(ok, synctest.Common()),
		}, synctest.Options{})
		h.Source.Set(people(50)...)
		res, _ := h.Engine.Run(context.Background(), dsync.RunOptions{})
		if n := len(ok.Calls()); n != 50 {
			t.Fatalf("healthy target got %d calls, want 50", n)
		}
		var open, failed int
		for _, d := range h.DecisionsOf(res.RunID) {
			if d.Target == "dead" && d.Action == "circuit_open" {
				open++
			} else if d.Target == "dead" && d.Outcome == "failed" {
				failed++
			}
		}
		if open != 1 || failed != 5 {
			t.Fatalf("circuit_open decisions %d, failed %d; want 1 and 5", open, failed)
		}
	})
}

func TestPlanFileRefusesWhenStateChanged(t *testing.T) {
	h, mt := setup(t)
	us := people(50)
	h.Source.Set(us...)
	pf, err := h.Engine.MakePlanFile(context.Background(), dsync.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mt.Calls()) != 0 || len(h.Decisions()) != 0 {
		t.Fatal("planning wrote to the target or the journal")
	}
	if _, err := h.Engine.ApplyPlanFile(context.Background(), pf, dsync.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(mt.Calls()) != 50 {
		t.Fatalf("apply made %d calls", len(mt.Calls()))
	}
	us[0].Active = false
	h.Source.Set(us...)
	pf, _ = h.Engine.MakePlanFile(context.Background(), dsync.RunOptions{})
	h.Run(dsync.RunOptions{}) // the state moves on
	if _, err := h.Engine.ApplyPlanFile(context.Background(), pf, dsync.RunOptions{}); !errors.Is(err, dsync.ErrStalePlan) {
		t.Fatalf("err = %v, want ErrStalePlan", err)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	h, mt := setup(t)
	h.Source.Set(people(10)...)
	res := h.Run(dsync.RunOptions{DryRun: true})
	if len(mt.Calls()) != 0 || len(h.Accounts("app")) != 0 {
		t.Fatal("dry run changed something")
	}
	if got := len(actionsOf(h.DecisionsOf(res.RunID), "dry_run")); got != 10 {
		t.Fatalf("%d dry_run decisions", got)
	}
}

// A group membership change is a targeted run for the members it adds and
// removes: the removed member leaves the scope and is deprovisioned, and no
// one else is looked at.
func TestGroupChangeIsATargetedRunForItsMembers(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Scope = []string{"vpn"} })
	us := people(20)
	for i := range us {
		us[i].Groups = []string{"staff", "vpn"}
	}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()
	pulls := h.Source.Pulls()
	moved := us[4]
	moved.Groups = []string{"staff"}
	keys, err := h.Engine.MergeChange(context.Background(), "hr", source.Change{
		Upserts:      []identity.User{moved},
		GroupChanges: []source.GroupChange{{Key: "g-vpn", Name: "vpn", Removed: []string{"u004"}}},
	})
	if err != nil || !slices.Equal(keys, []string{"u004"}) {
		t.Fatalf("keys %v, err %v; want [u004]", keys, err)
	}
	res := h.Run(dsync.RunOptions{Trigger: "incremental:hr", Keys: keys})
	if h.Source.Pulls() != pulls {
		t.Fatal("a group change pulled the whole source")
	}
	if got := actionsOf(h.DecisionsOf(res.RunID), ""); !slices.Equal(got, []string{"u004:suspend"}) {
		t.Fatalf("decisions %v, want [u004:suspend]", got)
	}
}

// Several changes merged at once apply in the order they happened (a leaver
// deleted then re-added is present; one added then deleted is gone), with
// the union of the records they touch.
func TestMergeChangesInOrder(t *testing.T) {
	h, _ := setup(t)
	us := people(5)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	back := us[1]
	back.Active = false
	keys, err := h.Engine.MergeChanges(context.Background(), "hr", []source.Change{
		{Deletes: []string{"u001"}},
		{Upserts: []identity.User{back}},
		{Upserts: []identity.User{{Key: "u009", Username: "u9", Active: true}}},
		{Deletes: []string{"u009", "u002"}},
	})
	if err != nil || !slices.Equal(keys, []string{"u001", "u002", "u009"}) {
		t.Fatalf("keys %v, err %v", keys, err)
	}
	snap, err := h.Store.GetSnapshot(context.Background(), "hr")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range snap.Users {
		got = append(got, fmt.Sprintf("%s:%v", u.Key, u.Active))
	}
	slices.Sort(got)
	if want := []string{"u000:true", "u001:false", "u003:true", "u004:true"}; !slices.Equal(got, want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}
}
