package netmaker_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// The Netmaker findings of issue 18 (item 7), against the fake and through
// the engine: invariants 11 ("unknown is not gone") and 12 ("no leaver
// keeps access because one action is impossible").

// decisionsFor returns the decisions of user with action.
func decisionsFor(ds []state.Decision, user, action string) []state.Decision {
	var out []state.Decision
	for _, d := range ds {
		if d.User == user && d.Action == action {
			out = append(out, d)
		}
	}
	return out
}

// one returns the only decision of user with action, failing otherwise.
func one(t *testing.T, ds []state.Decision, user, action string) state.Decision {
	t.Helper()
	got := decisionsFor(ds, user, action)
	if len(got) != 1 {
		t.Fatalf("%d decisions %s of %s, want 1; all: %+v", len(got), action, user, ds)
	}
	return got[0]
}

// sso is a person whose Netmaker username is their email.
func sso(key string) identity.User {
	return identity.User{Key: key, Username: key + "@example.test", Email: key + "@example.test", GivenName: "Given", FamilyName: key, Active: true}
}

// With the master key (which cannot create users) an ordinary sync still
// reads the list: people who already have an account are adopted, and one
// disabled in the source is suspended in that run, not at the next
// reconcile. Only the person with no account is a skipped create.
func TestNetmakerMasterKeyAdoptsAndSuspends(t *testing.T) {
	sc := newNMScenarioToken(t, netmakerfake.Options{}, (*netmakerfake.Server).MasterKey, "    token_kind: master_key\n")
	srv := sc.e.srv
	srv.AddUser(netmakerfake.User{Username: "erin", DisplayName: "Given erin", PlatformRoleID: "platform-user"})
	srv.AddUser(netmakerfake.User{Username: "fred", DisplayName: "Given fred", PlatformRoleID: "platform-user"})
	fred := synctest.User("fred")
	fred.Active = false
	sc.set(synctest.User("erin"), fred, synctest.User("dora"))
	calls, ds := sc.run()
	if u, _ := srv.User("fred"); !u.AccountDisabled {
		t.Fatalf("fred, disabled in the source, is active after the sync: writes %q, decisions %+v", writes(calls), ds)
	}
	if d := one(t, ds, "fred", "suspend"); d.Outcome != "applied" {
		t.Fatalf("fred's suspension: %+v", d)
	}
	if u, _ := srv.User("erin"); u.AccountDisabled {
		t.Fatal("erin disabled")
	}
	if d := one(t, ds, "dora", "create"); d.Outcome != "skipped" || !strings.Contains(d.Reason, "master key") {
		t.Fatalf("dora's create: %+v", d)
	}
	for _, w := range writes(calls) {
		if w == "POST /api/users/erin" || w == "POST /api/users/fred" || strings.HasPrefix(w, "DELETE") {
			t.Fatalf("sent %s", w)
		}
	}
	acc := sc.h.Accounts("netmaker")
	if !acc["erin"].Exists || !acc["fred"].Exists || !acc["fred"].Suspended {
		t.Fatalf("cache after the first sync: %+v", acc)
	}
	// Nothing more to do: the next sync sends nothing.
	if calls, _ := sc.run(); len(writes(calls)) != 0 {
		t.Fatalf("second sync wrote %q", writes(calls))
	}
}

// An SSO leaver under deprovision: delete: Netmaker refuses to delete IdP
// users, so the account is suspended instead, with a decision — whether
// the cache knew it was an IdP user (refused at plan time) or the person
// signed in through the IdP after adoption (refused at apply time). A
// password user is deleted.
func TestSSOLeaverDeleteFallsBackToSuspend(t *testing.T) {
	no := false
	sc := newNMScenario(t, netmakerfake.Options{}, "    create: false\n    deprovision: {action: delete}\n", func(c *config.TargetCommon) {
		c.Deprovision = config.Deprovision{Action: "delete"}
		c.IncludeInactive = &no
		c.Groups = nil
	})
	srv := sc.e.srv
	for _, u := range []netmakerfake.User{
		{Username: "gina@example.test", DisplayName: "Given gina", AuthType: "oauth", PlatformRoleID: "platform-user"},
		{Username: "ivan@example.test", DisplayName: "Given ivan", PlatformRoleID: "platform-user"},
		{Username: "hugo@example.test", DisplayName: "Given hugo", PlatformRoleID: "platform-user"},
	} {
		srv.AddUser(u)
	}
	sc.set(sso("gina"), sso("ivan"), sso("hugo"))
	sc.run()
	if acc := sc.h.Accounts("netmaker"); !acc["gina"].Exists || !acc["ivan"].Exists || !acc["hugo"].Exists {
		t.Fatalf("not adopted: %+v", acc)
	}
	// ivan signs in through the IdP after the adoption: the cache does not
	// know, and the delete is refused by the server's answer.
	srv.Edit("ivan@example.test", "now an IdP user", func(u *netmakerfake.User) { u.AuthType = "oauth" })
	for _, k := range []string{"gina", "ivan", "hugo"} {
		sc.edit(k, func(u *identity.User) { u.Active = false })
	}
	calls, ds := sc.run()
	if _, ok := srv.User("hugo@example.test"); ok {
		t.Fatalf("hugo not deleted: %q", writes(calls))
	}
	for _, name := range []string{"gina@example.test", "ivan@example.test"} {
		u, ok := srv.User(name)
		if !ok || !u.AccountDisabled {
			t.Fatalf("%s: exists %v, disabled %v; writes %q; decisions %+v", name, ok, u.AccountDisabled, writes(calls), ds)
		}
		if d := one(t, ds, name, "delete"); d.Outcome != "skipped" || !strings.Contains(d.Reason, "IdP") {
			t.Fatalf("%s's delete: %+v", name, d)
		}
		if d := one(t, ds, name, "suspend"); d.Outcome != "applied" || !strings.Contains(d.Reason, "deprovision: delete") || !strings.Contains(d.Reason, "instead") {
			t.Fatalf("%s's suspension: %+v", name, d)
		}
	}
	for _, c := range calls {
		if c.Method == http.MethodDelete && c.Path != "/api/users/hugo@example.test" {
			t.Fatalf("sent DELETE %s", c.Path)
		}
	}
	// Suspended, they stay so: the next run sends nothing, and does not
	// read ivan again to find the delete refused (the connector learnt it).
	calls, _ = sc.run()
	if len(writes(calls)) != 0 {
		t.Fatalf("next run wrote %q", writes(calls))
	}
	for _, c := range calls {
		if strings.Contains(c.Query, "ivan") {
			t.Fatalf("next run read ivan again: %+v", c)
		}
	}
}

