package allthenticate_test

import (
	"github.com/dirsync/dirsync/config"
	"slices"
	"testing"

	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
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

// Every guest carries Remote["tag"] GUEST: a reconcile matches guests by
// their ids only, so no guest is taken for another. (Guests stay guests
// here: people disabled in the directory, adopted by a reconcile and
// suspended, never promoted.)
func TestReconcileAllthenticateGuestsMatchedByIDs(t *testing.T) {
	// No rank rules: a guest given a rank would be promoted.
	sc := newATScenario(t, allthenticatefake.Options{}, "suspend", "", nil, func(c *config.TargetCommon) { c.Roles, c.DefaultRole = nil, "" })
	var us []identity.User
	for _, n := range []string{"gia", "gil", "gus", "guy"} {
		sc.srv.AddUser(allthenticatefake.User{Email: n + "@example.test", FirstName: "Given", LastName: n, Tag: allthenticatefake.TagGuest})
		u := user(n)
		u.Active = false
		us = append(us, u)
	}
	sc.set(us...)
	sc.run()
	sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true}) // adopted, suspended
	if n := len(sc.h.Accounts("allthenticate")); n != 4 {
		t.Fatalf("%d guests adopted", n)
	}
	for range 10 {
		res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
		for _, d := range sc.h.DecisionsOf(res.RunID) {
			if d.Action == "missing" || d.Action == "drift" {
				t.Fatalf("a guest was taken for another: %+v", d)
			}
		}
	}
}

// A guest disabled in the directory, adopted by a reconcile, is suspended
// and not promoted to a full user to get the rank the rules give.
func TestReconcileAllthenticateDisabledGuestIsNotPromoted(t *testing.T) {
	sc := newATScenario(t, allthenticatefake.Options{}, "suspend", "", nil)
	sc.srv.AddUser(allthenticatefake.User{Email: "gwen@example.test", FirstName: "Given", LastName: "gwen", Tag: allthenticatefake.TagGuest})
	u := user("gwen")
	u.Active = false
	sc.set(u)
	sc.run()
	sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	sc.run()
	g := sc.member("gwen@example.test")
	if g.Tag != allthenticatefake.TagGuest || !g.Suspended {
		t.Fatalf("gwen %+v", g)
	}
}
