package sync_test

// Regression tests for the eight scenarios of issue 11, one group per
// scenario (TestRegression<N>...). Each asserts the behaviour the engine
// invariants in DESIGN.md promise: exact calls the application received,
// decisions and cache records.

import (
	"context"
	"errors"
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
	"github.com/dirsync/dirsync/state/memstore"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// approve releases a held run as `dirsync approve RUN` does.
func approve(e *dsync.Engine, runID string, only ...connector.Action) error {
	_, err := e.Approve(context.Background(), dsync.ApproveRequest{RunID: runID, Only: only, By: "test-operator"})
	return err
}

// count returns how many calls of act the target received, for key when
// key is not empty.
func count(mt *memtarget.Target, act connector.Action, key string) int {
	n := 0
	for _, c := range mt.Calls() {
		if c.Action == act && (key == "" || c.Key == key) {
			n++
		}
	}
	return n
}

func staffScope(c *config.TargetCommon) { c.Scope = []string{"staff"} }

// --- 1. Held plans go stale ---

func TestRegression1HeldDeletionsOfPeopleBackInScope(t *testing.T) {
	h, mt := setup(t, staffScope, func(c *config.TargetCommon) { c.Deprovision.Action = "delete" })
	us := people(100)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	short := slices.Clone(us)
	for i := range 12 {
		short[i].Groups = nil // the group read came back short
	}
	h.Source.Set(short...)
	res := h.Run(dsync.RunOptions{})
	if !res.Held {
		t.Fatal("12 deletions were not held")
	}
	h.Source.Set(us...) // the directory is fixed
	h.Run(dsync.RunOptions{})
	mt.Reset()
	if err := approve(h.Engine, res.RunID); err != nil {
		t.Logf("approve: %v", err)
	}
	if n := count(mt, connector.ActDelete, ""); n != 0 {
		t.Fatalf("approve deleted %d people who are in scope again", n)
	}
	for _, u := range us {
		if _, ok := mt.Get(u.Key); !ok {
			t.Fatalf("%s no longer exists", u.Key)
		}
	}
}

func TestRegression1HeldSuspensionsOfReenabledPeople(t *testing.T) {
	h, mt := setup(t, staffScope)
	us := people(100)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	off := slices.Clone(us)
	for i := range 12 {
		off[i].Active = false
	}
	h.Source.Set(off...)
	res := h.Run(dsync.RunOptions{})
	if !res.Held {
		t.Fatal("12 suspensions were not held")
	}
	h.Source.Set(us...) // re-enabled
	h.Run(dsync.RunOptions{})
	mt.Reset()
	if err := approve(h.Engine, res.RunID); err != nil {
		t.Logf("approve: %v", err)
	}
	if n := count(mt, connector.ActSuspend, ""); n != 0 {
		t.Fatalf("approve suspended %d people enabled since", n)
	}
}

func TestRegression1ApproveKeepsNewerCacheRecords(t *testing.T) {
	h, mt := setup(t, staffScope)
	us := people(100)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	for i := range 12 {
		us[i].Active = false
	}
	h.Source.Set(us...)
	held := h.Run(dsync.RunOptions{})
	if !held.Held {
		t.Fatal("12 suspensions were not held")
	}
	us[0].MustChangePassword = true // a new event for u000 after the hold
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if n := count(mt, connector.ActForcePasswordChange, "u000"); n != 1 {
		t.Fatalf("force_password_change sent %d times before approval, want 1", n)
	}
	if err := approve(h.Engine, held.RunID); err != nil {
		t.Fatal(err)
	}
	h.Run(dsync.RunOptions{})
	if n := count(mt, connector.ActForcePasswordChange, "u000"); n != 1 {
		t.Fatalf("force_password_change sent %d times for one event: approve wrote an old record over a newer one", n)
	}
	if c := h.Accounts("app")["u000"]; !c.MustChangePassword || !c.Suspended {
		t.Fatalf("cache record of u000 = %+v, want suspended with must_change_password", c)
	}
}

func TestRegression1TwoTargetsHeldInOneRun(t *testing.T) {
	a, b := memtarget.New("app1"), memtarget.New("app2")
	h := synctest.New(t, []dsync.TargetSpec{
		synctest.Spec(a, synctest.Common(staffScope)), synctest.Spec(b, synctest.Common(staffScope)),
	}, synctest.Options{})
	us := people(100)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	for i := range 12 {
		us[i].Active = false
	}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	if n := len(actionsOf(h.DecisionsOf(res.RunID), dsync.OutcomeHeld)); n != 24 {
		t.Fatalf("%d held decisions, want 24", n)
	}
	if err := approve(h.Engine, res.RunID); err != nil {
		t.Fatal(err)
	}
	if na, nb := count(a, connector.ActSuspend, ""), count(b, connector.ActSuspend, ""); na != 12 || nb != 12 {
		t.Fatalf("approve suspended %d in app1 and %d in app2, want 12 and 12", na, nb)
	}
}

func TestRegression1PlanFileRevalidatedAgainstSources(t *testing.T) {
	h, mt := setup(t)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	off := slices.Clone(us)
	off[0].Active = false
	h.Source.Set(off...)
	pf, err := h.Engine.MakePlanFile(context.Background(), dsync.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.Source.Set(us...) // re-enabled before the plan is applied; no run in between
	mt.Reset()
	if _, err := h.Engine.ApplyPlanFile(context.Background(), pf, dsync.RunOptions{}); err != nil {
		t.Logf("apply: %v", err)
	}
	if n := count(mt, connector.ActSuspend, ""); n != 0 {
		t.Fatalf("the plan file suspended %d person the sources now say is active", n)
	}
}

// --- 2. One failing step blocks the suspension ---

// leaverWithFailingUpdate disables u001 and renames them in the same run;
// the update is refused with err.
func leaverWithFailingUpdate(t *testing.T, err error) (*synctest.Harness, *memtarget.Target) {
	t.Helper()
	h, mt := setup(t)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Hook = func(act connector.Action, a identity.Account) error {
		if act == connector.ActUpdate && a.Key == "u001" {
			return err
		}
		return nil
	}
	us[1].GivenName, us[1].Active = "Renamed", false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	return h, mt
}

func TestRegression2FailingUpdateDoesNotBlockSuspend(t *testing.T) {
	_, mt := leaverWithFailingUpdate(t, connector.Permanent(errors.New("400 invalid given name")))
	if a, _ := mt.Get("u001"); !a.Suspended {
		t.Fatalf("calls for u001 = %v: the leaver is still active", mt.CallsFor("u001"))
	}
}

func TestRegression2SkippedUpdateDoesNotBlockSuspend(t *testing.T) {
	_, mt := leaverWithFailingUpdate(t, connector.Skip("profile owned by another system"))
	if a, _ := mt.Get("u001"); !a.Suspended {
		t.Fatalf("calls for u001 = %v: the leaver is still active", mt.CallsFor("u001"))
	}
}

func TestRegression2QuarantineNeverStopsSuspension(t *testing.T) {
	h, mt := setup(t)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Hook = func(act connector.Action, a identity.Account) error {
		if act == connector.ActUpdate && a.Key == "u002" {
			return connector.Permanent(errors.New("400 invalid given name"))
		}
		return nil
	}
	us[2].GivenName = "Renamed"
	h.Source.Set(us...)
	for range h.Limits.QuarantineAfter + 1 {
		h.Run(dsync.RunOptions{})
	}
	us[2].Active = false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if a, _ := mt.Get("u002"); !a.Suspended {
		t.Fatalf("calls for u002 = %v: quarantine kept a leaver active", mt.CallsFor("u002"))
	}
}

func TestRegression2FailingDeleteIsRetriedNotQuarantined(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Deprovision.Action = "delete" })
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Hook = func(act connector.Action, a identity.Account) error {
		if act == connector.ActDelete && a.Key == "u003" {
			return connector.Permanent(errors.New("409 account locked"))
		}
		return nil
	}
	h.Source.Set(slices.Delete(slices.Clone(us), 3, 4)...)
	runs := h.Limits.QuarantineAfter + 2
	deletes := 0
	for range runs {
		res := h.Run(dsync.RunOptions{})
		for _, d := range h.DecisionsOf(res.RunID) {
			if d.User == "u003" && d.Action == string(connector.ActDelete) {
				deletes++
			}
			if d.User == "u003" && d.Action == "quarantine" {
				t.Fatalf("an access-reducing step was quarantined: %+v", d)
			}
		}
	}
	if deletes != runs {
		t.Fatalf("the failing delete was attempted in %d of %d runs, want every run", deletes, runs)
	}
}

