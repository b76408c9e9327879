package ezeep_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeep"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// A pending invitee who is disabled with a new end date in the same run:
// PATCH /v1/userinvitations/<id>/ (the document's "resend") is never
// sent; the invitation is withdrawn (the unverified user deleted), and no
// open invitation is left that the leaver could accept. Back in scope,
// they are invited again.
func TestScenarioEzeepPendingInviteeIsWithdrawnNeverReinvited(t *testing.T) {
	sc := newEZScenario(t, ezeepfake.Options{}, "suspend", "")
	sc.set(synctest.User("pia", "print-users", "staff"))
	sc.run()
	if invs := sc.srv.Invitations("pia@example.test"); len(invs) != 1 {
		t.Fatalf("invitations %+v", invs)
	}
	end := sc.h.Clock.Now().Add(60 * 24 * time.Hour)
	sc.edit("pia", func(u *identity.User) { u.Active, u.Expires = false, &end })
	calls, ds := sc.run()
	for _, c := range calls {
		if strings.HasPrefix(c.Path, "/v1/userinvitations/") && c.Method != http.MethodGet {
			t.Fatalf("the invitation was re-sent while deprovisioning: %+v", c)
		}
	}
	if _, ok := sc.srv.UserByEmail("pia@example.test"); ok {
		t.Fatal("the pending invitee is still there")
	}
	for _, inv := range sc.srv.Invitations("pia@example.test") {
		if !inv.Accepted && inv.ExpireDate.After(sc.h.Clock.Now()) {
			t.Fatalf("an open invitation is left: %+v", inv)
		}
	}
	if d := decisionsOf(ds, "suspend"); len(d) != 1 || !strings.Contains(d[0].Reason, "withdrawn") {
		t.Fatalf("decisions %+v", ds)
	}
	// Back: invited again (the withdrawn account is found gone).
	sc.edit("pia", func(u *identity.User) { u.Active, u.Expires = true, nil })
	for range 3 {
		sc.h.Run(dsync.RunOptions{Trigger: "test"})
	}
	if _, ok := sc.srv.UserByEmail("pia@example.test"); !ok {
		t.Fatalf("pia was not invited again: %+v", sc.h.Decisions())
	}
}

// Where deleting the pending invitee leaves the invitation open (the
// document does not say what it does), the suspension fails loudly.
func TestEzeepWithdrawalLeavingAnOpenInvitationFails(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{KeepInvitationsOnDelete: true}, ezeep.Common{})
	ctx := ctxT(t)
	a := identity.Account{Email: "quin@example.test"}
	if err := e.core.Create(ctx, &a); err != nil {
		t.Fatal(err)
	}
	err := e.tg.(connector.Suspender).Suspend(ctx, &a)
	if connector.KindOf(err) != connector.KindPermanent || !strings.Contains(err.Error(), "still open") {
		t.Fatalf("suspend: %v", err)
	}
}

// The suspension stand-in turns every printing feature off (with the
// groups and the admin role); unsuspending turns printing_features back on.
func TestEzeepSuspendTurnsPrintingOff(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{RuleGroups: []string{"staff"}})
	ctx := ctxT(t)
	id := e.srv.AddUser(ezeepfake.User{Email: "rae@example.test", IsVerified: true, Role: ezeepfake.RoleAdmin, Groups: []string{e.groups["staff"]},
		SelfServiceEnabled: true, MyPrintersEnabled: true, LocalPrintingEnabled: true, PullPrintingEnabled: true})
	a := identity.Account{Email: "rae@example.test", Role: "admin", Groups: []string{"staff"}, Remote: map[string]string{ezeep.RemoteUUID: id}}
	nctx, notes := connector.WithNotes(ctx)
	if err := e.tg.(connector.Suspender).Suspend(nctx, &a); err != nil {
		t.Fatal(err)
	}
	u, _ := e.srv.User(id)
	if u.Role != "user" || len(u.Groups) != 0 || u.SelfServiceEnabled || u.MyPrintersEnabled || u.LocalPrintingEnabled || u.PullPrintingEnabled {
		t.Fatalf("after suspend %+v", u)
	}
	if !strings.Contains(notes.String(), "pull_printing_enabled turned off") {
		t.Fatalf("notes %q", notes)
	}
	if err := e.tg.(connector.Suspender).Unsuspend(ctx, &a); err != nil {
		t.Fatal(err)
	}
	u, _ = e.srv.User(id)
	if u.Role != "admin" || !u.SelfServiceEnabled || !u.MyPrintersEnabled || u.LocalPrintingEnabled || !slices.Equal(u.Groups, []string{e.groups["staff"]}) {
		t.Fatalf("after unsuspend %+v", u)
	}
}

