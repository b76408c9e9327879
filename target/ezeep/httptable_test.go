package ezeep_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/ezeep"
	"github.com/dirsync/dirsync/target/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/target/targettest"
)

func TestHTTPOutcomes(t *testing.T) {
	targettest.RunHTTP(t, targettest.HTTPHarness{
		New: func(t *testing.T, deps target.Deps) target.Target {
			srv, url := ezeepfake.NewTestServer(t, ezeepfake.Options{})
			s := ezeep.Settings{AccountURL: url, PrintingURL: url + "/printing/v1", ClientID: srv.ClientID(), ClientSecret: config.NewSecret(srv.ClientSecret())}
			tg, err := ezeep.New("ezeep", s, deps, ezeep.Common{})
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
			Match: func(r *http.Request) bool {
				return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/users/")
			}},
		NonIdempotent: targettest.HTTPOp{Name: "invite",
			Call: func(ctx context.Context, tg target.Target) error {
				return tg.(target.Creator).Create(ctx, &identity.Account{Key: "k1", Email: "jo@example.test"})
			},
			Match: func(r *http.Request) bool {
				return r.Method == http.MethodPost && strings.Contains(r.URL.Path, "invitations")
			}},
		Denied: []targettest.Answer{{Status: 403, Body: `{"detail":"You do not have permission to perform this action."}`}},
	})
}
