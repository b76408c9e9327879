package allthenticate_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/allthenticate"
	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
)

func TestHTTPOutcomes(t *testing.T) {
	targettest.RunHTTP(t, targettest.HTTPHarness{
		New: func(t *testing.T, deps connector.Deps) connector.Connector {
			srv, url := allthenticatefake.NewTestServer(t, allthenticatefake.Options{})
			srv.AddUser(allthenticatefake.User{Email: "jo@example.test", FirstName: "Jo", LastName: "Doe"})
			tg, err := allthenticate.New("allthenticate", allthenticate.Settings{BaseURL: url, APIKey: config.NewSecret(srv.APIKey())}, deps)
			if err != nil {
				t.Fatal(err)
			}
			return tg
		},
		Idempotent: targettest.ListOp(targettest.Is(http.MethodGet, "/multipleusers")),
		NonIdempotent: targettest.HTTPOp{Name: "toggle suspension",
			Call: func(ctx context.Context, tg connector.Connector) error {
				return tg.(connector.Suspender).Suspend(ctx, &identity.Account{Key: "k1", Email: "jo@example.test"})
			},
			Match: targettest.Is(http.MethodPost, "/togglesuspension")},
	})
}
