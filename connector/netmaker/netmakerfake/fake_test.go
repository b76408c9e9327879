package netmakerfake_test

import (
	"encoding/json"
	"fmt"
	"github.com/dirsync/dirsync/connector/fakekit"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
)

type client struct {
	t     *testing.T
	url   string
	token string
}

func (c client) do(method, path, body string) (int, map[string]any, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, string(b)
}

// The fake runs from any Go program (the demo) with Start and Close.
func TestStartAndClose(t *testing.T) {
	srv := netmakerfake.New(netmakerfake.Options{})
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := client{t, url, srv.AdminToken()}
	if code, _, body := c.do("GET", "/api/users", ""); code != 200 || !strings.HasPrefix(body, "[") {
		t.Fatalf("bare list: %d %s", code, body)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url + "/api/users"); err == nil {
		t.Fatal("still serving after Close")
	}
}

func TestContract(t *testing.T) {
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
	c := client{t, url, srv.AdminToken()}
	// Envelopes: v2 list and v1 get are wrapped, create is bare.
	code, m, body := c.do("POST", "/api/users/ignored", `{"username":"nina","password":"secret1","platform_role_id":"platform-user"}`)
	if code != 200 || m["username"] != "nina" || m["Code"] != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if strings.Contains(body, "secret1") || strings.Contains(srv.Calls()[0].Body, "secret1") {
		t.Fatal("the password is echoed or recorded")
	}
	code, m, body = c.do("GET", "/api/v2/users?page=1&per_page=1", "")
	resp, _ := m["Response"].(map[string]any)
	if code != 200 || m["Code"] != float64(200) || resp["total"] != float64(2) || resp["total_pages"] != float64(2) || len(resp["data"].([]any)) != 1 {
		t.Fatalf("v2 list: %d %s", code, body)
	}
	code, m, body = c.do("GET", "/api/v1/users?username=nina", "")
	if code != 200 || m["Response"].(map[string]any)["username"] != "nina" {
		t.Fatalf("v1 get: %d %s", code, body)
	}
	// Missing users are 500 record not found.
	for _, r := range [][2]string{{"GET", "/api/v1/users?username=nobody"}, {"POST", "/api/users/nobody/disable"}, {"DELETE", "/api/users/nobody"}, {"PUT", "/api/users/nobody"}} {
		if code, m, _ := c.do(r[0], r[1], `{"username":"nobody"}`); code != 500 || m["Message"] != "record not found" {
			t.Fatalf("%s %s: %d %v", r[0], r[1], code, m)
		}
	}
	// Username rules.
	for name, ok := range map[string]bool{"abc": false, "abcd": true, "j_doe": false, "j.doe-1": true, "j_doe@example.test": true, "a b c d": false} {
		code, _, body := c.do("POST", "/api/users/x", `{"username":"`+name+`","password":"secret1","platform_role_id":"service-user"}`)
		if (code == 200) != ok {
			t.Errorf("create %q: %d %s", name, code, body)
		}
	}
	// Duplicates, roles.
	if code, m, _ := c.do("POST", "/api/users/nina", `{"username":"nina","password":"secret1","platform_role_id":"platform-user"}`); code != 400 || m["Message"] != "user exists" {
		t.Fatalf("duplicate: %d %v", code, m)
	}
	if code, _, _ := c.do("POST", "/api/users/x", `{"username":"oscar","password":"secret1"}`); code != 400 {
		t.Fatalf("no role: %d", code)
	}
	// The master key cannot create or delete.
	mk := client{t, url, srv.MasterKey()}
	if code, m, _ := mk.do("POST", "/api/users/x", `{"username":"oscar","password":"secret1","platform_role_id":"service-user"}`); code != 400 || m["Message"] != "record not found" {
		t.Fatalf("create with the master key: %d %v", code, m)
	}
	if code, _, _ := mk.do("DELETE", "/api/users/nina", ""); code != 500 {
		t.Fatalf("delete with the master key: %d", code)
	}
	if code, _, _ := mk.do("POST", "/api/users/nina/disable", ""); code != 200 {
		t.Fatalf("disable with the master key: %d", code)
	}
	// Unknown tokens, and a token revoked by a role change.
	if code, _, _ := (client{t, url, "nope"}).do("GET", "/api/users", ""); code != 401 {
		t.Fatalf("bad token: %d", code)
	}
	srv.AddUser(netmakerfake.User{Username: "pete", PlatformRoleID: "admin"})
	pt := client{t, url, srv.CreateToken("pete")}
	if code, _, _ := pt.do("GET", "/api/users", ""); code != 200 {
		t.Fatalf("pete's token: %d", code)
	}
	if code, _, body := c.do("PUT", "/api/users/pete", `{"username":"pete","platform_role_id":"auditor"}`); code != 200 {
		t.Fatalf("role change: %d %s", code, body)
	}
	if code, _, _ := pt.do("GET", "/api/users", ""); code != 401 {
		t.Fatalf("pete's token after a role change: %d, want 401 (revoked)", code)
	}
}

