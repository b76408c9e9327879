package sync_test

// Regression tests for issue 18, one group per class (TestRegression18<Class>...):
// what reconcile finds survives approval, an account belongs to one person
// by the application's own id, the same rules on every path, a link
// conflict is not an orphan, the clock, and end dates in the guard. Each
// uses the engine's harness (synctest, memtarget, memstore) and asserts
// the calls the application received, the decisions and the cache.

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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

// --- 5. The clock ---

// An expiry passes; the next run is a targeted run for someone else (a SCIM
// push). The expired person stays due, and the run the timer then makes
// suspends them.
func TestRegression18ExpiryStaysDueAcrossTargetedRun(t *testing.T) {
	h, mt := setup(t)
	us := people(30)
	exp := h.Clock.Now().Add(time.Hour)
	us[1].Expires = &exp
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if at, keys := h.Engine.Due(); !at.Equal(exp) || !slices.Equal(keys, []string{"u001"}) {
		t.Fatalf("Due() = %v %v, want %v [u001]", at, keys, exp)
	}
	h.Clock.Advance(2 * time.Hour) // the expiry passed; no run yet
	other := us[5]
	other.DisplayName = "Renamed"
	h.Source.Set(append(slices.Clone(us[:5]), append([]identity.User{other}, us[6:]...)...)...)
	keys, err := h.Engine.MergeChange(t.Context(), "hr", source.Change{Upserts: []identity.User{other}})
	if err != nil {
		t.Fatal(err)
	}
	h.Run(dsync.RunOptions{Trigger: "scim", Keys: keys})
	at, due := h.Engine.Due()
	if !at.Equal(exp) || !slices.Equal(due, []string{"u001"}) {
		t.Fatalf("Due() = %v %v after a targeted run for u005; want the passed expiry %v [u001]", at, due, exp)
	}
	h.Run(dsync.RunOptions{Trigger: "expiry", UseStored: true}) // what the timer runs
	if a, _ := mt.Get("u001"); !a.Suspended {
		t.Fatal("the expired contractor is still active after the timer's run")
	}
	if at, _ := h.Engine.Due(); !at.IsZero() {
		t.Fatalf("Due() = %v after the expiry was applied; want nothing", at)
	}
}

// --- 6. End dates in the guard ---

// A bad read gives all 40 people an end date: in the past (the suspensions
// and the expiries are held), or two hours ahead (the expiries are held).
// No set_expiry reaches the application.
func TestRegression18MassEndDatesAreHeld(t *testing.T) {
	for _, ahead := range []time.Duration{-time.Hour, 2 * time.Hour} {
		t.Run(ahead.String(), func(t *testing.T) {
			h, mt := setup(t)
			us := people(40)
			h.Source.Set(us...)
			h.Run(dsync.RunOptions{})
			mt.Reset()
			end := h.Clock.Now().Add(ahead)
			for i := range us {
				us[i].Expires = &end
			}
			h.Source.Set(us...)
			res := h.Run(dsync.RunOptions{})
			if !res.Held {
				t.Fatalf("40 end dates were not held: status %s, decisions %v", res.Status, actionsOf(h.DecisionsOf(res.RunID), ""))
			}
			if n := count(mt, connector.ActSetExpiry, ""); n != 0 {
				t.Fatalf("%d set_expiry calls went out", n)
			}
			if n := count(mt, connector.ActSuspend, ""); n != 0 {
				t.Fatalf("%d suspend calls went out", n)
			}
			if err := approve(h.Engine, res.RunID); err != nil {
				t.Fatal(err)
			}
			if n := count(mt, connector.ActSetExpiry, ""); n != 40 {
				t.Fatalf("approved: %d set_expiry calls, want 40", n)
			}
		})
	}
}

// --- 1. What reconcile finds survives approval ---

