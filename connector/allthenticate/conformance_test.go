package allthenticate_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/allthenticate"
	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
)

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	envs := map[*testing.T]*env{}
	get := func(t *testing.T) *env {
		mu.Lock()
		defer mu.Unlock()
		return envs[t]
	}
	targettest.Run(t, targettest.Harness{
		New: func(t *testing.T) connector.Connector {
			e := newEnv(t, allthenticatefake.Options{})
			// Allthenticate cannot create users: the suite's Create finds
			// its account as a guest and promotes it.
			e.srv.AddUser(allthenticatefake.User{Email: "user-conf-1@example.test", Tag: allthenticatefake.TagGuest})
			mu.Lock()
			envs[t] = e
			mu.Unlock()
			return e.tg
		},
		Seed: func(t *testing.T, a identity.Account) identity.Account {
			e := get(t)
			id := e.srv.AddUser(allthenticatefake.User{Email: a.Email, FirstName: a.GivenName, LastName: a.FamilyName})
			u, _ := e.srv.User(id)
			a.Exists = true
			a.Remote = map[string]string{allthenticate.RemoteEmailID: strconv.Itoa(u.EmailID), allthenticate.RemoteUserID: strconv.Itoa(u.UserID)}
			return a
		},
		Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
			u, ok := get(t).srv.UserByEmail(a.Email)
			if !ok || u.Tag != allthenticatefake.TagUser {
				return identity.Account{}, false
			}
			return identity.Account{Email: u.Email, Username: u.Username, GivenName: u.FirstName, FamilyName: u.LastName,
				Suspended: u.Suspended, Role: u.Rank}, true
		},
		Secrets: []string{allthenticatefake.New(allthenticatefake.Options{}).APIKey()},
		Roles:   [2]string{"ADMIN", "REGULAR"},
	})
}
