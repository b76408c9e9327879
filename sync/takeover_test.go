package sync_test

import (
	"slices"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// A person who leaves every source and later comes back under a new
// identity (a record in another source with the same immutable id) takes
// their old account over: it is re-enabled, never made a second time; on
// a write-only application too. (A record whose externalId is a linked
// record's key joins that person directly: TestFindingReturningPersonKeepsAccount.)
func TestReturningPersonTakesTheirAccountOver(t *testing.T) {
	app, ezee := memtarget.New("app"), memtarget.New("ezeelogin")
	us := people(5)
	for _, u := range us {
		ezee.Seed(identity.Account{Key: u.Username, Username: u.Username, Email: u.Email})
	}
	h := synctest.New(t, []dsync.TargetSpec{
		synctest.Spec(app, synctest.Common()), synctest.Spec(memtarget.NewWriteOnly(ezee), synctest.Common()),
	}, synctest.Options{Sources: []string{"idp", "ad"}})
	h.Src("ad").Set(us...)
	h.Src("idp").Set(synctest.User("idp-x", "staff"))
	h.Run(dsync.RunOptions{})
	h.Src("ad").Set(slices.Delete(slices.Clone(us), 1, 2)...)
	h.Run(dsync.RunOptions{AllowMassChange: true})
	if a, _ := app.Get("u001"); !a.Suspended {
		t.Fatal("the leaver is active")
	}
	back := us[1] // the IdP's record has the directory's key: the same person, under a new person id
	h.Src("idp").Set(synctest.User("idp-x", "staff"), back)
	app.Reset()
	ezee.Reset()
	res := h.Run(dsync.RunOptions{})
	if got := app.CallsFor("u001"); !slices.Equal(got, []connector.Action{connector.ActUnsuspend}) {
		t.Fatalf("app calls %v (all: %+v), decisions %+v", got, app.Calls(), h.DecisionsOf(res.RunID))
	}
	if got := ezee.CallsFor("u001"); !slices.Equal(got, []connector.Action{connector.ActUnsuspend}) {
		t.Fatalf("ezeelogin calls %v", got)
	}
	if c := h.Accounts("app"); c["u001"].Exists || !c["idp:u001"].Exists || c["idp:u001"].Suspended {
		t.Fatalf("cache after the takeover: %+v", c)
	}
}
