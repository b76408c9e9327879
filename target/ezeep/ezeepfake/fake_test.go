package ezeepfake_test

import (
	"encoding/json"
	"github.com/dirsync/dirsync/target/fakekit"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/target/ezeep/ezeepfake"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type client struct {
	t     *testing.T
	base  string
	token string
}

func (c *client) do(method, path, body string) (int, http.Header, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, resp.Header, m
}

func tokenRequest(t *testing.T, base, id, secret, grant string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth/access_token/", strings.NewReader(url.Values{"grant_type": {grant}}.Encode()))
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func setup(t *testing.T, o ezeepfake.Options) (*ezeepfake.Server, *client, *clock) {
	clk := &clock{now: time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC)}
	o.Now = clk.Now
	srv, base := ezeepfake.NewTestServer(t, o)
	st, m := tokenRequest(t, base, srv.ClientID(), srv.ClientSecret(), "client_credentials")
	if st != 200 || m["token_type"] != "Bearer" || m["expires_in"] != float64(3600) {
		t.Fatalf("token: %d %v", st, m)
	}
	return srv, &client{t: t, base: base, token: m["access_token"].(string)}, clk
}

func TestTokenEndpoint(t *testing.T) {
	srv, c, clk := setup(t, ezeepfake.Options{ClientSecret: "p@ss:w/rd"})
	if st, m := tokenRequest(t, c.base, srv.ClientID(), "wrong", "client_credentials"); st != 401 || m["error"] != "invalid_client" {
		t.Fatalf("wrong secret: %d %v", st, m)
	}
	if st, m := tokenRequest(t, c.base, srv.ClientID(), srv.ClientSecret(), "password"); st != 400 || m["error"] != "unsupported_grant_type" {
		t.Fatalf("other grant: %d %v", st, m)
	}
	if st, _, _ := c.do("GET", "/v1/users/", ""); st != 200 {
		t.Fatalf("with a token: %d", st)
	}
	anon := &client{t: t, base: c.base}
	if st, _, m := anon.do("GET", "/v1/users/", ""); st != 401 || m["detail"] == nil {
		t.Fatalf("without a token: %d %v", st, m)
	}
	clk.advance(time.Hour + time.Second)
	if st, _, _ := c.do("GET", "/v1/users/", ""); st != 401 {
		t.Fatalf("an expired token: %d", st)
	}
	for _, call := range srv.Calls() {
		if strings.Contains(call.Body, srv.ClientSecret()) || strings.Contains(call.Body, c.token) {
			t.Fatalf("a credential was recorded: %+v", call)
		}
	}
}

func TestInvitationsUsersAndPaging(t *testing.T) {
	srv, c, clk := setup(t, ezeepfake.Options{})
	st, _, inv := c.do("POST", "/v1/userinvitations/", `{"email":"new@example.test","expire_date":"2026-02-10T15:15:33"}`)
	if st != 201 || inv["email"] != "new@example.test" || inv["expire_date"] != "2026-02-10T15:15:33.000000Z" ||
		inv["delivery_status"] != "SENT" || inv["invitation_status"] != "OPEN" || inv["id"] == "" {
		t.Fatalf("invite: %d %v", st, inv)
	}
	// The seed's other spelling of the path works too, and a second
	// invitation for the same email is refused.
	if st, _, m := c.do("POST", "/v1/users/userinvitations/", `{"email":"NEW@example.test","expire_date":"2026-02-10T15:15:33"}`); st != 400 || m["email"] == nil {
		t.Fatalf("duplicate: %d %v", st, m)
	}
	for _, bad := range []string{`{"email":"x@example.test"}`, `{"email":"not an email","expire_date":"2026-02-10T15:15:33"}`, `{"email":"y@example.test","expire_date":"2020-01-01T00:00:00"}`} {
		if st, _, _ := c.do("POST", "/v1/userinvitations/", bad); st != 400 {
			t.Fatalf("%s: %d", bad, st)
		}
	}
	u, _ := srv.UserByEmail("new@example.test")
	st, _, got := c.do("GET", "/v1/users/"+u.ID, "")
	if st != 200 || got["is_verified"] != false || got["roles"].([]any)[0] != "user" || len(got["user_invitations"].([]any)) != 1 {
		t.Fatalf("invitee: %d %v", st, got)
	}
	if st, _, p := c.do("GET", "/printing/v1/users/"+u.ID, ""); st != 200 || len(p["groups"].([]any)) != 0 {
		t.Fatalf("printing user: %d %v", st, p)
	}
	clk.advance(40 * 24 * time.Hour)
	_, tok := tokenRequest(t, c.base, srv.ClientID(), srv.ClientSecret(), "client_credentials") // the old one expired
	c.token = tok["access_token"].(string)
	_, _, got = c.do("GET", "/v1/users/"+u.ID+"/", "")
	if got["user_invitations"].([]any)[0].(map[string]any)["invitation_status"] != "EXPIRED" {
		t.Fatalf("expired invitation %v", got)
	}
	invID := u.Invitations[0]
	if st, _, m := c.do("PATCH", "/v1/userinvitations/"+invID+"/", ""); st != 200 || m["id"] != invID {
		t.Fatalf("resend: %d %v", st, m)
	}
	if i := srv.Invitations("new@example.test")[0]; i.Resent != 1 || !i.ExpireDate.After(clk.Now()) {
		t.Fatalf("after resend %+v", i)
	}

	for i := range 24 {
		clk.advance(time.Minute)
		srv.AddUser(ezeepfake.User{Email: "u" + string(rune('a'+i)) + "@example.test"})
	}
	st, _, p1 := c.do("GET", "/v1/users/?page=1&per_page=10", "")
	if st != 200 || p1["count"] != float64(25) || p1["previous"] != nil || len(p1["results"].([]any)) != 10 {
		t.Fatalf("page 1: %d %v", st, p1)
	}
	if first := p1["results"].([]any)[0].(map[string]any); first["email"] != "ux@example.test" {
		t.Fatalf("not newest first: %v", first["email"])
	}
	next := p1["next"].(string)
	if !strings.HasPrefix(next, c.base+"/v1/users/?") || !strings.Contains(next, "page=2") {
		t.Fatalf("next %q", next)
	}
	_, _, p3 := c.do("GET", "/v1/users/?page=3&per_page=10", "")
	if p3["next"] != nil || len(p3["results"].([]any)) != 5 {
		t.Fatalf("page 3: %v", p3)
	}
	if st, _, m := c.do("GET", "/v1/users/?page=4&per_page=10", ""); st != 404 || m["detail"] != "Invalid page." {
		t.Fatalf("page 4: %d %v", st, m)
	}
	if _, _, m := c.do("GET", "/v1/users/?per_page=1000", ""); len(m["results"].([]any)) != 25 {
		t.Fatalf("per_page is capped at MaxPerPage, not below the count: %v", len(m["results"].([]any)))
	}
}

