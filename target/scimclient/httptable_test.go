package scimclient

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/scimclient/scimfake"
	"github.com/dirsync/dirsync/target/targettest"
)

func TestHTTPOutcomes(t *testing.T) {
	targettest.RunHTTP(t, targettest.HTTPHarness{
		New: func(t *testing.T, deps target.Deps) target.Target {
			f, srv := startFake(t, scimfake.Options{}, nil)
			tg, err := build(t, "base_url: "+srv.URL+f.Prefix()+"\nauth: {bearer_token: "+testToken+"}", deps)
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
				return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Users")
			}},
		NonIdempotent: targettest.HTTPOp{Name: "create",
			Call: func(ctx context.Context, tg target.Target) error {
				return tg.(target.Creator).Create(ctx, &identity.Account{Key: "k1", Username: "jo", Email: "jo@example.test"})
			},
			Match: func(r *http.Request) bool {
				return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Users")
			}},
		Denied: []targettest.Answer{{Status: 403, Body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"403","detail":"insufficient scope"}`}},
	})
}
