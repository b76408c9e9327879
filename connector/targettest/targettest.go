// Package targettest is the conformance suite every connector passes: it
// drives a connector against its fake through the target interfaces and
// checks, through the fake (not the connector), that each action landed.
package targettest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

// Harness connects the suite to one connector and its fake.
type Harness struct {
	// New returns a connector wired to a fresh, empty fake.
	New func(t *testing.T) connector.Connector
	// Seed makes an account exist in the fake (for connectors that cannot
	// create) and returns it as the cache would hold it (Remote ids filled).
	// Optional when the connector is a Creator.
	Seed func(t *testing.T, a identity.Account) identity.Account
	// Observe reads the fake's view of an account directly; ok is false when
	// the account does not exist there. Fields the application does not keep
	// may be left empty, except Suspended, Role and Groups when supported.
	Observe func(t *testing.T, a identity.Account) (identity.Account, bool)
	// Secrets are configured credential values that must never appear in an
	// error message.
	Secrets []string
	// Roles are two valid roles for RoleSetter connectors (default "admin", "user").
	Roles [2]string
	// Groups are valid application group names for GroupSetter connectors.
	Groups []string
	// Account is a template account valid for the application; the suite
	// sets Key and fills names if empty.
	Account identity.Account
}

func (h Harness) account(key string) identity.Account {
	a := h.Account.Clone()
	a.Key = key
	if a.Username == "" {
		a.Username = "user-" + key
	}
	if a.Email == "" {
		a.Email = "user-" + key + "@example.test"
	}
	if a.GivenName == "" {
		a.GivenName = "Given"
	}
	if a.FamilyName == "" {
		a.FamilyName = "Family"
	}
	return a
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Roles == [2]string{} {
		h.Roles = [2]string{"admin", "user"}
	}
	t.Run("Identity", func(t *testing.T) {
		tg := h.New(t)
		if tg.Name() == "" || tg.Type() == "" {
			t.Fatalf("Name() %q and Type() %q must be set", tg.Name(), tg.Type())
		}
		if len(connector.Capabilities(tg)) == 0 {
			t.Fatal("the connector supports no action")
		}
	})
	t.Run("Lifecycle", func(t *testing.T) { lifecycle(t, h) })
	t.Run("MissingAccount", func(t *testing.T) { missing(t, h) })
	t.Run("CancelledContext", func(t *testing.T) { cancelled(t, h) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// exist makes a usable account through Create or Seed.
func exist(t *testing.T, h Harness, tg connector.Connector, a identity.Account) identity.Account {
	t.Helper()
	if c, ok := tg.(connector.Creator); ok && h.Seed == nil {
		if err := c.Create(ctxT(t), &a); err != nil {
			t.Fatalf("Create: %v", err)
		}
		a.Exists = true
		return a
	}
	if h.Seed == nil {
		t.Fatal("Harness.Seed is required for a connector that cannot create")
	}
	return h.Seed(t, a)
}

func checkNoSecret(t *testing.T, h Harness, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range h.Secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error message leaks a configured secret: %v", err)
		}
	}
}

func lifecycle(t *testing.T, h Harness) {
	tg := h.New(t)
	ctx := ctxT(t)
	a := h.account("conf-1")
	if c, ok := tg.(connector.Creator); ok {
		if err := c.Create(ctx, &a); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if _, ok := h.Observe(t, a); !ok {
			t.Fatal("after Create the fake has no such account")
		}
		a.Exists = true
	} else {
		a = exist(t, h, tg, a)
	}
	before := a.Clone()
	if u, ok := tg.(connector.Updater); ok {
		a.GivenName, a.DisplayName = "Changed", "Changed Family"
		if err := u.Update(ctx, before, &a); err != nil {
			t.Fatalf("Update: %v", err)
		}
		before = a.Clone()
	}
	if s, ok := tg.(connector.Suspender); ok {
		if err := s.Suspend(ctx, &a); err != nil {
			t.Fatalf("Suspend: %v", err)
		}
		a.Suspended = true
		if got, ok := h.Observe(t, a); !ok || !got.Suspended {
			t.Fatalf("after Suspend the fake shows %+v (exists %v), want suspended", got, ok)
		}
		if err := s.Unsuspend(ctx, &a); err != nil {
			t.Fatalf("Unsuspend: %v", err)
		}
		a.Suspended = false
		if got, ok := h.Observe(t, a); !ok || got.Suspended {
			t.Fatalf("after Unsuspend the fake shows %+v, want active", got)
		}
		before = a.Clone()
	}
	if r, ok := tg.(connector.RoleSetter); ok {
		for _, role := range h.Roles {
			a.Role = role
			if err := r.SetRole(ctx, &a); err != nil {
				t.Fatalf("SetRole(%q): %v", role, err)
			}
			if got, _ := h.Observe(t, a); !strings.EqualFold(got.Role, role) {
				t.Fatalf("after SetRole(%q) the fake shows role %q", role, got.Role)
			}
		}
		before = a.Clone()
	}
	if g, ok := tg.(connector.GroupSetter); ok && len(h.Groups) > 0 {
		a.Groups = slices.Clone(h.Groups)
		if err := g.SetGroups(ctx, before, &a); err != nil {
			t.Fatalf("SetGroups(%v): %v", h.Groups, err)
		}
		if got, _ := h.Observe(t, a); !sameSet(got.Groups, h.Groups) {
			t.Fatalf("after SetGroups(%v) the fake shows %v", h.Groups, got.Groups)
		}
		before = a.Clone()
		a.Groups = h.Groups[:len(h.Groups)-1]
		if err := g.SetGroups(ctx, before, &a); err != nil {
			t.Fatalf("SetGroups(%v): %v", a.Groups, err)
		}
		if got, _ := h.Observe(t, a); !sameSet(got.Groups, a.Groups) {
			t.Fatalf("after SetGroups(%v) the fake shows %v", a.Groups, got.Groups)
		}
	}
	if l, ok := tg.(connector.Lister); ok {
		list, err := l.List(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		found := false
		for _, x := range list {
			if strings.EqualFold(x.Email, a.Email) || x.Username == a.Username {
				found = true
			}
		}
		if !found {
			t.Fatalf("List does not include %q: %+v", a.Username, list)
		}
	}
	if d, ok := tg.(connector.Deleter); ok {
		if err := d.Delete(ctx, &a); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, ok := h.Observe(t, a); ok {
			t.Fatal("after Delete the fake still has the account")
		}
	}
}

// missing checks that acting on an account the application does not have
// fails as NotFound or Skipped (not as a retryable error the engine would
// keep retrying), and that no secret leaks into the error.
func missing(t *testing.T, h Harness) {
	tg := h.New(t)
	ctx := ctxT(t)
	a := h.account("absent")
	a.Exists = true
	a.Remote = map[string]string{}
	var err error
	switch {
	case connector.Supports(tg, connector.ActSuspend):
		err = tg.(connector.Suspender).Suspend(ctx, &a)
	case connector.Supports(tg, connector.ActDelete):
		err = tg.(connector.Deleter).Delete(ctx, &a)
	default:
		t.Skip("no suspend or delete to try")
	}
	checkNoSecret(t, h, err)
	if err == nil {
		return // some applications (Ezeelogin) cannot tell; accepted
	}
	if k := connector.KindOf(err); k != connector.KindNotFound && k != connector.KindSkipped && k != connector.KindPermanent {
		t.Fatalf("acting on a missing account: kind %v (%v), want not_found, skipped or permanent", k, err)
	}
}

func cancelled(t *testing.T, h Harness) {
	tg := h.New(t)
	a := exist(t, h, tg, h.account("cancel"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var err error
	switch {
	case connector.Supports(tg, connector.ActSuspend):
		err = tg.(connector.Suspender).Suspend(ctx, &a)
	case connector.Supports(tg, connector.ActSetRole):
		a.Role = h.Roles[0]
		err = tg.(connector.RoleSetter).SetRole(ctx, &a)
	default:
		t.Skip("no suspend or role to try")
	}
	if err == nil {
		t.Fatal("an action with a cancelled context succeeded")
	}
	checkNoSecret(t, h, err)
	if k := connector.KindOf(err); k == connector.KindPermanent {
		t.Fatalf("a cancelled context is not a permanent failure: %v", err)
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(identity.SortedSet(a), identity.SortedSet(b))
}
