package scimclient

import (
	"slices"
	"testing"

	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
	"github.com/dirsync/dirsync/target/scimclient/scimfake"
)

// A reconcile against the SCIM fake: a leaver set active again by hand in
// the service provider is deactivated again, a user no source knows is
// reported as an orphan, and a no-op reconcile writes nothing.
func TestReconcileSCIM(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "")
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(e.tg, synctest.Common())}, synctest.Options{})
	us := []identity.User{synctest.User("ivy", "staff"), synctest.User("jon", "staff")}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	us[0].Active = false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	ivy, _ := e.fake.UserByName("ivy")
	if ivy["active"] != false {
		t.Fatalf("ivy not deactivated: %v", ivy)
	}
	e.fake.EditUser(ivy["id"].(string), func(u map[string]any) { u["active"] = true })
	e.fake.SeedUser(map[string]any{"userName": "stranger", "active": true})
	e.fake.ResetRequests()
	res := h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	var got []string
	for _, d := range h.DecisionsOf(res.RunID) {
		got = append(got, d.User+":"+d.Action+":"+d.Outcome)
	}
	slices.Sort(got)
	if want := []string{"ivy:drift:applied", "ivy:suspend:applied", "stranger:orphan:skipped"}; !slices.Equal(got, want) {
		t.Fatalf("decisions %v, want %v", got, want)
	}
	if u, _ := e.fake.UserByName("ivy"); u["active"] != false {
		t.Fatalf("ivy after the reconcile: %v", u)
	}
	e.fake.ResetRequests()
	h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	for _, r := range e.fake.Requests() {
		if r.Method != "GET" {
			t.Fatalf("no-op reconcile sent %s %s", r.Method, r.Path)
		}
	}
}
