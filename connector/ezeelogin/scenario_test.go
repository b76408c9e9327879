package ezeelogin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/ezeelogin"
	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// scenario is the engine driving the connector against the fake CLI.
type scenario struct {
	t     *testing.T
	g     *gw
	h     *synctest.Harness
	users map[string]identity.User
	logs  interface{ String() string } // the engine's decision lines
}

func newScenario(t *testing.T, version string, names ...string) *scenario {
	t.Helper()
	g := newGW(t, ezeeloginfake.Options{Version: version, Users: names}, func(s *ezeelogin.Settings) { s.Version = version })
	logger, logs := debugLogger()
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(g.tg, synctest.Common())}, synctest.Options{Logger: logger,
		// Small populations: the mass-change guard is not under test here.
		Limits: &config.Limits{MaxSourceShrinkPercent: 20, QuarantineAfter: 5}})
	sc := &scenario{t: t, g: g, h: h, users: map[string]identity.User{}, logs: logs}
	for _, n := range names {
		sc.users[n] = synctest.User(n)
	}
	sc.push()
	return sc
}

func (sc *scenario) push() {
	var us []identity.User
	for _, n := range sortedKeys(sc.users) {
		us = append(us, sc.users[n])
	}
	sc.h.Source.Set(us...)
}

func sortedKeys(m map[string]identity.User) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func (sc *scenario) edit(name string, f func(*identity.User)) {
	u := sc.users[name]
	f(&u)
	sc.users[name] = u
	sc.push()
}

// run runs the engine once and returns the calls the fake received.
func (sc *scenario) run() ([]string, []state.Decision) {
	sc.t.Helper()
	if err := ezeeloginfake.ResetCalls(sc.g.state); err != nil {
		sc.t.Fatal(err)
	}
	res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
	ds := sc.h.DecisionsOf(res.RunID)
	for _, d := range ds {
		if d.Outcome == "failed" {
			sc.t.Fatalf("failed decision: %+v", d)
		}
	}
	return actions(sc.g.calls(sc.t)), ds
}

func (sc *scenario) expect(want ...string) []state.Decision {
	sc.t.Helper()
	got, ds := sc.run()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		sc.t.Fatalf("calls %q, want %q\ndecisions: %+v", got, want, ds)
	}
	return ds
}

func TestScenarioSuspendUnsuspendNoop(t *testing.T) {
	sc := newScenario(t, "7.41.0", "alice", "bob")
	sc.expect() // everyone active: nothing to send
	sc.edit("bob", func(u *identity.User) {
		u.Active = false
		u.Facts = map[string]string{identity.FactActive: "userAccountControl ACCOUNTDISABLE set"}
	})
	ds := sc.expect("suspend_user bob")
	if len(ds) != 1 || ds[0].Action != "suspend" || ds[0].Outcome != "applied" || !strings.Contains(ds[0].Reason, "ACCOUNTDISABLE") {
		t.Fatalf("decisions %+v", ds)
	}
	if !sc.g.user(t, "bob").Suspended {
		t.Fatal("bob is not suspended in the gateway")
	}
	sc.expect() // no-op second run: zero calls
	sc.edit("bob", func(u *identity.User) { u.Active = true })
	sc.expect("unsuspend_user bob")
	sc.expect()
}