// 12 leavers are re-enabled by hand; the reconcile's 12 re-suspensions
// exceed the guard and are held. Approving re-reads the application: the
// 11 still active are suspended, the one an administrator suspended again
// in between is skipped with a decision, and the next reconcile is clean.
func TestRegression18HeldReconcileDriftIsApplied(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "report"} })
	us := people(60)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	for i := range 12 {
		us[i].Active = false
	}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{AllowMassChange: true})
	for i := range 12 {
		mt.Edit(us[i].Key, func(a *identity.Account) { a.Suspended = false })
	}
	mt.Reset()
	res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	if !res.Held || count(mt, connector.ActSuspend, "") != 0 {
		t.Fatalf("12 re-suspensions: held=%v, %d sent; want held and none sent", res.Held, count(mt, connector.ActSuspend, ""))
	}
	checks, err := h.Engine.Recheck(t.Context(), res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		for id, wanted := range c.Wanted {
			if !wanted {
				t.Errorf("re-check: held step %s no longer wanted, though the application still has it active", id)
			}
		}
	}
	mt.Edit("u000", func(a *identity.Account) { a.Suspended = true }) // fixed by hand meanwhile
	if err := approve(h.Engine, res.RunID); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if a, _ := mt.Get(us[i].Key); !a.Suspended {
			t.Errorf("leaver %s re-enabled by hand is still active after the approval", us[i].Key)
		}
	}
	if n := count(mt, connector.ActSuspend, ""); n != 11 {
		t.Errorf("approval sent %d suspensions, want 11 (u000 was suspended by hand)", n)
	}
	mt.Reset()
	res = h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	if res.Held || len(mt.Calls()) != 0 {
		t.Fatalf("the next reconcile: held=%v calls=%v; want nothing to do", res.Held, mt.Calls())
	}
	if held, _ := h.Engine.HeldPlans(t.Context()); len(held) != 0 {
		t.Fatalf("held plans left after the approval: %+v", held)
	}
}

// Orphan suspensions held by the guard are applied when approved.
func TestRegression18HeldOrphanSuspensionsAreApplied(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Reconcile = config.Reconcile{Orphans: "suspend"} })
	h.Source.Set(people(20)...)
	h.Run(dsync.RunOptions{})
	for i := range 15 {
		mt.Seed(identity.Account{Key: fmt.Sprintf("o%02d", i), Username: fmt.Sprintf("former%02d", i)})
	}
	res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	if !res.Held || count(mt, connector.ActSuspend, "") != 0 {
		t.Fatalf("15 orphans: held=%v; want held, none sent", res.Held)
	}
	if err := approve(h.Engine, res.RunID); err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		if a, _ := mt.Get(fmt.Sprintf("o%02d", i)); !a.Suspended {
			t.Errorf("orphan o%02d is active after the approval", i)
		}
	}
}

// --- 2. An account belongs to one person, by the application's own id ---

// The role mailbox ceo@ passes from a leaver to a successor with another
// name and username. The successor gets an account of their own; the
// leaver's stays suspended, is not renamed, and is not given back.
func TestRegression18RoleMailboxSuccessorGetsOwnAccount(t *testing.T) {
	app, ezee := memtarget.New("app"), memtarget.New("ezeelogin")
	us := people(20)
	us[3].Email = "ceo@example.test"
	for _, u := range us {
		ezee.Seed(identity.Account{Key: u.Username, Username: u.Username, Email: u.Email})
	}
	h := synctest.New(t, []dsync.TargetSpec{
		synctest.Spec(app, synctest.Common()), synctest.Spec(memtarget.NewWriteOnly(ezee), synctest.Common()),
	}, synctest.Options{})
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	leaver := us[3]
	h.Source.Set(slices.Delete(slices.Clone(us), 3, 4)...)
	h.Run(dsync.RunOptions{})
	if a, _ := app.Get(leaver.Key); !a.Suspended {
		t.Fatal("the leaver is active")
	}
	successor := synctest.User("s100", "staff")
	successor.Email = "ceo@example.test"
	ezee.Seed(identity.Account{Key: "s100", Username: "s100", Email: successor.Email})
	h.Source.Set(append(slices.Delete(slices.Clone(us), 3, 4), successor)...)
	app.Reset()
	ezee.Reset()
	res := h.Run(dsync.RunOptions{})
	for name, mt := range map[string]*memtarget.Target{"app": app, "ezeelogin": ezee} {
		if calls := mt.CallsFor(leaver.Username); len(calls) != 0 {
			t.Errorf("%s: the leaver's account received %v: the successor took it over", name, calls)
		}
		if a, _ := mt.Get(leaver.Username); !a.Suspended || a.Username != leaver.Username {
			t.Errorf("%s: the leaver's account is now %+v", name, a)
		}
	}
	if calls := app.CallsFor("s100"); !slices.Contains(calls, connector.ActCreate) {
		t.Errorf("app: the successor's calls are %v, want an account of their own", calls)
	}
	if !slices.ContainsFunc(h.DecisionsOf(res.RunID), func(d state.Decision) bool {
		return d.Action == "takeover" && d.Outcome == dsync.OutcomeSkipped && strings.Contains(d.Reason, "not the same person")
	}) {
		t.Errorf("no decision says why the successor did not take the account over: %v", actionsOf(h.DecisionsOf(res.RunID), ""))
	}
}

