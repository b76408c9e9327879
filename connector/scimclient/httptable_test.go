package scimclient

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/scimclient/scimfake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
)

func TestHTTPOutcomes(t *testing.T) {
	targettest.RunHTTP(t, targettest.HTTPHarness{
		New: func(t *testing.T, deps connector.Deps) connector.Connector {
			f, srv := startFake(t, scimfake.Options{}, nil)
			tg, err := build(t, "base_url: "+srv.URL+f.Prefix()+"\nauth: {bearer_token: "+testToken+"}", deps)
			if err != nil {
				t.Fatal(err)
			}
			return tg
		},
		Idempotent: targettest.ListOp(func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Users")
		}),
		NonIdempotent: targettest.CreateOp(identity.Account{Key: "k1", Username: "jo", Email: "jo@example.test"},
			func(r *http.Request) bool {
				return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/Users")
			}),
		Denied: []targettest.Answer{{Status: 403, Body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"403","detail":"insufficient scope"}`}},
	})
}