// --- 3. Records written ahead of their actions ---

// gated refuses act for every account (a version gate), so a skip is
// planned next to the step under test.
func gated(mt *memtarget.Target, act connector.Action) {
	mt.GateFn = func(a connector.Action, _ identity.Account) string {
		if a == act {
			return string(act) + " needs version 7.41"
		}
		return ""
	}
}

// crashHarness is a harness whose store a test can take away, as a process
// dying takes it away from the engine.
func crashHarness(t *testing.T, mods ...func(*config.TargetCommon)) (*synctest.Harness, *memtarget.Target, *synctest.FaultStore) {
	t.Helper()
	fs := synctest.NewFaultStore(memstore.New(memstore.Options{JournalSize: 100000}))
	mt := memtarget.New("app")
	serial := func(c *config.TargetCommon) { c.Concurrency = 1 }
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(mt, synctest.Common(append(mods, serial)...))}, synctest.Options{Store: fs})
	return h, mt, fs
}

// crashBeforeU001 makes u000 change too, and runs with the process dying
// at u000's update: u001's steps, planned in the same run, never start.
func crashBeforeU001(t *testing.T, h *synctest.Harness, mt *memtarget.Target, fs *synctest.FaultStore, us []identity.User) {
	t.Helper()
	us[0].GivenName = "Renamed"
	h.Source.Set(us...)
	runCrashingAt(t, h, mt, fs, connector.ActUpdate, "u000")
}