// writeOnlyWith returns a harness with one write-only target (accounts
// known by username, as Ezeelogin's) holding us's accounts, after a first
// run over us.
func writeOnlyWith(t *testing.T, us []identity.User) (*synctest.Harness, *memtarget.Target) {
	t.Helper()
	ezee := memtarget.New("ezeelogin")
	for _, u := range us {
		ezee.Seed(identity.Account{Key: u.Username, Username: u.Username, Email: u.Email})
	}
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(memtarget.NewWriteOnly(ezee), synctest.Common())}, synctest.Options{})
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	return h, ezee
}

// A successor given a leaver's username on an application that knows its
// accounts by username and can make none (write-only) shares the leaver's
// account itself: it is left alone with a decision, never re-enabled.
func TestRegression18RecycledUsernameOnWriteOnlyIsLeftAlone(t *testing.T) {
	us := people(20)
	h, ezee := writeOnlyWith(t, us)
	h.Source.Set(slices.Delete(slices.Clone(us), 3, 4)...)
	h.Run(dsync.RunOptions{})
	successor := synctest.User("s100", "staff")
	successor.Username = us[3].Username // recycled
	h.Source.Set(append(slices.Delete(slices.Clone(us), 3, 4), successor)...)
	ezee.Reset()
	res := h.Run(dsync.RunOptions{})
	if calls := ezee.CallsFor(us[3].Username); len(calls) != 0 {
		t.Fatalf("the leaver's account received %v", calls)
	}
	if a, _ := ezee.Get(us[3].Username); !a.Suspended {
		t.Fatal("the leaver's account was re-enabled for the successor")
	}
	if len(decisionsOf(h.DecisionsOf(res.RunID), "takeover")) != 1 {
		t.Fatalf("want one takeover skip, decisions %v", actionsOf(h.DecisionsOf(res.RunID), ""))
	}
}

// A reconcile matches an account whose application id is on record by that
// id alone: a second account made by hand with the person's email is
// neither matched nor adopted (a decision names it), the person's account
// is not renamed nor downgraded, and their suspension hits their account.
func TestRegression18ReconcileMatchesByApplicationID(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Roles = []config.RoleRule{{Group: "admins", Role: "admin"}}
		c.DefaultRole = "user"
		c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "suspend"}
	})
	us := people(20)
	us[4].Groups = []string{"staff", "admins"}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mine, _ := mt.Get("u004")
	mt.Seed(identity.Account{Key: "hand", Username: "u004-test", Email: "u004@example.test", Role: "user", Remote: map[string]string{"id": "999"}})
	for i := range 3 { // the live list comes in map order: whichever comes first
		mt.Reset()
		res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
		if calls := mt.Calls(); len(calls) != 0 {
			t.Fatalf("reconcile sent %+v", calls)
		}
		if a, _ := mt.Get("u004"); a.Username != "u004" || a.Role != "admin" || a.Remote["id"] != mine.Remote["id"] {
			t.Fatalf("u004's account is now %+v", a)
		}
		if h.Accounts("app")["u004"].Remote["id"] != mine.Remote["id"] {
			t.Fatalf("the cache took another application id for u004: %+v", h.Accounts("app")["u004"])
		}
		if i == 0 && len(decisionsOf(h.DecisionsOf(res.RunID), "adopt")) != 1 {
			t.Fatalf("want one decision about the hand-made account, got %v", actionsOf(h.DecisionsOf(res.RunID), ""))
		}
	}
	us[4].Active = false
	h.Source.Set(us...)
	mt.Reset()
	h.Run(dsync.RunOptions{})
	if a, _ := mt.Get("u004"); !a.Suspended {
		t.Fatal("u004's own account is active after they left")
	}
	if a, _ := mt.Get("hand"); a.Suspended || len(mt.CallsFor("hand")) != 0 {
		t.Fatalf("the hand-made account received %v", mt.CallsFor("hand"))
	}
}

