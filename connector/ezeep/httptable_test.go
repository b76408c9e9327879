package ezeep_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeep"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
)

func TestHTTPOutcomes(t *testing.T) {
	targettest.RunHTTP(t, targettest.HTTPHarness{
		New: func(t *testing.T, deps connector.Deps) connector.Connector {
			srv, url := ezeepfake.NewTestServer(t, ezeepfake.Options{})
			s := ezeep.Settings{AccountURL: url, PrintingURL: url + "/printing/v1", ClientID: srv.ClientID(), ClientSecret: config.NewSecret(srv.ClientSecret())}
			tg, err := ezeep.New("ezeep", s, deps, ezeep.Common{})
			if err != nil {
				t.Fatal(err)
			}
			return tg
		},
		Idempotent: targettest.ListOp(func(r *http.Request) bool {
			return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/users/")
		}),
		NonIdempotent: targettest.CreateOp(identity.Account{Key: "k1", Email: "jo@example.test"},
			func(r *http.Request) bool {
				return r.Method == http.MethodPost && strings.Contains(r.URL.Path, "invitations")
			}),
		Denied: []targettest.Answer{{Status: 403, Body: `{"detail":"You do not have permission to perform this action."}`}},
	})
}