// runCrashingAt runs the engine until its first call of act on key, where
// the process dies: the call is not sent, no later store write happens, the
// run's context ends. h.Engine is then a new engine on the same store.
func runCrashingAt(t *testing.T, h *synctest.Harness, mt *memtarget.Target, fs *synctest.FaultStore, act connector.Action, key string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	crashed := false
	mt.Hook = func(a connector.Action, acct identity.Account) error {
		if crashed || (a == act && acct.Key == key) {
			if !crashed {
				crashed = true
				fs.SetHook(func(synctest.Op, string) error { return errors.New("process is dead") })
				cancel()
			}
			return connector.Retryable(errors.New("process is dead"))
		}
		return nil
	}
	_, _ = h.Engine.Run(ctx, dsync.RunOptions{})
	mt.Hook = nil
	fs.SetHook(nil)
	if !crashed {
		t.Fatalf("the run never sent %s for %s", act, key)
	}
	h.Engine = h.NewEngine()
}

func TestRegression3RoleRevocationNotRecordedAhead(t *testing.T) {
	h, mt, fs := crashHarness(t, func(c *config.TargetCommon) {
		c.Roles = []config.RoleRule{{Group: "admins", Role: "admin"}}
		c.DefaultRole = "user"
	})
	gated(mt, connector.ActSetExpiry)
	us := people(30)
	us[1].Groups = []string{"staff", "admins"}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	exp := h.Clock.Now().Add(30 * 24 * time.Hour)
	us[1].Groups, us[1].Expires = []string{"staff"}, &exp
	crashBeforeU001(t, h, mt, fs, us)
	if c, a := h.Accounts("app")["u001"], must(mt.Get("u001")); c.Role == "user" && c.Pending == "" && a.Role != "user" {
		t.Fatalf("the cache says role user although set_role was never sent: %+v", c)
	}
	h.Run(dsync.RunOptions{})
	if a, _ := mt.Get("u001"); a.Role != "user" {
		t.Fatalf("role in the application = %q, want user: the revocation was never sent", a.Role)
	}
}

