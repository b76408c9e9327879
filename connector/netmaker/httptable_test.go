package netmaker_test

import (
	"net/http"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/netmaker"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
)

func TestHTTPOutcomes(t *testing.T) {
	targettest.RunHTTP(t, targettest.HTTPHarness{
		New: func(t *testing.T, deps connector.Deps) connector.Connector {
			srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
			tg, err := netmaker.New("netmaker", netmaker.Settings{BaseURL: url, Token: config.NewSecret(srv.AdminToken())}, deps)
			if err != nil {
				t.Fatal(err)
			}
			return tg
		},
		Idempotent:    targettest.ListOp(targettest.Is(http.MethodGet, "/api/v2/users")),
		NonIdempotent: targettest.CreateOp(identity.Account{Key: "k1", Username: "new.user", DisplayName: "New"}, targettest.Is(http.MethodPost, "/api/users/")),
		// Netmaker v1.5.1's refusals, with the status codes it really uses.
		Denied: []targettest.Answer{
			{Status: 500, Body: `{"Code":500,"Message":"admin cannot delete another admin user, including oneself","Response":null}`},
			{Status: 403, Body: `{"Code":403,"Message":"admin cannot disable an admin","Response":null}`},
			{Status: 403, Body: `{"Code":403,"Message":"cannot disable self","Response":null}`},
			{Status: 400, Body: `{"Code":400,"Message":"cannot delete idp user jo","Response":null}`},
			{Status: 401, Body: `{"Code":401,"Message":"user account disabled","Response":null}`},
		},
	})
}
