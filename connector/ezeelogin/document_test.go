package ezeelogin_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeelogin"
	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/identity"
)

// The document never shows how the gateway answers for a user it does
// not know: whatever the text, the error is not "not found" (which would
// make the engine forget the account), and the account is kept.
func TestUnknownUserTextsNeverForgetTheAccount(t *testing.T) {
	for _, text := range []string{"Invalid user", "User not found", "No such user: nobody", "Unknown user", "User does not exist", "Something else"} {
		g := newGW(t, ezeeloginfake.Options{Users: []string{"john"}, UnknownUserText: text})
		err := g.tg.Suspend(ctx(t), acct("nobody"))
		if k := connector.KindOf(err); k == connector.KindNotFound || k != connector.KindPermanent || !strings.Contains(err.Error(), text) {
			t.Fatalf("%q: kind %v: %v", text, k, err)
		}
	}
}

// set_user_expiry "will also make the user active if suspended": the
// re-suspension is part of the expiry step, and when it fails the error
// leaves the suspension unknown, so the engine sends it again.
func TestSetExpiryResuspensionFailureLeavesSuspensionUnknown(t *testing.T) {
	exp := time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC)
	g := newGW(t, ezeeloginfake.Options{Users: []string{"john"}, DisabledActions: []string{"suspend_user"}})
	if err := ezeeloginfake.Update(g.state, func(s *ezeeloginfake.State) error { s.Users["john"].Suspended = true; return nil }); err != nil {
		t.Fatal(err)
	}
	a := acct("john")
	a.Suspended, a.Expires = true, &exp
	err := g.tg.SetExpiry(ctx(t), a)
	if err == nil || !slices.Contains(connector.UnknownFields(err), identity.FieldSuspended) || !strings.Contains(err.Error(), "ACTIVE") {
		t.Fatalf("re-suspension failure: %v (unknown %v)", err, connector.UnknownFields(err))
	}
	if u := g.user(t, "john"); u.Suspended {
		t.Fatal("the fake should show what the document says: set_user_expiry made john active")
	}
	// Its answer lost (a hung gateway): it may have landed, and unsuspended.
	g = newGW(t, ezeeloginfake.Options{Users: []string{"john"}}, func(s *ezeelogin.Settings) { s.CallTimeout = config.Duration(300 * time.Millisecond) })
	if err := ezeeloginfake.SetFaults(g.state, ezeeloginfake.Faults{Delay: "5s", Only: "set_user_expiry"}); err != nil {
		t.Fatal(err)
	}
	err = g.tg.SetExpiry(ctx(t), a)
	if connector.KindOf(err) != connector.KindRetryable || !slices.Contains(connector.UnknownFields(err), identity.FieldSuspended) {
		t.Fatalf("lost answer: %v (unknown %v)", err, connector.UnknownFields(err))
	}
}

// A user suspended by hand in the gateway, whom dirsync has never
// suspended or unsuspended, gets an expiry in the directory: Ezeelogin
// cannot be read, so set_user_expiry (which would lift that suspension) is
// not sent, and the user stays suspended. first_contact: active sends it.
func TestHandSuspensionIsNotLiftedByAnExpiry(t *testing.T) {
	exp := time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC)
	g := newGW(t, ezeeloginfake.Options{Users: []string{"hank"}})
	if err := ezeeloginfake.Update(g.state, func(s *ezeeloginfake.State) error { s.Users["hank"].Suspended = true; return nil }); err != nil {
		t.Fatal(err)
	}
	a := acct("hank")
	a.Expires = &exp // first contact: the cache took hank as it found him
	err := g.tg.SetExpiry(ctx(t), a)
	if connector.KindOf(err) != connector.KindSkipped || !strings.Contains(err.Error(), "suspended by hand") {
		t.Fatalf("first contact: %v", err)
	}
	if u := g.user(t, "hank"); !u.Suspended || len(g.calls(t)) != 0 {
		t.Fatalf("hank %+v, calls %v", u, g.calls(t))
	}
	active := newGW(t, ezeeloginfake.Options{Users: []string{"ivy"}}, func(s *ezeelogin.Settings) { s.FirstContact = "active" })
	if err := active.tg.SetExpiry(ctx(t), &identity.Account{Username: "ivy", Expires: &exp}); err != nil {
		t.Fatal(err)
	}
	if u := active.user(t, "ivy"); u.Expiry != "2030-01-30 23:59:59" {
		t.Fatalf("ivy %+v", u)
	}
	// What dirsync set itself is known: the expiry goes out, and the
	// account is marked as known.
	b := acct("hank")
	if err := g.tg.Unsuspend(ctx(t), b); err != nil || b.Remote[ezeelogin.RemoteUsername] != "hank" {
		t.Fatalf("unsuspend: %v %v", err, b.Remote)
	}
	b.Expires = &exp
	if err := g.tg.SetExpiry(ctx(t), b); err != nil {
		t.Fatal(err)
	}
}

// Clearing an expiry is never held for an unknown suspension: only an
// expiry dirsync set itself (which left the user active) can be cleared,
// and a cache written before dirsync marked what it set has no mark.
func TestClearedExpiryIsSentWithoutTheMark(t *testing.T) {
	g := newGW(t, ezeeloginfake.Options{Users: []string{"kim"}})
	if err := g.tg.SetExpiry(ctx(t), acct("kim")); err != nil {
		t.Fatal(err)
	}
	if u := g.user(t, "kim"); u.Expiry != "2099-12-31 23:59:59" {
		t.Fatalf("kim %+v", u)
	}
}