func TestRegression3UnsuspendNotRecordedAhead(t *testing.T) {
	h, mt, fs := crashHarness(t)
	gated(mt, connector.ActSetExpiry)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	us[1].Active = false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	exp := h.Clock.Now().Add(30 * 24 * time.Hour)
	us[1].Active, us[1].Expires = true, &exp
	crashBeforeU001(t, h, mt, fs, us)
	if c := h.Accounts("app")["u001"]; !c.Suspended && c.Pending == "" {
		t.Fatalf("the cache says unsuspended although unsuspend was never sent: %+v", c)
	}
	h.Run(dsync.RunOptions{})
	if a, _ := mt.Get("u001"); a.Suspended {
		t.Fatal("the re-enabled user is left suspended")
	}
}

func TestRegression3CreateNotRecordedAhead(t *testing.T) {
	h, mt, fs := crashHarness(t)
	gated(mt, connector.ActForcePasswordChange)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	hire := synctest.User("u001b", "staff") // sorts after u000
	hire.MustChangePassword = true
	crashBeforeU001(t, h, mt, fs, append(us, hire))
	if c := h.Accounts("app")["u001b"]; c.Exists && c.Pending == "" {
		t.Fatalf("the cache says the new hire exists although create was never sent: %+v", c)
	}
	h.Run(dsync.RunOptions{})
	if _, ok := mt.Get("u001b"); !ok {
		t.Fatal("the new hire was never created")
	}
}

// --- 4. Write-only targets (Ezeelogin) ---

func TestRegression4WriteOnlyInterruptedUnsuspend(t *testing.T) {
	app := memtarget.New("ezeelogin")
	us := people(10)
	for _, u := range us {
		app.Seed(identity.Account{Key: u.Key, Username: u.Username, Email: u.Email})
	}
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(memtarget.NewWriteOnly(app), synctest.Common())}, synctest.Options{})
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	us[1].Active = false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if a, _ := app.Get("u001"); !a.Suspended {
		t.Fatal("u001 not suspended")
	}
	us[1].Active = true
	h.Source.Set(us...)
	app.After = func(act connector.Action, a identity.Account) error {
		if act == connector.ActUnsuspend {
			return connector.Uncertain(errors.New("read timeout after the request was sent"))
		}
		return nil
	}
	h.Run(dsync.RunOptions{}) // the unsuspend lands; its answer never comes back
	app.After = nil
	us[1].Active = false
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	if a, _ := app.Get("u001"); a.Suspended != true {
		t.Fatalf("calls for u001 = %v: disabled again, but the account is active", app.CallsFor("u001"))
	}
}

// --- 5. Person identity moves ---