func TestCommunityMode(t *testing.T) {
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{Community: true})
	c := client{t, url, srv.AdminToken()}
	if code, _, _ := c.do("GET", "/api/v1/users/groups", ""); code != 404 {
		t.Fatalf("groups on community: %d", code)
	}
	if code, _, _ := c.do("POST", "/api/users/x", `{"username":"quinn","password":"secret1","platform_role_id":"platform-user"}`); code != 200 {
		t.Fatal(code)
	}
	if u, _ := srv.User("quinn"); u.PlatformRoleID != "admin" {
		t.Fatalf("community role %q, want admin", u.PlatformRoleID)
	}
}

func TestFaults(t *testing.T) {
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{FaultOptions: fakekit.FaultOptions{FaultRate: 1, Faults: []fakekit.Fault{fakekit.Fault429}, RetryAfter: 3}})
	req, _ := http.NewRequest("GET", url+"/api/users", nil)
	req.Header.Set("Authorization", "Bearer "+srv.AdminToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("429: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// A connection dropped after the create was applied.
	srv2, url2 := netmakerfake.NewTestServer(t, netmakerfake.Options{FaultOptions: fakekit.FaultOptions{FaultRate: 1, Faults: []fakekit.Fault{fakekit.FaultDrop}, FaultAfterApply: true}})
	req, _ = http.NewRequest("POST", url2+"/api/users/rita", strings.NewReader(`{"username":"rita","password":"secret1","platform_role_id":"service-user"}`))
	req.Header.Set("Authorization", "Bearer "+srv2.AdminToken())
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the connection was not dropped")
	}
	if _, ok := srv2.User("rita"); !ok {
		t.Fatal("not applied before the drop")
	}
	calls := srv2.Calls()
	if len(calls) != 1 || calls[0].Fault != fakekit.FaultDrop || !calls[0].Applied {
		t.Fatalf("calls %+v", calls)
	}
}

// exact asserts one answer's status and Netmaker error body.
func exact(t *testing.T, what string, code int, body string, wantCode int, wantMsg string) {
	t.Helper()
	want := fmt.Sprintf(`{"Code":%d,"Message":%q}`, wantCode, wantMsg)
	if code != wantCode || strings.TrimSpace(body) != want {
		t.Fatalf("%s: %d %s, want %d %s", what, code, strings.TrimSpace(body), wantCode, want)
	}
}

