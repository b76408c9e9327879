package ezeep_test

import (
	"slices"
	"testing"

	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// A reconcile against the ezeep fake: a role raised and a group added by
// hand are put back — the group PATCH carries the complete list, as
// ezeep's replace-all API needs — and a hand-made user is reported as an
// orphan (the default policy), not touched.
func TestReconcileEzeep(t *testing.T) {
	sc := newEZScenario(t, ezeepfake.Options{Owner: "owner@example.test"}, "suspend", "")
	gus := sc.srv.AddUser(ezeepfake.User{Email: "gus@example.test", FirstName: "Given", LastName: "gus", IsVerified: true,
		Role: ezeepfake.RoleUser, Groups: []string{sc.groups["staff"]}})
	sc.set(synctest.User("gus", "print-users", "staff"))
	sc.run() // adopted
	if calls, ds := sc.run(); len(writes(calls)) != 0 {
		t.Fatalf("a second run wrote %q: %+v", writes(calls), ds)
	}
	sc.srv.Edit(gus, "made admin, added to color", func(u *ezeepfake.User) {
		u.Role = ezeepfake.RoleAdmin
		u.Groups = append(u.Groups, sc.groups["color"])
	})
	sc.srv.AddUser(ezeepfake.User{Email: "zed@example.test", IsVerified: true, Role: ezeepfake.RoleUser})
	sc.srv.ResetCalls()
	res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	var got []string
	for _, d := range sc.h.DecisionsOf(res.RunID) {
		got = append(got, d.User+":"+d.Action+":"+d.Outcome)
	}
	slices.Sort(got)
	want := []string{"gus:drift:applied", "gus:drift:applied", "gus:set_groups:applied",
		"gus:set_role:applied", "owner@example.test:orphan:skipped", "zed@example.test:orphan:skipped"}
	if !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	u, _ := sc.srv.User(gus)
	if u.Role != ezeepfake.RoleUser || !slices.Equal(u.Groups, []string{sc.groups["staff"]}) {
		t.Fatalf("gus after the reconcile: role %s groups %v", u.Role, sc.srv.GroupNames(u.Groups))
	}
	sc.checkGroupPatches(sc.srv.Calls())
	z, _ := sc.srv.UserByEmail("zed@example.test")
	if z.Role != ezeepfake.RoleUser {
		t.Fatal("the reported orphan was changed")
	}
	// No-op reconcile: no write.
	sc.srv.ResetCalls()
	sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	if w := writes(sc.srv.Calls()); len(w) != 0 {
		t.Fatalf("no-op reconcile wrote %q", w)
	}
}