func TestPatchesAndDelete(t *testing.T) {
	srv, c, _ := setup(t, ezeepfake.Options{})
	a, b := srv.AddGroup("a"), srv.AddGroup("b")
	id := srv.AddUser(ezeepfake.User{Email: "x@example.test"})
	if st, _, m := c.do("PATCH", "/v1/users/"+id+"/", `{"last_name":"falak","roles":"admin"}`); st != 200 || m["roles"].([]any)[0] != "admin" || m["display_name"] != "falak" {
		t.Fatalf("patch: %d %v", st, m)
	}
	if st, _, m := c.do("PATCH", "/v1/users/"+id+"/", `{"roles":["admin"]}`); st != 400 || m["roles"] == nil {
		t.Fatalf("roles as an array: %d %v", st, m)
	}
	if st, _, _ := c.do("PATCH", "/v1/users/"+id+"/", `{"roles":"owner"}`); st != 400 {
		t.Fatalf("unknown role: %d", st)
	}
	if st, _, _ := c.do("PATCH", "/v1/users/"+id, `{"first_name":"x"}`); st != 404 {
		t.Fatalf("a write without the trailing slash: %d", st)
	}
	// The group PATCH replaces the whole list.
	c.do("PATCH", "/printing/v1/users/"+id+"/", `{"groups":[{"group_id":"`+a+`"},{"group_id":"`+b+`"}]}`)
	st, _, m := c.do("PATCH", "/printing/v1/users/"+id+"/", `{"groups":[{"group_id":"`+b+`"}]}`)
	if st != 200 || len(m["groups"].([]any)) != 1 {
		t.Fatalf("replace: %d %v", st, m)
	}
	if u, _ := srv.User(id); len(u.Groups) != 1 || u.Groups[0] != b {
		t.Fatalf("groups %v", u.Groups)
	}
	if st, _, _ := c.do("PATCH", "/printing/v1/users/"+id+"/", `{"groups":[{"group_id":"nope"}]}`); st != 400 {
		t.Fatalf("unknown group: %d", st)
	}
	if st, _, _ := c.do("DELETE", "/v1/users/"+id+"/", ""); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _, _ := c.do("GET", "/v1/users/"+id, ""); st != 404 {
		t.Fatalf("after delete: %d", st)
	}
	if st, _, _ := c.do("GET", "/printing/v1/users/"+id, ""); st != 404 {
		t.Fatalf("printing user after delete: %d", st)
	}
	applied := srv.Applied()
	if applied["PATCH /printing/v1/users/"+id+"/"] != 2 || applied["DELETE /v1/users/"+id+"/"] != 1 {
		t.Fatalf("applied %v", applied)
	}
}

func TestFaults(t *testing.T) {
	srv, c, _ := setup(t, ezeepfake.Options{FaultOptions: fakekit.FaultOptions{RetryAfter: 3}})
	id := srv.AddUser(ezeepfake.User{Email: "x@example.test"})
	srv.SetFaults(1, fakekit.Fault429)
	if st, h, _ := c.do("GET", "/v1/users/", ""); st != 429 || h.Get("Retry-After") != "3" {
		t.Fatalf("429: %d %v", st, h)
	}
	srv.SetFaults(1, fakekit.Fault500)
	if st, _, _ := c.do("GET", "/v1/users/", ""); st != 500 {
		t.Fatalf("500: %d", st)
	}
	// A dropped connection after the change was applied.
	srv.SetFaults(1, fakekit.FaultDrop)
	srv.SetFaultAfterApply(true)
	req, _ := http.NewRequest("PATCH", c.base+"/v1/users/"+id+"/", strings.NewReader(`{"roles":"admin"}`))
	req.Header.Set("Authorization", "Bearer "+c.token)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the connection was not dropped")
	}
	if u, _ := srv.User(id); u.Role != "admin" {
		t.Fatal("the change was not applied before the drop")
	}
	calls := srv.Calls()
	if last := calls[len(calls)-1]; last.Fault != fakekit.FaultDrop || !last.Applied || last.Status != 0 {
		t.Fatalf("recorded %+v", last)
	}
}

func TestStartAndClose(t *testing.T) {
	srv := ezeepfake.New(ezeepfake.Options{})
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := tokenRequest(t, base, srv.ClientID(), srv.ClientSecret(), "client_credentials")
	if st != 200 {
		t.Fatalf("token: %d", st)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}