// An SSO orphan under reconcile.orphans: delete is suspended instead; a
// password orphan is deleted; the account dirsync's token belongs to is
// neither (protected: the suspension is refused too).
func TestSSOOrphanDeleteFallsBackToSuspend(t *testing.T) {
	sc := newNMScenario(t, netmakerfake.Options{}, "    reconcile: {orphans: delete}\n", func(c *config.TargetCommon) {
		c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "delete"}
	})
	srv := sc.e.srv
	srv.AddUser(netmakerfake.User{Username: "olga@example.test", AuthType: "oauth", PlatformRoleID: "platform-user"})
	srv.AddUser(netmakerfake.User{Username: "oscar", PlatformRoleID: "platform-user"})
	sc.set(synctest.User("anna"))
	sc.run()
	srv.ResetCalls()
	res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	ds := sc.h.DecisionsOf(res.RunID)
	if _, ok := srv.User("oscar"); ok {
		t.Fatalf("password orphan not deleted: %+v", ds)
	}
	if u, ok := srv.User("olga@example.test"); !ok || !u.AccountDisabled {
		t.Fatalf("SSO orphan: exists %v disabled %v; decisions %+v", ok, u.AccountDisabled, ds)
	}
	if d := one(t, ds, "olga@example.test", "suspend"); d.Outcome != "applied" || !strings.Contains(d.Reason, "orphans: delete") || !strings.Contains(d.Reason, "instead") {
		t.Fatalf("olga's suspension: %+v", d)
	}
	if u, _ := srv.User("netmaker-admin"); u.AccountDisabled {
		t.Fatal("the token's owner was disabled")
	}
	for _, d := range ds {
		if d.Outcome == "failed" {
			t.Fatalf("failed: %+v", d)
		}
	}
}

// A user Netmaker lists but cannot read (500 "record not found": its role
// is not on this community server) is neither forgotten nor re-adopted:
// its steps wait with a decision that says why, and reconcile does not end
// partial (exit 3) run after run. It can still be suspended.
func TestUnreadableUserIsNotGone(t *testing.T) {
	sc := newNMScenario(t, netmakerfake.Options{Community: true}, "", func(c *config.TargetCommon) {
		c.Roles, c.DefaultRole, c.Groups = nil, "admin", nil
	})
	srv := sc.e.srv
	srv.AddUser(netmakerfake.User{Username: "pat1", DisplayName: "Given pat1", PlatformRoleID: "platform-user"})
	srv.AddUser(netmakerfake.User{Username: "quin", DisplayName: "Given quin", PlatformRoleID: "admin"})
	sc.set(synctest.User("pat1"), synctest.User("quin"))
	waited := false
	for i := range 3 {
		res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
		ds := sc.h.DecisionsOf(res.RunID)
		if res.Status == "partial" || res.Status == "failed" {
			t.Fatalf("reconcile %d ended %s: %+v", i+1, res.Status, ds)
		}
		for _, d := range ds {
			switch {
			case d.Outcome == "failed":
				t.Fatalf("reconcile %d: failed decision %+v", i+1, d)
			case d.User == "pat1" && d.Action == "missing":
				t.Fatalf("reconcile %d: taken as gone: %+v", i+1, d)
			case d.User == "pat1" && d.Action == "drift" && i > 0:
				t.Fatalf("reconcile %d: re-adopted: %+v", i+1, d)
			case d.User == "pat1" && d.Action == "set_role":
				if d.Outcome != "skipped" || !strings.Contains(d.Reason, "cannot read it back") {
					t.Fatalf("pat1's role change: %+v", d)
				}
				waited = true
			}
		}
		if c := sc.h.Accounts("netmaker")["pat1"]; !c.Exists {
			t.Fatalf("reconcile %d forgot pat1: %+v", i+1, c)
		}
	}
	if !waited {
		t.Fatal("no decision says why pat1's role change waits")
	}
	for _, c := range srv.Calls() {
		if c.Method == http.MethodPost && c.Path == "/api/users/pat1" {
			t.Fatal("pat1 re-created")
		}
	}
	// An interrupted call on it is not a failed target either: the
	// account cannot be read back, so the step is sent again.
	rec := sc.h.Accounts("netmaker")["pat1"]
	rec.Pending = "suspend"
	if err := sc.h.Store.PutAccount(t.Context(), state.Fence{}, "netmaker", rec); err != nil {
		t.Fatal(err)
	}
	res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
	if ds := sc.h.DecisionsOf(res.RunID); res.Status != "ok" {
		t.Fatalf("run after an interrupted call ended %s: %+v", res.Status, ds)
	}
	// pat1 leaves: the suspension needs no read, and lands.
	sc.edit("pat1", func(u *identity.User) { u.Active = false })
	_, ds := sc.run()
	if u, _ := srv.User("pat1"); !u.AccountDisabled {
		t.Fatalf("pat1 not suspended: %+v", ds)
	}
}