// Two people share a username (another email each): the account with that
// username is adopted by neither; a decision names both.
func TestRegression18SharedUsernameIsNotAdopted(t *testing.T) {
	mt := memtarget.New("app")
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(mt, synctest.Common())}, synctest.Options{Sources: []string{"hr", "idp"}})
	a, b := synctest.User("a1", "staff"), synctest.User("b1", "staff")
	a.Username, b.Username = "jdoe", "jdoe"
	mt.Seed(identity.Account{Key: "existing", Username: "jdoe", Remote: map[string]string{"id": "77"}})
	h.Src("hr").Set(a)
	h.Src("idp").Set(b)
	res := h.Run(dsync.RunOptions{})
	if calls := mt.CallsFor("existing"); len(calls) != 0 {
		t.Fatalf("the shared account received %v", calls)
	}
	c := h.Accounts("app")
	for _, k := range []string{"a1", "b1"} {
		if c[k].Remote["id"] == "77" {
			t.Fatalf("%s adopted the account both claim: %+v", k, c[k])
		}
	}
	ds := decisionsOf(h.DecisionsOf(res.RunID), "adopt")
	if len(ds) != 1 || !strings.Contains(ds[0].Reason, "a1") || !strings.Contains(ds[0].Reason, "b1") {
		t.Fatalf("adopt decisions %+v, want one naming a1 and b1", ds)
	}
}

// --- 3. The same rules on every path ---

// An allow-listed and a protected account whose email a new hire has are
// adopted by no path: not by a full run, not by a reconcile; the hire
// leaves and neither is suspended.
func TestRegression18KeptOffAccountsNeverAdopted(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Reconcile = config.Reconcile{Orphans: "suspend", Allow: []string{"svc-*"}}
		c.Protected = []string{"breakglass"}
	})
	us := people(20)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Seed(identity.Account{Key: "svc", Username: "svc-build", Email: "build@example.test", Remote: map[string]string{"id": "500"}})
	mt.Seed(identity.Account{Key: "bg", Username: "breakglass", Email: "ops@example.test", Remote: map[string]string{"id": "501"}})
	build, ops := synctest.User("n1", "staff"), synctest.User("n2", "staff")
	build.Email, ops.Email = "build@example.test", "ops@example.test"
	h.Source.Set(append(slices.Clone(us), build, ops)...)
	for _, ro := range []dsync.RunOptions{{}, {Reconcile: true, Trigger: "reconcile"}} {
		h.Run(ro)
		for _, k := range []string{"n1", "n2"} {
			if id := h.Accounts("app")[k].Remote["id"]; id == "500" || id == "501" {
				t.Fatalf("%s adopted a kept-off account (run %+v)", k, ro)
			}
		}
	}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	for _, k := range []string{"svc", "bg"} {
		if a, _ := mt.Get(k); a.Suspended || len(mt.CallsFor(k)) != 0 {
			t.Fatalf("kept-off account %s received %v", k, mt.CallsFor(k))
		}
	}
}

// A known person's account carrying a leaver's email is not the leaver's
// account: the leaver's record is not forgotten ("retired") on that
// ground, and the leaver is suspended.
func TestRegression18LeaverNotRetiredByAnotherPersonsEmail(t *testing.T) {
	h, mt := setup(t)
	us := people(20)
	us[3].Email = "ceo@example.test"
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	us[5].Email = "ceo@example.test" // the successor is given the mailbox first
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	h.Source.Set(slices.Delete(slices.Clone(us), 3, 4)...) // then the leaver leaves
	h.Run(dsync.RunOptions{})
	if a, _ := mt.Get("u003"); !a.Suspended {
		t.Fatalf("the leaver's account is active: their record was forgotten (calls %v)", mt.CallsFor("u003"))
	}
	if a, _ := mt.Get("u005"); a.Suspended {
		t.Fatal("the successor was suspended")
	}
}

// --- 4. A link conflict is not an orphan ---

