package ezeelogin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
)

// runAllowingFailures runs the engine once and returns the calls and the
// decisions, failed ones included.
func (sc *scenario) runAllowingFailures() ([]string, []state.Decision) {
	sc.t.Helper()
	if err := ezeeloginfake.ResetCalls(sc.g.state); err != nil {
		sc.t.Fatal(err)
	}
	res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
	return actions(sc.g.calls(sc.t)), sc.h.DecisionsOf(res.RunID)
}

// A suspended leaver's expiry moves while suspend_user fails
// (200 {"status":"error"}) for five runs: set_user_expiry makes the leaver
// active each time, and the suspension stays due; once the fault clears,
// the leaver is suspended in the gateway and in the cache.
func TestScenarioFailedResuspensionIsSentAgainUntilConfirmed(t *testing.T) {
	sc := newScenario(t, "7.41.0", "carol")
	sc.expect()
	sc.edit("carol", func(u *identity.User) { u.Active = false })
	sc.expect("suspend_user carol")
	setDisabled := func(actions ...string) {
		if err := ezeeloginfake.Update(sc.g.state, func(s *ezeeloginfake.State) error { s.DisabledActions = actions; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	setDisabled("suspend_user")
	exp := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		e := exp.AddDate(0, 0, i)
		sc.edit("carol", func(u *identity.User) { u.Expires = &e })
		calls, ds := sc.runAllowingFailures()
		if !strings.Contains(strings.Join(calls, "|"), "suspend_user carol") {
			t.Fatalf("run %d: no suspension sent: %q %+v", i, calls, ds)
		}
	}
	if a := sc.h.Accounts("gateway")["carol"]; !a.IsUnknown(identity.FieldSuspended) {
		t.Fatalf("cache %+v: the suspension must be unknown", a)
	}
	setDisabled()
	sc.runAllowingFailures()
	if u := sc.g.user(t, "carol"); !u.Suspended {
		t.Fatalf("carol active in the gateway after the fault cleared: %+v", u)
	}
	a := sc.h.Accounts("gateway")["carol"]
	if !a.Suspended || a.IsUnknown(identity.FieldSuspended) {
		t.Fatalf("cache %+v", a)
	}
	if calls, _ := sc.runAllowingFailures(); len(calls) > 2 {
		t.Fatalf("after convergence %q", calls)
	}
}

// A contractor's expiry passes (suspended), then the contract is
// extended by clearing the end date: Ezeelogin cannot clear an expiry, so
// the far date is sent — access comes back — and the decision says so.
func TestScenarioClearedExpiryGivesAccessBack(t *testing.T) {
	sc := newScenario(t, "7.41.0", "dan")
	sc.expect()
	sc.edit("dan", func(u *identity.User) { u.Active = false })
	sc.expect("suspend_user dan")
	sc.edit("dan", func(u *identity.User) { u.Active = true })
	sc.expect("unsuspend_user dan")
	exp := sc.h.Clock.Now().Add(24 * time.Hour)
	sc.edit("dan", func(u *identity.User) { u.Expires = &exp })
	sc.expect("set_user_expiry dan " + exp.Add(-time.Nanosecond).UTC().Format("2006-01-02"))
	sc.h.Clock.Set(exp.Add(time.Hour))
	sc.expect("suspend_user dan")
	sc.edit("dan", func(u *identity.User) { u.Expires = nil })
	ds := sc.expect("unsuspend_user dan", "set_user_expiry dan 2099-12-31")
	var reason string
	for _, d := range ds {
		if d.Action == "set_expiry" {
			reason = d.Reason
		}
	}
	if !strings.Contains(reason, "cannot clear an expiry: sent 2099-12-31") {
		t.Fatalf("set_expiry decision %q", reason)
	}
	if u := sc.g.user(t, "dan"); u.Suspended || u.Expiry != "2099-12-31 23:59:59" {
		t.Fatalf("dan %+v", u)
	}
	sc.expect()
}

// A user an administrator suspended by hand in the gateway is given an
// expiry in the directory: dirsync has never set that account's
// suspension, so set_user_expiry (which would lift it) is not sent, and
// the user stays suspended; when the expiry passes dirsync suspends.
func TestScenarioHandSuspendedUserGivenAnExpiryStaysSuspended(t *testing.T) {
	sc := newScenario(t, "7.41.0", "hank")
	sc.expect()
	if err := ezeeloginfake.Update(sc.g.state, func(s *ezeeloginfake.State) error { s.Users["hank"].Suspended = true; return nil }); err != nil {
		t.Fatal(err)
	}
	exp := sc.h.Clock.Now().Add(48 * time.Hour)
	sc.edit("hank", func(u *identity.User) { u.Expires = &exp })
	_, ds := sc.run()
	if len(ds) != 1 || ds[0].Outcome != "skipped" || !strings.Contains(ds[0].Reason, "suspended by hand") {
		t.Fatalf("decisions %+v", ds)
	}
	if u := sc.g.user(t, "hank"); !u.Suspended {
		t.Fatal("a suspension made by hand was lifted")
	}
	sc.h.Clock.Set(exp.Add(time.Hour))
	sc.expect("suspend_user hank")
	if u := sc.g.user(t, "hank"); !u.Suspended {
		t.Fatal("hank active")
	}
}
