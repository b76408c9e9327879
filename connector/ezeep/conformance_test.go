package ezeep_test

import (
	"sync"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeep"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
)

// observe is the fake's view of an account: a user with role user and no
// group is what Suspend leaves (ezeep has no suspension).
func observe(e *env, a identity.Account) (identity.Account, bool) {
	u, ok := e.srv.UserByEmail(a.Email)
	if !ok {
		return identity.Account{}, false
	}
	return identity.Account{Email: u.Email, GivenName: u.FirstName, FamilyName: u.LastName, DisplayName: u.DisplayName(),
		Role: u.Role, Groups: e.srv.GroupNames(u.Groups), Suspended: u.Role == ezeepfake.RoleUser && len(u.Groups) == 0}, true
}

func TestConformance(t *testing.T) {
	for _, mode := range []string{"suspend", "delete"} {
		t.Run(mode, func(t *testing.T) {
			var mu sync.Mutex
			envs := map[*testing.T]*env{}
			targettest.Run(t, targettest.Harness{
				New: func(t *testing.T) connector.Connector {
					// An admin's credentials (the admin is a user too), and an
					// invitee who accepts at once: the suite suspends and
					// unsuspends a user (a pending invitee's suspension
					// withdraws the invitation: see ezeep_test).
					e := newEnv(t, ezeepfake.Options{Owner: "owner@example.test", AcceptInvitations: true}, ezeep.Common{Deprovision: mode, RuleGroups: []string{"staff", "color"}})
					mu.Lock()
					envs[t] = e
					mu.Unlock()
					return e.tg
				},
				Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
					mu.Lock()
					e := envs[t]
					mu.Unlock()
					return observe(e, a)
				},
				Secrets: []string{ezeepfake.New(ezeepfake.Options{}).ClientSecret()},
				Roles:   [2]string{"admin", "user"},
				Groups:  []string{"staff", "color"},
				// Suspend strips groups and the admin role: give the account
				// both, so Unsuspend has something to restore.
				Account: identity.Account{Role: "admin", Groups: []string{"staff"}},
			})
			if t.Failed() {
				return
			}
			tg := newEnv(t, ezeepfake.Options{}, ezeep.Common{Deprovision: mode}).tg
			_, can := tg.(connector.Suspender)
			if can != (mode != "delete") {
				t.Fatalf("deprovision %s: Suspender %v", mode, can)
			}
		})
	}
}
