package allthenticate_test

import (
	"slices"
	"testing"

	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/target/allthenticate/allthenticatefake"
)

// A reconcile against the Allthenticate fake: a leaver an administrator
// unsuspended by hand is suspended again with exactly one toggle, and a
// member (or guest) no source knows is reported as an orphan.
func TestReconcileAllthenticate(t *testing.T) {
	sc := newATScenario(t, allthenticatefake.Options{}, "suspend", "", nil)
	srv := sc.srv
	srv.AddUser(allthenticatefake.User{Email: "dora@example.test", FirstName: "Given", LastName: "dora"})
	srv.AddUser(allthenticatefake.User{Email: "eli@example.test", FirstName: "Given", LastName: "eli"})
	sc.set(user("dora"), user("eli"))
	sc.run()
	sc.edit("dora", func(u *identity.User) { u.Active = false })
	sc.run()
	dora := sc.member("dora@example.test")
	if !dora.Suspended {
		t.Fatal("dora not suspended")
	}
	srv.SetSuspended(dora.EmailID, false) // by hand
	srv.AddUser(allthenticatefake.User{Email: "visitor@example.test", Tag: allthenticatefake.TagGuest})
	srv.ResetCalls() // and the toggle count
	res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	var got []string
	for _, d := range sc.h.DecisionsOf(res.RunID) {
		got = append(got, d.User+":"+d.Action+":"+d.Outcome)
	}
	slices.Sort(got)
	want := []string{"dora:drift:applied", "dora:suspend:applied", "visitor:orphan:skipped"}
	if !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	if u := sc.member("dora@example.test"); !u.Suspended || srv.Toggles(dora.EmailID) != 1 {
		t.Fatalf("dora: suspended %v after %d toggles, want suspended by one", u.Suspended, srv.Toggles(dora.EmailID))
	}
	srv.ResetCalls()
	sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	if w := writes(srv.Calls()); len(w) != 0 {
		t.Fatalf("no-op reconcile wrote %q", w)
	}
}
