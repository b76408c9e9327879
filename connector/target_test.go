package connector_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

type bare struct{}

func (bare) Name() string { return "b" }
func (bare) Type() string { return "bare" }

// Do answers a permanent error, never a panic, for an action the connector
// does not implement.
func TestDoMismatchIsPermanent(t *testing.T) {
	for _, act := range append(connector.DefaultOrder, "nonsense") {
		a := identity.Account{Username: "jo"}
		err := connector.Do(context.Background(), bare{}, act, a, &a)
		if connector.KindOf(err) != connector.KindPermanent {
			t.Fatalf("%s: %v", act, err)
		}
	}
}

func TestProtected(t *testing.T) {
	p := connector.NewProtected("Break-Glass", " svc@example.test ")
	p.Add("owner", "it owns the token")
	for _, tc := range []struct {
		a    identity.Account
		want string
	}{
		{identity.Account{Username: "break-glass"}, "protected list"},
		{identity.Account{Username: "x", Email: "SVC@example.test"}, "protected list"},
		{identity.Account{Username: "x", Remote: map[string]string{"username": "owner"}}, "owns the token"},
		{identity.Account{Username: "jo", Email: "jo@example.test"}, ""},
	} {
		why := p.Reason(tc.a)
		if (tc.want == "") != (why == "") || !strings.Contains(why, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.a, why, tc.want)
		}
	}
	if err := p.Check(connector.ActSuspend, identity.Account{Username: "owner"}); connector.KindOf(err) != connector.KindSkipped {
		t.Fatalf("Check: %v", err)
	}
	var none *connector.Protected
	if none.Reason(identity.Account{Username: "owner"}) != "" {
		t.Fatal("a nil list protects nobody")
	}
}
