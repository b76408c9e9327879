package allthenticate_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/allthenticate"
	"github.com/dirsync/dirsync/target/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/target/targettest"
)

func TestHTTPOutcomes(t *testing.T) {
	targettest.RunHTTP(t, targettest.HTTPHarness{
		New: func(t *testing.T, deps target.Deps) target.Target {
			srv, url := allthenticatefake.NewTestServer(t, allthenticatefake.Options{})
			srv.AddUser(allthenticatefake.User{Email: "jo@example.test", FirstName: "Jo", LastName: "Doe"})
			tg, err := allthenticate.New("allthenticate", allthenticate.Settings{BaseURL: url, APIKey: config.NewSecret(srv.APIKey())}, deps)
			if err != nil {
				t.Fatal(err)
			}
			return tg
		},
		Idempotent: targettest.HTTPOp{Name: "list",
			Call: func(ctx context.Context, tg target.Target) error {
				_, err := tg.(target.Lister).List(ctx)
				return err
			},
			Match: func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Path == "/multipleusers" }},
		NonIdempotent: targettest.HTTPOp{Name: "toggle suspension",
			Call: func(ctx context.Context, tg target.Target) error {
				return tg.(target.Suspender).Suspend(ctx, &identity.Account{Key: "k1", Email: "jo@example.test"})
			},
			Match: func(r *http.Request) bool { return r.Method == http.MethodPost && r.URL.Path == "/togglesuspension" }},
	})
}