// A user the printing API does not know (404): the role demotion is done
// all the same, and the suspension succeeds.
func TestEzeepPrinting404DoesNotSkipTheRoleDemotion(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{})
	id := e.srv.AddUser(ezeepfake.User{Email: "sol@example.test", IsVerified: true, Role: ezeepfake.RoleAdmin, NoPrinting: true})
	a := identity.Account{Email: "sol@example.test", Role: "admin", Remote: map[string]string{ezeep.RemoteUUID: id}}
	if err := e.tg.(connector.Suspender).Suspend(ctxT(t), &a); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.srv.User(id); u.Role != "user" {
		t.Fatalf("role %q after a suspension whose printing PATCH was 404", u.Role)
	}
}

// A group an administrator added by hand, after dirsync last saw the
// user's groups, survives the next group change (the group PATCH
// replaces the whole list; the list is read first by default).
func TestScenarioEzeepGroupChangeKeepsHandAddedGroups(t *testing.T) {
	sc := newEZScenario(t, ezeepfake.Options{Owner: "owner@example.test"}, "suspend", "")
	id := sc.srv.AddUser(ezeepfake.User{Email: "tam@example.test", FirstName: "Given", LastName: "tam", IsVerified: true, Groups: []string{sc.groups["staff"]}})
	sc.set(synctest.User("tam", "print-users", "staff"))
	sc.run() // adopted, the list known
	hand := sc.srv.AddGroup("hand-made")
	sc.srv.Edit(id, "added to hand-made", func(u *ezeepfake.User) { u.Groups = append(u.Groups, hand) })
	sc.edit("tam", func(u *identity.User) { u.Groups = []string{"print-users", "staff", "design"} })
	sc.run()
	if u, _ := sc.srv.User(id); !slices.Contains(u.Groups, hand) || !slices.Contains(u.Groups, sc.groups["color"]) {
		t.Fatalf("tam's groups %v", sc.srv.GroupNames(u.Groups))
	}
}

// An ordinary user's credential "will only get his own information" (200):
// the connector recognises it and refuses to reconcile or adopt, rather
// than take every other account as gone.
func TestEzeepOrdinaryCredentialIsRefused(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{Ordinary: "me@example.test"}, ezeep.Common{})
	e.srv.AddUser(ezeepfake.User{Email: "other@example.test", IsVerified: true})
	ctx := ctxT(t)
	_, err := e.core.List(ctx)
	if connector.KindOf(err) != connector.KindPermanent || !strings.Contains(err.Error(), "not an organisation admin's") {
		t.Fatalf("list: %v", err)
	}
	// A look-up that does not find its user is not "not found" either.
	_, err = e.core.Read(ctx, identity.Account{Email: "other@example.test"})
	if connector.KindOf(err) == connector.KindNotFound || !strings.Contains(err.Error(), "not an organisation admin's") {
		t.Fatalf("read: %v", err)
	}
	// An admin's credential, in an organisation of one admin, is fine.
	ok := newEnv(t, ezeepfake.Options{Owner: "boss@example.test"}, ezeep.Common{})
	if list, err := ok.core.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("admin list %+v %v", list, err)
	}
	// In a run: the target fails as a whole, nothing is touched.
	sc := newEZScenario(t, ezeepfake.Options{Ordinary: "me@example.test"}, "suspend", "")
	sc.srv.AddUser(ezeepfake.User{Email: "uma@example.test", IsVerified: true})
	sc.set(synctest.User("uma", "print-users", "staff"))
	res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	var failed bool
	for _, d := range sc.h.DecisionsOf(res.RunID) {
		failed = failed || (d.Outcome == "failed" && strings.Contains(d.Error, "not an organisation admin's"))
		if d.Outcome == "applied" {
			t.Fatalf("applied with an ordinary credential: %+v", d)
		}
	}
	if !failed {
		t.Fatalf("decisions %+v", sc.h.DecisionsOf(res.RunID))
	}
}

// Users with the same printing groups carry the same cached group list in
// Account.Remote: a reconcile matches them by uuid only, so nobody is taken
// for another (no "missing" account, no drift, across many reconciles).
func TestScenarioEzeepReconcileMatchesByUUIDOnly(t *testing.T) {
	sc := newEZScenario(t, ezeepfake.Options{Owner: "owner@example.test"}, "suspend", "")
	var us []identity.User
	for _, n := range []string{"ann", "bea", "cat", "dov"} {
		sc.srv.AddUser(ezeepfake.User{Email: n + "@example.test", FirstName: "Given", LastName: n, IsVerified: true, Groups: []string{sc.groups["staff"]}})
		us = append(us, synctest.User(n, "print-users", "staff"))
	}
	sc.set(us...)
	sc.run()
	for range 10 {
		res := sc.h.Run(dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
		for _, d := range sc.h.DecisionsOf(res.RunID) {
			if d.Action == "missing" || (d.Action == "drift" && d.User != "owner@example.test") {
				t.Fatalf("a user was taken for another: %+v", d)
			}
		}
	}
}
