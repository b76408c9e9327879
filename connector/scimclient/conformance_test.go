package scimclient

import (
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/scimclient/scimfake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
)

// TestConformance runs the shared suite against the fake provider in each
// of the provider shapes the connector adapts to.
func TestConformance(t *testing.T) {
	cases := []struct {
		name     string
		opts     scimfake.Options
		settings string
	}{
		{"patch", scimfake.Options{}, "role_attribute: roles"},
		{"put", scimfake.Options{NoPatch: true}, "role_attribute: roles"},
		{"patch-204-user-groups", scimfake.Options{PatchNoContent: true, UserGroups: true}, "role_attribute: roles"},
		{"no-member-filter-no-spc", scimfake.Options{NoMembersFilter: true, NoSPC: true, MaxResults: 1}, "role_attribute: roles\nmatch_by: externalId"},
		{"oauth2", scimfake.Options{ClientID: "dirsync", ClientSecret: "cs-1a2b3c4d5e"}, "role_attribute: roles"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var cur *scimfake.Server
			targettest.Run(t, targettest.Harness{
				New: func(t *testing.T) connector.Connector {
					f, srv := startFake(t, c.opts, nil)
					cur = f
					s := c.settings + "\nbase_url: " + srv.URL + f.Prefix()
					if c.opts.ClientID != "" {
						s += "\nauth:\n  oauth2:\n    token_url: " + srv.URL + "/oauth/token\n    client_id: dirsync\n    client_secret: " + c.opts.ClientSecret
					} else {
						s += "\nauth: {bearer_token: " + testToken + "}"
					}
					tg, err := build(t, s, connector.Deps{})
					if err != nil {
						t.Fatalf("Factory: %v", err)
					}
					return tg
				},
				Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
					return observeFake(cur, a.Username)
				},
				Secrets: []string{testToken, "cs-1a2b3c4d5e"},
				Groups:  []string{"Engineering", "Sales \"EU\""},
			})
		})
	}
}