// The facts measured on a real Netmaker v1.5.1 community-edition server
// (issue 12), one by one, with their exact status codes and bodies.
func TestRealServerFacts(t *testing.T) {
	t.Run("create ignores auth_type", func(t *testing.T) {
		srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
		c := client{t, url, srv.AdminToken()}
		if code, _, body := c.do("POST", "/api/users/sso1", `{"username":"sso1","password":"secret1","auth_type":"oauth","platform_role_id":"platform-user"}`); code != 200 {
			t.Fatalf("create: %d %s", code, body)
		}
		if u, _ := srv.User("sso1"); u.AuthType != "basic_auth" {
			t.Fatalf("auth_type %q, want basic_auth", u.AuthType)
		}
	})
	t.Run("IdP users cannot be deleted or renamed", func(t *testing.T) {
		srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
		srv.AddUser(netmakerfake.User{Username: "gina@example.test", DisplayName: "Gina", AuthType: "oauth", PlatformRoleID: "platform-user"})
		c := client{t, url, srv.AdminToken()}
		code, _, body := c.do("DELETE", "/api/users/gina@example.test", "")
		exact(t, "delete an IdP user", code, body, 400, "cannot delete idp user gina@example.test")
		code, _, body = c.do("PUT", "/api/users/gina@example.test", `{"username":"gina@example.test","display_name":"G","is_mfa_enabled":false}`)
		exact(t, "rename an IdP user", code, body, 400, "display name cannot be updated for external user")
		if code, _, body := c.do("PUT", "/api/users/gina@example.test", `{"username":"gina@example.test","platform_role_id":"auditor"}`); code != 200 {
			t.Fatalf("role change of an IdP user: %d %s", code, body)
		}
	})
	t.Run("a user whose role the server lacks is listed but cannot be read", func(t *testing.T) {
		// A paid-edition server downgraded to the community edition keeps
		// its platform-user users; the community server has no such role.
		srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{Community: true})
		srv.AddUser(netmakerfake.User{Username: "pat1", PlatformRoleID: "platform-user"})
		c := client{t, url, srv.AdminToken()}
		code, _, body := c.do("GET", "/api/v1/users?username=pat1", "")
		exact(t, "read a user whose role the server lacks", code, body, 500, "record not found")
		code, _, body = c.do("GET", "/api/v1/users?username=nobody", "")
		exact(t, "read a missing user", code, body, 500, "record not found")
		if code, _, body := c.do("GET", "/api/users", ""); code != 200 || !strings.Contains(body, `"username":"pat1"`) {
			t.Fatalf("the legacy list leaves it out: %d %s", code, body)
		}
		if code, _, body := c.do("GET", "/api/v2/users?page=1&per_page=100", ""); code != 200 || !strings.Contains(body, `"username":"pat1"`) {
			t.Fatalf("the v2 list leaves it out: %d %s", code, body)
		}
		if code, _, body := c.do("POST", "/api/users/pat1/disable", ""); code != 200 {
			t.Fatalf("disable it: %d %s", code, body)
		}
		if u, _ := srv.User("pat1"); !u.AccountDisabled {
			t.Fatal("not disabled")
		}
	})
	t.Run("the master key disables and demotes the super-admin", func(t *testing.T) {
		srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
		owner := client{t, url, srv.AdminToken()}
		mk := client{t, url, srv.MasterKey()}
		code, m, body := mk.do("POST", "/api/users/netmaker-admin/disable", "")
		if code != 200 || m["Message"] != "user account disabled" {
			t.Fatalf("master key disables the super-admin: %d %s", code, body)
		}
		code, _, body = owner.do("GET", "/api/users", "")
		exact(t, "the super-admin's token after", code, body, 401, "user account disabled")
		if code, _, _ := mk.do("POST", "/api/users/netmaker-admin/enable", ""); code != 200 {
			t.Fatal(code)
		}
		if code, _, body := mk.do("PUT", "/api/users/netmaker-admin", `{"username":"netmaker-admin","platform_role_id":"admin"}`); code != 200 {
			t.Fatalf("master key demotes the super-admin: %d %s", code, body)
		}
		if u, _ := srv.User("netmaker-admin"); u.PlatformRoleID != "admin" {
			t.Fatalf("role %q", u.PlatformRoleID)
		}
	})
	t.Run("permission refusals", func(t *testing.T) {
		srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{Community: true})
		srv.AddUser(netmakerfake.User{Username: "ann1", PlatformRoleID: "admin"})
		srv.AddUser(netmakerfake.User{Username: "ben1", PlatformRoleID: "admin"})
		owner := client{t, url, srv.AdminToken()}
		ann := client{t, url, srv.CreateToken("ann1")}
		code, _, body := ann.do("POST", "/api/users/ben1/disable", "")
		exact(t, "admin disables an admin", code, body, 403, "admin cannot disable an admin")
		code, _, body = ann.do("DELETE", "/api/users/ben1", "")
		exact(t, "admin deletes an admin", code, body, 500, "admin cannot delete another admin user, including oneself")
		code, _, body = owner.do("POST", "/api/users/netmaker-admin/disable", "")
		exact(t, "disable self", code, body, 403, "cannot disable self")
		code, _, body = owner.do("POST", "/api/users/netmaker-admin/enable", "")
		exact(t, "enable self", code, body, 403, "cannot enable self")
		code, _, body = owner.do("PUT", "/api/users/ben1", `{"username":"ben1","platform_role_id":"platform-user"}`)
		exact(t, "platform-user on community edition", code, body, 400, "invalid user role platform-user")
		code, _, body = owner.do("PUT", "/api/users/ben1", `{"username":"ben1","platform_role_id":"super-admin"}`)
		exact(t, "assign super-admin", code, body, 403, "only a super-admin can assign the super-admin role to another user via transferSuperAdmin method")
		if code, _, body := owner.do("POST", "/api/users/ben1/disable", ""); code != 200 {
			t.Fatalf("the super-admin disables an admin: %d %s", code, body)
		}
	})
	t.Run("routing before auth, 401 bodies", func(t *testing.T) {
		srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
		bad := client{t, url, "not-a-token"}
		if code, _, _ := bad.do("GET", "/api/no/such/route", ""); code != 404 {
			t.Fatalf("unknown route with a bad token: %d", code)
		}
		code, _, body := bad.do("GET", "/api/users", "")
		exact(t, "bad token", code, body, 401, "unauthorized")
		srv.AddUser(netmakerfake.User{Username: "carl", PlatformRoleID: "admin"})
		tok := srv.CreateToken("carl")
		owner := client{t, url, srv.AdminToken()}
		if code, _, _ := owner.do("PUT", "/api/users/carl", `{"username":"carl","platform_role_id":"auditor"}`); code != 200 {
			t.Fatal(code)
		}
		code, _, body = (client{t, url, tok}).do("GET", "/api/v1/users?username=carl", "")
		exact(t, "revoked token", code, body, 401, "token revoked")
	})
	t.Run("user JSON, community groups, per_page", func(t *testing.T) {
		srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{Community: true})
		c := client{t, url, srv.AdminToken()}
		for i := range 12 {
			c.do("POST", "/api/users/x", fmt.Sprintf(`{"username":"user%02d","password":"secret1"}`, i))
		}
		code, m, body := c.do("PUT", "/api/users/user00", `{"username":"user00","user_group_ids":{"g-1":{}}}`)
		if code != 200 {
			t.Fatalf("PUT groups on community edition: %d %s", code, body)
		}
		if u, _ := srv.User("user00"); len(u.UserGroups) != 1 {
			t.Fatalf("community edition did not store user_group_ids: %+v", u)
		}
		for _, k := range []string{"isadmin", "issuperadmin", "num_access_tokens", "created_by", "updated_at", "remote_gw_ids"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("user JSON lacks %s: %s", k, body)
			}
		}
		_, m, body = c.do("GET", "/api/v2/users?page=1&per_page=500", "")
		resp, _ := m["Response"].(map[string]any)
		if resp["per_page"] != float64(10) || len(resp["data"].([]any)) != 10 {
			t.Fatalf("per_page 500: %s", body)
		}
	})
}
