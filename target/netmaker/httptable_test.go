package netmaker_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/netmaker"
	"github.com/dirsync/dirsync/target/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/target/targettest"
)

func TestHTTPOutcomes(t *testing.T) {
	targettest.RunHTTP(t, targettest.HTTPHarness{
		New: func(t *testing.T, deps target.Deps) target.Target {
			srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
			tg, err := netmaker.New("netmaker", netmaker.Settings{BaseURL: url, Token: config.NewSecret(srv.AdminToken())}, deps)
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
			Match: func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Path == "/api/v2/users" }},
		NonIdempotent: targettest.HTTPOp{Name: "create",
			Call: func(ctx context.Context, tg target.Target) error {
				return tg.(target.Creator).Create(ctx, &identity.Account{Key: "k1", Username: "new.user", DisplayName: "New"})
			},
			Match: func(r *http.Request) bool {
				return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/users/")
			}},
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