func TestRegression5HigherPrecedenceSourceKeepsIdentity(t *testing.T) {
	app, ezee := memtarget.New("app"), memtarget.New("ezeelogin")
	alice := identity.User{Key: "ad-1", Username: "alice", Email: "alice@example.test", GivenName: "Alice",
		FamilyName: "Smith", Active: true, MustChangePassword: true, Groups: []string{"staff"}}
	ezee.Seed(identity.Account{Key: "alice", Username: "alice", Email: "alice@example.test"})
	h := synctest.New(t, []dsync.TargetSpec{
		synctest.Spec(app, synctest.Common()), synctest.Spec(memtarget.NewWriteOnly(ezee), synctest.Common()),
	}, synctest.Options{Sources: []string{"idp", "ad"}})
	others := people(20)
	h.Src("ad").Set(append(others, alice)...)
	h.Src("idp").Set(others[:10]...)
	h.Run(dsync.RunOptions{})
	if n := count(app, connector.ActForcePasswordChange, "ad-1"); n != 1 {
		t.Fatalf("force_password_change sent %d times, want 1", n)
	}
	app.Reset()
	ezee.Reset()
	pushed := alice
	pushed.Key, pushed.MustChangePassword = "okta-00u1", false // the IdP starts carrying her
	h.Src("idp").Set(append(others[:10], pushed)...)
	h.Run(dsync.RunOptions{})
	h.Src("idp").Set(others[:10]...) // and stops again
	h.Run(dsync.RunOptions{})
	if c := app.Calls(); len(c) != 0 {
		t.Fatalf("app received %+v: a precedence change re-keyed the person", c)
	}
	if c := ezee.Calls(); len(c) != 0 {
		t.Fatalf("ezeelogin received %+v: a precedence change re-keyed the person", c)
	}
	for _, tgt := range []string{"app", "ezeelogin"} {
		if c, ok := h.Accounts(tgt)["okta-00u1"]; ok {
			t.Fatalf("%s cache has a second record for the person: %+v", tgt, c)
		}
	}
}

func TestRegression5DuplicateEmailInOneSourceIsAConflict(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Roles = []config.RoleRule{{Group: "admins", Role: "admin"}}
		c.DefaultRole = "user"
	})
	regular := identity.User{Key: "k-regular", Username: "alice.smith", Email: "alice@example.test", Active: true, Groups: []string{"staff"}}
	admin := identity.User{Key: "k-admin", Username: "adm-asmith", Email: "alice@example.test", Active: true, Groups: []string{"staff", "admins"}}
	h.Source.Set(append(people(20), regular, admin)...)
	res := h.Run(dsync.RunOptions{})
	named := false
	for _, d := range h.DecisionsOf(res.RunID) {
		text := d.User + " " + d.Reason
		if d.Outcome == dsync.OutcomeSkipped && strings.Contains(text, "alice.smith") && strings.Contains(text, "adm-asmith") {
			named = true
		}
	}
	if !named {
		t.Fatalf("no skipped decision names both records: %+v", h.DecisionsOf(res.RunID))
	}
	for _, c := range mt.Calls() {
		if c.Account.Username == "alice.smith" && c.Account.Role == "admin" {
			t.Fatalf("the regular account got the admin account's role: %+v", c)
		}
	}
}

// --- 6. Standby replicas write shared state ---

func TestRegression6StandbyMergeDoesNotRevertLeader(t *testing.T) {
	ms := memstore.New(memstore.Options{JournalSize: 100000})
	mt := memtarget.New("app")
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(mt, synctest.Common())}, synctest.Options{Store: ms, Sources: []string{"idp"}})
	ctx := context.Background()
	lease, err := ms.AcquireLock(ctx, "leader", "replica-a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leader := h.NewEngine(func(o *dsync.Options) {
		o.Fence = lease.Fence
		o.Leading = func() bool { return true }
	})
	fs := synctest.NewFaultStore(ms)
	// The worst standby: it believes it leads (its lease ran out while it
	// was frozen), so only the store's fence can stop its write.
	standby := h.NewEngine(func(o *dsync.Options) {
		o.Store = fs
		o.Leading = func() bool { return true }
	})
	us := people(30)
	h.Source.Set(us...)
	if _, err := leader.Run(ctx, dsync.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	// While the standby folds in a push for u005, the leader receives the
	// disable of u001 and suspends them.
	leaver := us[1]
	leaver.Active = false
	fs.SetHook(func(op synctest.Op, _ string) error {
		if op != synctest.OpPutSnapshot {
			return nil
		}
		fs.SetHook(nil)
		keys, err := leader.MergeChange(ctx, "idp", source.Change{Upserts: []identity.User{leaver}})
		if err != nil {
			t.Errorf("leader merge: %v", err)
			return nil
		}
		if _, err := leader.Run(ctx, dsync.RunOptions{Keys: keys}); err != nil {
			t.Errorf("leader targeted run: %v", err)
		}
		return nil
	})
	renamed := us[5]
	renamed.GivenName = "Renamed"
	if _, err := standby.MergeChange(ctx, "idp", source.Change{Upserts: []identity.User{renamed}}); !errors.Is(err, dsync.ErrNotLeader) {
		t.Fatalf("standby merge: %v, want ErrNotLeader", err)
	}
	if a, _ := mt.Get("u001"); !a.Suspended {
		t.Fatal("the leader did not suspend u001")
	}
	if _, err := leader.Run(ctx, dsync.RunOptions{UseStored: true}); err != nil {
		t.Fatal(err)
	}
	if a, _ := mt.Get("u001"); !a.Suspended {
		t.Fatalf("calls for u001 = %v: a standby's write brought a leaver back", mt.CallsFor("u001"))
	}
}

