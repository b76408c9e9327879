package netmakerfake_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/target/netmaker/netmakerfake"
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
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{FaultRate: 1, Faults: []netmakerfake.Fault{netmakerfake.Fault429}, RetryAfter: 3})
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
	srv2, url2 := netmakerfake.NewTestServer(t, netmakerfake.Options{FaultRate: 1, Faults: []netmakerfake.Fault{netmakerfake.FaultDrop}, FaultAfterApply: true})
	req, _ = http.NewRequest("POST", url2+"/api/users/rita", strings.NewReader(`{"username":"rita","password":"secret1","platform_role_id":"service-user"}`))
	req.Header.Set("Authorization", "Bearer "+srv2.AdminToken())
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the connection was not dropped")
	}
	if _, ok := srv2.User("rita"); !ok {
		t.Fatal("not applied before the drop")
	}
	calls := srv2.Calls()
	if len(calls) != 1 || calls[0].Fault != netmakerfake.FaultDrop || !calls[0].Applied {
		t.Fatalf("calls %+v", calls)
	}
}