// An expiry and a disable together: set_user_expiry first, then
// suspend_user (set_user_expiry would undo a suspension sent before it).
// carol's suspension was set by dirsync before (a disable and a return),
// so her expiry can be sent at first sight.
func TestScenarioExpiryThenSuspend(t *testing.T) {
	sc := newScenario(t, "7.41.0", "carol", "dan")
	sc.expect()
	sc.edit("carol", func(u *identity.User) { u.Active = false })
	sc.expect("suspend_user carol")
	sc.edit("carol", func(u *identity.User) { u.Active = true })
	sc.expect("unsuspend_user carol")
	exp := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	sc.edit("carol", func(u *identity.User) { u.Expires, u.Active = &exp, false })
	sc.expect("set_user_expiry carol 2027-01-31", "suspend_user carol")
	if u := sc.g.user(t, "carol"); !u.Suspended || u.Expiry != "2027-01-31 23:59:59" {
		t.Fatalf("carol: %+v", u)
	}
	// The expiry moves while carol stays disabled: the connector suspends
	// again after set_user_expiry.
	later := exp.AddDate(0, 1, 0)
	sc.edit("carol", func(u *identity.User) { u.Expires = &later })
	sc.expect("set_user_expiry carol 2027-02-28", "suspend_user carol")
	if u := sc.g.user(t, "carol"); !u.Suspended {
		t.Fatalf("carol was left active: %+v", u)
	}
	sc.expect()
	// An expiry for an active user dirsync has never suspended or
	// unsuspended: whether an administrator suspended dan by hand cannot be
	// read, so set_user_expiry (which would lift that) is not sent.
	sc.edit("dan", func(u *identity.User) { u.Expires = &later })
	if _, ds := sc.run(); len(ds) != 1 || ds[0].Outcome != "skipped" || !strings.Contains(ds[0].Reason, "suspended by hand") {
		t.Fatalf("decisions %+v", ds)
	}
	// Once dirsync has set dan's suspension (a disable: the expiry waits
	// one run, then goes out with the re-suspension; and a return), the
	// state is known.
	sc.edit("dan", func(u *identity.User) { u.Active = false })
	sc.expect("suspend_user dan")
	sc.expect("set_user_expiry dan 2027-02-28", "suspend_user dan")
	sc.edit("dan", func(u *identity.User) { u.Active = true })
	sc.expect("unsuspend_user dan")
	if u := sc.g.user(t, "dan"); u.Suspended {
		t.Fatal("dan suspended")
	}
	// The expiry passes: the engine suspends dan.
	sc.h.Clock.Set(later.Add(time.Hour))
	sc.expect("suspend_user dan")
}

// pwdLastSet=0: exactly one force_user_password_change across three runs.
func TestScenarioForcePasswordChangeOnce(t *testing.T) {
	sc := newScenario(t, "7.41.0", "erin")
	sc.expect()
	sc.edit("erin", func(u *identity.User) {
		u.MustChangePassword = true
		u.Facts = map[string]string{identity.FactMustChangePassword: "pwdLastSet=0"}
	})
	total := 0
	for range 3 {
		got, _ := sc.run()
		total += len(got)
		for _, c := range got {
			if c != "force_user_password_change erin" {
				t.Fatalf("unexpected call %q", c)
			}
		}
	}
	if total != 1 {
		t.Fatalf("%d force_user_password_change calls over three runs, want 1", total)
	}
	// The user changes the password, then must change it again: a new event.
	sc.edit("erin", func(u *identity.User) { u.MustChangePassword = false })
	sc.expect()
	sc.edit("erin", func(u *identity.User) { u.MustChangePassword = true })
	sc.expect("force_user_password_change erin")
}

// On an old gateway, gated actions become skipped decisions, once.
func TestScenarioVersionGateSkips(t *testing.T) {
	sc := newScenario(t, "7.31.0", "finn")
	sc.expect()
	exp := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	sc.edit("finn", func(u *identity.User) { u.Expires, u.MustChangePassword = &exp, true })
	ds := sc.expect()
	skipped := map[string]bool{}
	for _, d := range ds {
		if d.Outcome == "skipped" {
			skipped[d.Action] = true
			if !strings.Contains(d.Reason, "needs Ezeelogin") {
				t.Fatalf("skip reason %q", d.Reason)
			}
		}
	}
	if !skipped["set_expiry"] || !skipped["force_password_change"] {
		t.Fatalf("decisions %+v", ds)
	}
	_, ds = sc.run()
	for _, d := range ds {
		if d.Outcome == "skipped" {
			t.Fatalf("skip logged again: %+v", d)
		}
	}
}

// Failures reach decisions and logs with the secret scrubbed.
func TestScenarioSecretNeverInDecisions(t *testing.T) {
	sc := newScenario(t, "7.41.0", "gwen", "hugo")
	sc.expect()
	if err := ezeeloginfake.SetFaults(sc.g.state, ezeeloginfake.Faults{EchoArgs: true}); err != nil {
		t.Fatal(err)
	}
	sc.edit("gwen", func(u *identity.User) { u.Active = false })
	res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
	var failed []state.Decision
	for _, d := range sc.h.DecisionsOf(res.RunID) {
		if d.Outcome == "failed" {
			failed = append(failed, d)
		}
	}
	if len(failed) == 0 || !strings.Contains(failed[0].Error, "exit status 255") {
		t.Fatalf("decisions %+v", sc.h.DecisionsOf(res.RunID))
	}
	texts := []string{sc.logs.String(), sc.g.logs.String()}
	for _, d := range sc.h.Decisions() {
		texts = append(texts, d.Error, d.Reason)
	}
	if !strings.Contains(sc.logs.String(), "gwen") {
		t.Fatal("no decision lines were logged")
	}
	assertNoSecret(t, texts...)
}