// A dry-run reconcile says what it would do: its drift, adoption and
// missing decisions are dry_run, never applied, and nothing is written.
func TestReconcileDryRunDriftIsNotApplied(t *testing.T) {
	sc := newNMScenario(t, netmakerfake.Options{}, "")
	srv := sc.e.srv
	srv.AddGroup("dev")
	sc.set(synctest.User("anna", "vpn-dev"), synctest.User("benny", "vpn-dev"))
	sc.run()
	srv.Edit("anna", "made admin", func(u *netmakerfake.User) { u.PlatformRoleID = "admin" })
	srv.RemoveUser("benny")
	srv.AddUser(netmakerfake.User{Username: "cara", PlatformRoleID: "platform-user"})
	sc.set(synctest.User("cara"))
	srv.ResetCalls()
	res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true, DryRun: true})
	ds := sc.h.DecisionsOf(res.RunID)
	seen := map[string]bool{}
	for _, d := range ds {
		if d.Outcome == "applied" {
			t.Fatalf("dry run applied: %+v", d)
		}
		if slices.Contains([]string{"drift", "missing"}, d.Action) {
			seen[d.User+":"+d.Action] = true
			if d.Outcome != "dry_run" {
				t.Fatalf("dry-run %s: %+v", d.Action, d)
			}
		}
	}
	if !seen["anna:drift"] || !seen["benny:missing"] || !seen["cara:drift"] {
		t.Fatalf("decisions %+v", ds)
	}
	if w := writes(srv.Calls()); len(w) != 0 {
		t.Fatalf("dry run wrote %q", w)
	}
}

// An orphan suspended under reconcile.orphans: suspend is deleted once the
// policy becomes orphans: delete (the record kept from the suspension no
// longer hides it).
func TestOrphansDeleteRemovesSuspendedOrphans(t *testing.T) {
	suspend := func(c *config.TargetCommon) { c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "suspend"} }
	sc := newNMScenario(t, netmakerfake.Options{}, "", suspend)
	srv := sc.e.srv
	srv.AddUser(netmakerfake.User{Username: "oscar", PlatformRoleID: "platform-user"})
	sc.set(synctest.User("anna"))
	sc.run()
	sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	if u, ok := srv.User("oscar"); !ok || !u.AccountDisabled {
		t.Fatalf("orphan under orphans: suspend: exists %v, disabled %v", ok, u.AccountDisabled)
	}
	// The operator switches to orphans: delete: the same store, connector
	// and directory, a new engine.
	del := synctest.Common(rules, func(c *config.TargetCommon) { c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "delete"} })
	h2 := synctest.New(t, []dsync.TargetSpec{synctest.Spec(sc.e.tg, del)}, synctest.Options{Store: sc.h.Store,
		Limits: &config.Limits{MaxSourceShrinkPercent: 20, QuarantineAfter: 5}})
	h2.Source.Set(synctest.User("anna"))
	res := h2.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	ds := h2.DecisionsOf(res.RunID)
	if _, ok := srv.User("oscar"); ok {
		t.Fatalf("the suspended orphan is still there: %+v", ds)
	}
	if d := one(t, ds, "oscar", "delete"); d.Outcome != "applied" || !strings.Contains(d.Reason, "orphans: delete") {
		t.Fatalf("oscar's delete: %+v", d)
	}
	if u, _ := srv.User("netmaker-admin"); u.AccountDisabled {
		t.Fatal("the token's owner was disabled")
	}
	if c, ok := h2.Accounts("netmaker")["orphan:oscar"]; ok && c.Exists {
		t.Fatalf("the deleted orphan's record is still cached: %+v", c)
	}
}