// A record left out as a link conflict is a known person: reconcile with
// orphans: suspend (or delete) leaves its account alone, with a decision.
func TestRegression18LinkConflictIsNotAnOrphan(t *testing.T) {
	for _, policy := range []string{"suspend", "delete"} {
		t.Run(policy, func(t *testing.T) {
			h, mt := setup(t, func(c *config.TargetCommon) { c.Reconcile = config.Reconcile{Orphans: policy} })
			us := people(20)
			h.Source.Set(us...)
			h.Run(dsync.RunOptions{})
			twin := synctest.User("x900", "staff") // a second record with u002's email
			twin.Email = us[2].Email
			mt.Seed(identity.Account{Key: "twin", Username: "x900", Email: "x900@corp.test", Remote: map[string]string{"id": "900"}})
			h.Source.Set(append(slices.Clone(us), twin)...)
			res := h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
			if calls := mt.CallsFor("twin"); len(calls) != 0 {
				t.Fatalf("the conflicted record's account received %v (decisions %v)", calls, actionsOf(h.DecisionsOf(res.RunID), ""))
			}
			ds := decisionsOf(h.DecisionsOf(res.RunID), "adopt")
			if len(ds) != 1 || !strings.Contains(ds[0].Reason, "link conflict") {
				t.Fatalf("adopt decisions %+v, want one naming the link conflict", ds)
			}
		})
	}
}

// A person known to two sources leaves one of them; a successor joins
// that source with their email (a role mailbox). The successor's record is
// another object of that directory: it starts a person of its own instead
// of joining the leaver by email, and gets an account of their own.
func TestRegression18SuccessorInSameSourceIsAnotherPerson(t *testing.T) {
	app := memtarget.New("app")
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(app, synctest.Common())}, synctest.Options{Sources: []string{"idp", "ad"}})
	us := people(10)
	h.Src("ad").Set(us...)
	inIdP := us[3]
	inIdP.Key = "idp-u003"
	h.Src("idp").Set(inIdP)
	h.Run(dsync.RunOptions{})
	successor := synctest.User("s100", "staff")
	successor.Email = us[3].Email
	h.Src("ad").Set(append(slices.Delete(slices.Clone(us), 3, 4), successor)...)
	app.Reset()
	res := h.Run(dsync.RunOptions{})
	for _, c := range app.CallsFor("idp-u003") { // the person is keyed by their first record
		if c == connector.ActUpdate {
			t.Fatalf("the leaver's account was renamed for the successor (decisions %v)", actionsOf(h.DecisionsOf(res.RunID), ""))
		}
	}
	if a, _ := app.Get("idp-u003"); a.Username != "u003" {
		t.Fatalf("the leaver's account is now %+v", a)
	}
	if !slices.Contains(app.CallsFor("s100"), connector.ActCreate) {
		t.Fatalf("the successor has no account of their own (calls %v)", app.Calls())
	}
}

// On a write-only application (accounts known by username), a new person
// whose username a known person's record holds is left alone with a
// decision: one account, one person.
func TestRegression18UsernameHeldByAnotherRecordOnWriteOnly(t *testing.T) {
	us := people(10)
	h, ezee := writeOnlyWith(t, us)
	twin := synctest.User("s100", "admins")
	twin.Username = "u004" // u004 is still here
	h.Source.Set(append(slices.Clone(us), twin)...)
	ezee.Reset()
	res := h.Run(dsync.RunOptions{})
	if calls := ezee.CallsFor("u004"); len(calls) != 0 {
		t.Fatalf("u004's account received %v for another person", calls)
	}
	if _, ok := h.Accounts("ezeelogin")["s100"]; ok {
		t.Fatalf("a second record claims u004's account: %+v", h.Accounts("ezeelogin")["s100"])
	}
	if len(decisionsOf(h.DecisionsOf(res.RunID), "takeover")) != 1 {
		t.Fatalf("want one decision, got %v", actionsOf(h.DecisionsOf(res.RunID), ""))
	}
}

