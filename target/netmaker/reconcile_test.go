package netmaker_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
	"github.com/dirsync/dirsync/target/netmaker/netmakerfake"
)

// A reconcile against the Netmaker fake: changes an administrator made by
// hand in Netmaker are found and put back, hand-made accounts are orphans
// (suspended by policy, the allow-listed one untouched), an account deleted
// by hand is re-created, and a no-op reconcile sends no write.
func TestReconcileNetmaker(t *testing.T) {
	sc := newNMScenario(t, netmakerfake.Options{}, "    reconcile: {orphans: suspend, allow: [svc-*]}\n", func(c *config.TargetCommon) {
		c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "suspend", Allow: []string{"svc-*"}}
	})
	srv := sc.e.srv
	dev := srv.AddGroup("dev")
	ops := srv.AddGroup("ops")
	sc.set(synctest.User("anna", "vpn-dev"), synctest.User("benny", "vpn-dev"), synctest.User("cathy", "vpn-dev"), synctest.User("danny", "vpn-dev"))
	_, ds1 := sc.run()
	sc.edit("anna", func(u *identity.User) { u.Active = false })
	_, ds2 := sc.run()
	if u, _ := srv.User("anna"); !u.AccountDisabled {
		t.Fatalf("ann not disabled: %v / %v", actionsOf(ds1), ds2)
	}
	// By hand in Netmaker: ann re-enabled, ben made admin, cat added to
	// ops, dan deleted, two accounts made.
	srv.Edit("anna", "re-enabled", func(u *netmakerfake.User) { u.AccountDisabled = false })
	srv.Edit("benny", "made admin", func(u *netmakerfake.User) { u.PlatformRoleID = "admin" })
	srv.Edit("cathy", "added to ops", func(u *netmakerfake.User) { u.UserGroups[ops] = struct{}{} })
	srv.AddUser(netmakerfake.User{Username: "old.contractor", PlatformRoleID: "platform-user"})
	srv.AddUser(netmakerfake.User{Username: "svc-backup", PlatformRoleID: "platform-user"})
	if calls, _ := sc.run(); len(writes(calls)) != 0 {
		t.Fatalf("a normal run trusts the cache and sends nothing: %q", writes(calls))
	}
	srv.ResetCalls()
	res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	got := actionsOf(sc.h.DecisionsOf(res.RunID))
	// The account dirsync's token belongs to is an orphan too, but never
	// touched: a skipped decision says why.
	want := []string{"anna:drift", "anna:suspend", "benny:drift", "benny:set_role", "cathy:drift", "cathy:set_groups", "netmaker-admin:suspend", "old.contractor:suspend"}
	if !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	for _, d := range sc.h.DecisionsOf(res.RunID) {
		if d.User == "netmaker-admin" && (d.Outcome != "skipped" || !strings.Contains(d.Reason, "token belongs to")) {
			t.Fatalf("the token owner: %+v", d)
		}
	}
	if u, _ := srv.User("anna"); !u.AccountDisabled {
		t.Fatal("the leaver re-enabled by hand is active")
	}
	if u, _ := srv.User("benny"); u.PlatformRoleID != "platform-user" {
		t.Fatalf("benny's role %q", u.PlatformRoleID)
	}
	if u, _ := srv.User("cathy"); !slices.Equal(u.GroupIDs(), []string{dev}) {
		t.Fatalf("cathy's groups %v", srv.GroupNames(u.GroupIDs()))
	}
	if u, _ := srv.User("old.contractor"); !u.AccountDisabled {
		t.Fatal("orphan not suspended")
	}
	if u, _ := srv.User("svc-backup"); u.AccountDisabled {
		t.Fatal("allow-listed account touched")
	}
	// Missing: dan deleted by hand is re-created by the next reconcile.
	srv.RemoveUser("danny")
	res = sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	if got := actionsOf(sc.h.DecisionsOf(res.RunID)); !slices.Contains(got, "danny:missing") || !slices.Contains(got, "danny:create") {
		t.Fatalf("missing account: decisions %v", got)
	}
	if _, ok := srv.User("danny"); !ok {
		t.Fatal("danny not re-created")
	}
	// A no-op reconcile: reads only.
	srv.ResetCalls()
	res = sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	if w := writes(srv.Calls()); len(w) != 0 {
		t.Fatalf("no-op reconcile wrote %q (decisions %v)", w, actionsOf(sc.h.DecisionsOf(res.RunID)))
	}
}

func actionsOf(ds []state.Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.User+":"+d.Action)
	}
	slices.Sort(out)
	return out
}