// --- 7. The expiry timer ---

func TestRegression7TargetedRunArmsDue(t *testing.T) {
	h, _ := setup(t)
	us := people(30)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	exp := h.Clock.Now().Add(48 * time.Hour)
	u := us[1]
	u.Expires = &exp
	keys, err := h.Engine.MergeChange(context.Background(), "hr", source.Change{Upserts: []identity.User{u}})
	if err != nil {
		t.Fatal(err)
	}
	h.Run(dsync.RunOptions{Trigger: "change", Keys: keys})
	if at, keys := h.Engine.Due(); !at.Equal(exp) || !slices.Equal(keys, []string{"u001"}) {
		t.Fatalf("Due() = %v %v after a targeted run brought an expiry; want %v [u001]", at, keys, exp)
	}
}

func TestRegression7FailedSourceKeepsDue(t *testing.T) {
	a, b := memtarget.New("app-hr"), memtarget.New("app-idp")
	h := synctest.New(t, []dsync.TargetSpec{
		synctest.Spec(a, synctest.Common(func(c *config.TargetCommon) { c.Sources = []string{"hr"} })),
		synctest.Spec(b, synctest.Common(func(c *config.TargetCommon) { c.Sources = []string{"idp"} })),
	}, synctest.Options{Sources: []string{"hr", "idp"}})
	exp := h.Clock.Now().Add(48 * time.Hour)
	contractor := synctest.User("c001", "staff")
	contractor.Expires = &exp
	h.Src("hr").Set(people(10)...)
	h.Src("idp").Set(contractor)
	h.Run(dsync.RunOptions{})
	if at, _ := h.Engine.Due(); !at.Equal(exp) {
		t.Fatalf("Due() = %v, want %v", at, exp)
	}
	h.Src("idp").Fail(errors.New("idp: 503"))
	h.Run(dsync.RunOptions{})
	if at, keys := h.Engine.Due(); !at.Equal(exp) || !slices.Equal(keys, []string{"c001"}) {
		t.Fatalf("Due() = %v %v after idp failed one run; want %v [c001] from its stored snapshot", at, keys, exp)
	}
}

func TestRegression7HeldDeletionsDoNotKeepDueInPast(t *testing.T) {
	h, mt := setup(t, staffScope, func(c *config.TargetCommon) {
		c.Deprovision = config.Deprovision{Action: "suspend", DeleteAfter: config.Duration(30 * 24 * time.Hour)}
	})
	us := people(100)
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	for i := range 12 {
		us[i].Groups = nil
	}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{AllowMassChange: true})
	if n := count(mt, connector.ActSuspend, ""); n != 12 {
		t.Fatalf("%d suspended, want 12", n)
	}
	h.Clock.Advance(31 * 24 * time.Hour)
	res := h.Run(dsync.RunOptions{})
	if !res.Held {
		t.Fatal("12 deletions were not held")
	}
	if at, keys := h.Engine.Due(); !at.IsZero() && !at.After(h.Clock.Now()) {
		t.Fatalf("Due() = %v %v, in the past: held deletions re-arm the timer every tick", at, keys)
	}
}