// A leaver's mailbox passes to a successor; later the leaver comes back
// through the IdP, whose record carries the directory's id as externalId.
// They are the leaver again — their own account comes back — not merged
// into the successor by the email they share.
func TestRegression18ReturningLeaverIsNotMergedIntoSuccessor(t *testing.T) {
	app := memtarget.New("app")
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(app, synctest.Common())}, synctest.Options{Sources: []string{"idp", "ad"}})
	us := people(10)
	h.Src("idp").SetAllowEmpty(true)
	h.Src("ad").Set(us...)
	h.Run(dsync.RunOptions{})
	successor := synctest.User("s100", "staff")
	successor.Email = us[7].Email
	h.Src("ad").Set(append(slices.Delete(slices.Clone(us), 7, 8), successor)...)
	h.Run(dsync.RunOptions{})
	back := us[7]
	back.Key, back.Attributes = "idp-7", map[string]string{"externalId": us[7].Key}
	h.Src("idp").Set(back)
	app.Reset()
	res := h.Run(dsync.RunOptions{})
	if calls := app.CallsFor("s100"); len(calls) != 0 {
		t.Fatalf("the successor's account received %v for the returning leaver (decisions %v)", calls, actionsOf(h.DecisionsOf(res.RunID), ""))
	}
	if a, _ := app.Get("u007"); a.Suspended {
		t.Fatalf("the returning leaver's own account stays suspended (calls %v)", app.Calls())
	}
}

// An orphan suspended under reconcile.orphans: suspend stays suspended: the
// target's delayed deletion of leavers does not apply to it.
func TestRegression18SuspendedOrphanIsNotDeletedLater(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Reconcile = config.Reconcile{Orphans: "suspend"}
		c.Deprovision = config.Deprovision{Action: "suspend", DeleteAfter: config.Duration(7 * 24 * time.Hour)}
	})
	h.Source.Set(people(20)...)
	h.Run(dsync.RunOptions{})
	mt.Seed(identity.Account{Key: "x", Username: "former", Remote: map[string]string{"id": "900"}})
	h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	if a, _ := mt.Get("x"); !a.Suspended {
		t.Fatal("the orphan was not suspended")
	}
	h.Clock.Advance(8 * 24 * time.Hour)
	h.Run(dsync.RunOptions{})
	h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	if _, ok := mt.Get("x"); !ok {
		t.Fatalf("the orphan was deleted under reconcile.orphans: suspend (calls %v)", mt.CallsFor("x"))
	}
}

// A create whose answer was lost leaves a record with no application id. A
// reconcile does not match it, by email, to a protected account that has
// that email: the protected account is not taken, renamed or touched.
func TestRegression18UncertainCreateNotMatchedToProtectedAccount(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Protected = []string{"svc-n1"}
		c.Reconcile = config.Reconcile{Drift: "fix", Orphans: "suspend"}
	})
	us := people(20)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Seed(identity.Account{Key: "svc", Username: "svc-n1", Email: "n1@example.test", Remote: map[string]string{"id": "900"}})
	mt.Hook = func(act connector.Action, a identity.Account) error {
		if act == connector.ActCreate && a.Key == "n1" {
			return connector.Uncertain(errors.New("timeout"))
		}
		return nil
	}
	h.Source.Set(append(slices.Clone(us), synctest.User("n1", "staff"))...)
	h.Run(dsync.RunOptions{})
	mt.Hook = nil
	h.Run(dsync.RunOptions{Reconcile: true, Trigger: "reconcile"})
	h.Run(dsync.RunOptions{})
	if calls := mt.CallsFor("svc"); len(calls) != 0 {
		t.Fatalf("the protected account received %v", calls)
	}
	if id := h.Accounts("app")["n1"].Remote["id"]; id == "900" {
		t.Fatal("n1's record took the protected account's id")
	}
}

// A targeted run (a SCIM push) for a new person whose account was made by
// hand in the application adopts it, as a full run does, instead of
// making a second one.
func TestRegression18TargetedRunAdoptsHandMadeAccount(t *testing.T) {
	h, mt := setup(t)
	us := people(10)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Seed(identity.Account{Key: "hand", Username: "n1", Email: "n1@example.test", Remote: map[string]string{"id": "900"}})
	n1 := synctest.User("n1", "staff")
	h.Source.Set(append(slices.Clone(us), n1)...)
	keys, err := h.Engine.MergeChange(t.Context(), "hr", source.Change{Upserts: []identity.User{n1}})
	if err != nil {
		t.Fatal(err)
	}
	mt.Reset()
	h.Run(dsync.RunOptions{Trigger: "scim", Keys: keys})
	if n := count(mt, connector.ActCreate, ""); n != 0 {
		t.Fatalf("a second account was made for n1 (calls %v)", mt.Calls())
	}
	if id := h.Accounts("app")["n1"].Remote["id"]; id != "900" {
		t.Fatalf("n1's record: %+v, want the hand-made account adopted", h.Accounts("app")["n1"])
	}
}