// --- 8. Guard gaps ---

func TestRegression8MassGroupRemovalIsHeld(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) { c.Groups = []config.GroupRule{{Group: "vpn"}} })
	us := people(100)
	for i := range us {
		us[i].Groups = []string{"staff", "vpn"}
	}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()
	for i := range us {
		us[i].Groups = []string{"staff"} // vpn read as empty
	}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	if n := count(mt, connector.ActSetGroups, ""); n != 0 || !res.Held {
		t.Fatalf("%d set_groups calls, held=%v: stripping 100 of 100 users is not guarded", n, res.Held)
	}
}

func TestRegression8MassRoleDowngradeIsHeld(t *testing.T) {
	h, mt := setup(t, func(c *config.TargetCommon) {
		c.Roles = []config.RoleRule{{Group: "admins", Role: "admin"}}
		c.DefaultRole = "user"
	})
	us := people(100)
	for i := range us {
		us[i].Groups = []string{"staff", "admins"}
	}
	h.Source.Set(us...)
	h.Run(dsync.RunOptions{})
	mt.Reset()
	for i := range us {
		us[i].Groups = []string{"staff"} // admins read as empty
	}
	h.Source.Set(us...)
	res := h.Run(dsync.RunOptions{})
	if n := count(mt, connector.ActSetRole, ""); n != 0 || !res.Held {
		t.Fatalf("%d set_role calls, held=%v: downgrading 100 of 100 users is not guarded", n, res.Held)
	}
}

func TestRegression8AllowMassChangeAcceptsEmptySource(t *testing.T) {
	h, mt := setup(t)
	h.Source.Set(people(30)...)
	h.Run(dsync.RunOptions{})
	h.Source.Set()
	res, err := h.Engine.Run(context.Background(), dsync.RunOptions{AllowMassChange: true})
	if err != nil {
		t.Fatalf("--allow-mass-change did not accept a source that became empty: %v", err)
	}
	if n := count(mt, connector.ActSuspend, ""); n != 30 {
		t.Fatalf("%d suspended, want 30", n)
	}
	if !mentionsAcceptance(h.DecisionsOf(res.RunID)) {
		t.Fatalf("no decision says an operator accepted the empty source: %+v", h.DecisionsOf(res.RunID))
	}
}

func TestRegression8ApproveAcceptsEmptySource(t *testing.T) {
	h, mt := setup(t)
	h.Source.Set(people(30)...)
	h.Run(dsync.RunOptions{})
	h.Source.Set()
	res, err := h.Engine.Run(context.Background(), dsync.RunOptions{})
	if err == nil || count(mt, connector.ActSuspend, "") != 0 {
		t.Fatalf("an empty source was not refused: err=%v, calls %+v", err, mt.Calls())
	}
	// Approving accepts the empty read; the 30 suspensions it causes still
	// pass the guard (issue 19: an approval accepts what was reviewed,
	// nothing more), so they are held for their own approval.
	ar, err := h.Engine.Approve(context.Background(), dsync.ApproveRequest{RunID: res.RunID, By: "test-operator"})
	if err != nil || !ar.Held || count(mt, connector.ActSuspend, "") != 0 {
		t.Fatalf("approve of the refused run: err=%v held=%v suspended=%d", err, ar != nil && ar.Held, count(mt, connector.ActSuspend, ""))
	}
	if err := approve(h.Engine, ar.RunID); err != nil {
		t.Fatalf("approve of the held suspensions: %v", err)
	}
	if n := count(mt, connector.ActSuspend, ""); n != 30 {
		t.Fatalf("%d suspended after approval, want 30", n)
	}
}

// mentionsAcceptance reports whether a decision says an operator accepted
// a mass change.
func mentionsAcceptance(ds []state.Decision) bool {
	for _, d := range ds {
		if strings.Contains(strings.ToLower(d.Reason), "accept") {
			return true
		}
	}
	return false
}

func must[T any](v T, _ bool) T { return v }
