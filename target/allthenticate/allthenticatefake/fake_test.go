package allthenticatefake_test

import (
	"encoding/json"
	"github.com/dirsync/dirsync/target/fakekit"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/target/allthenticate/allthenticatefake"
)

type client struct {
	t    *testing.T
	base string
	key  string
}

// do sends params as a JSON body (json), a form, or the query.
func (c *client) do(method, path, enc string, params map[string]any) (int, http.Header, any) {
	c.t.Helper()
	u := c.base + path
	var rd io.Reader
	ctype := ""
	switch enc {
	case "json":
		b, _ := json.Marshal(params)
		rd, ctype = strings.NewReader(string(b)), "application/json"
	case "form", "query":
		v := url.Values{}
		for k, x := range params {
			switch y := x.(type) {
			case string:
				v.Set(k, y)
			default:
				b, _ := json.Marshal(y)
				v.Set(k, string(b))
			}
		}
		if enc == "form" {
			rd, ctype = strings.NewReader(v.Encode()), "application/x-www-form-urlencoded"
		} else if len(v) > 0 {
			u += "?" + v.Encode()
		}
	}
	req, _ := http.NewRequest(method, u, rd)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

func setup(t *testing.T, o allthenticatefake.Options) (*allthenticatefake.Server, *client) {
	srv, base := allthenticatefake.NewTestServer(t, o)
	return srv, &client{t: t, base: base, key: srv.APIKey()}
}

func TestAuth(t *testing.T) {
	_, c := setup(t, allthenticatefake.Options{})
	bad := &client{t: t, base: c.base, key: "nope"}
	if st, _, _ := bad.do("GET", "/multipleusers", "query", nil); st != 401 {
		t.Fatalf("wrong key: %d", st)
	}
	srv2, c2 := setup(t, allthenticatefake.Options{Header: "X-API-Key"})
	req, _ := http.NewRequest("GET", c2.base+"/multipleusers", nil)
	req.Header.Set("X-API-Key", srv2.APIKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("custom header without prefix: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestMultipleUsersAndToggle(t *testing.T) {
	srv, c := setup(t, allthenticatefake.Options{})
	id := srv.AddUser(allthenticatefake.User{Email: "joe@developer.com", FirstName: "Chad", LastName: "Spensky", Groups: []string{"Employees"}})
	srv.AddUser(allthenticatefake.User{Email: "guest@developer.com", Tag: allthenticatefake.TagGuest})
	_, _, out := c.do("GET", "/multipleusers", "query", nil)
	list := out.([]any)
	if len(list) != 1 {
		t.Fatalf("full users %v", list)
	}
	u := list[0].(map[string]any)
	if u["email_id"] != float64(id) || u["user_id"] == nil || u["email_status"] != "CONFIRMED" || u["ad_status"] != "ACTIVE" ||
		u["name"] != "Chad Spensky" || u["username"] != "joe" || len(u["created"].(string)) != len("2020-03-20 01:30:05") {
		t.Fatalf("entry %v", u)
	}
	if g := u["groups"].([]any); len(g) != 1 || g[0].([]any)[0] != "Employees" {
		t.Fatalf("groups are lists of one element: %v", g)
	}
	_, _, out = c.do("GET", "/multipleusers", "query", map[string]any{"user_tag": "GUEST", "email": "true"})
	if g := out.([]any); len(g) != 1 || g[0].(map[string]any)["email"] != "guest@developer.com" || !strings.Contains(g[0].(map[string]any)["name"].(string), "guest@developer.com") {
		t.Fatalf("guests %v", g)
	}
	// The toggle toggles: twice is back where it started.
	for i, want := range []string{"SUSPENDED", "CONFIRMED"} {
		if st, _, _ := c.do("POST", "/togglesuspension", "json", map[string]any{"email_id": id}); st != 200 {
			t.Fatalf("toggle %d: %d", i, st)
		}
		_, _, out = c.do("GET", "/multipleusers", "query", nil)
		if s := out.([]any)[0].(map[string]any)["email_status"]; s != want {
			t.Fatalf("after toggle %d: %v", i, s)
		}
	}
	if srv.Toggles(id) != 2 {
		t.Fatalf("toggles %d", srv.Toggles(id))
	}
	if st, _, out := c.do("POST", "/togglesuspension", "form", map[string]any{"email_id": "999"}); st != 400 || !strings.Contains(out.(map[string]any)["error"].(string), "not found") {
		t.Fatalf("unknown user: %d %v", st, out)
	}
}

func TestRankPromoteListsAndRemoval(t *testing.T) {
	srv, c := setup(t, allthenticatefake.Options{})
	id := srv.AddUser(allthenticatefake.User{Email: "a@example.test"})
	gid := srv.AddUser(allthenticatefake.User{Email: "g@example.test", Tag: allthenticatefake.TagGuest})
	u, _ := srv.User(id)
	g, _ := srv.User(gid)
	if st, _, _ := c.do("POST", "/modifyrank", "json", map[string]any{"admin_user_id": u.UserID, "rank": "ADMIN"}); st != 200 {
		t.Fatalf("rank: %d", st)
	}
	if st, _, _ := c.do("POST", "/modifyrank", "json", map[string]any{"admin_user_id": u.EmailID, "rank": "ADMIN"}); st != 400 {
		t.Fatalf("modifyrank takes the user_id, not the email_id: %d", st)
	}
	if st, _, _ := c.do("POST", "/modifyrank", "json", map[string]any{"admin_user_id": u.UserID, "rank": "OWNER"}); st != 400 {
		t.Fatalf("bad rank: %d", st)
	}
	if st, _, _ := c.do("POST", "/modifyrank", "json", map[string]any{"admin_user_id": g.UserID, "rank": "ADMIN"}); st != 400 {
		t.Fatalf("guest rank: %d", st)
	}
	if st, _, _ := c.do("POST", "/promoteguest", "json", map[string]any{"email_id": gid}); st != 200 {
		t.Fatalf("promote: %d", st)
	}
	if st, _, _ := c.do("POST", "/promoteguest", "json", map[string]any{"email_id": gid}); st != 400 {
		t.Fatalf("promote a user: %d", st)
	}
	// Whole-list replacements, as a serialized JSON string or an array.
	c.do("POST", "/modifyallusernames", "form", map[string]any{"email_id": "1", "computer_usernames": []map[string]string{{"computer_username": "a"}, {"computer_username": "b"}}})
	c.do("POST", "/modifyallusernames", "json", map[string]any{"email_id": id, "computer_usernames": `[{"computer_username":"c"}]`})
	if got, _ := srv.User(id); len(got.ComputerUsernames) != 1 || got.ComputerUsernames[0] != "c" {
		t.Fatalf("usernames %v", got.ComputerUsernames)
	}
	if st, _, _ := c.do("POST", "/modifysmartcard", "json", map[string]any{"email_id": id, "smartcards": `[{"number":"12a"}]`}); st != 400 {
		t.Fatalf("a non-integer number: %d", st)
	}
	if st, _, _ := c.do("POST", "/modifysmartcard", "json", map[string]any{"email_id": id, "smartcards": `[{"number":"1"},{"number":"1"}]`}); st != 400 {
		t.Fatalf("duplicates: %d", st)
	}
	if st, _, _ := c.do("POST", "/modifysmartcard", "json", map[string]any{"email_id": id, "smartcards": `[{"number":"1"},{"number":"1","label":"x"}]`, "allow_duplicates": true}); st != 200 {
		t.Fatalf("allowed duplicates: %d", st)
	}
	_, _, out := c.do("GET", "/modifysmartcard", "query", map[string]any{"email_id": "1"})
	if m := out.(map[string]any); m["email_id"] != float64(id) || len(m["smartcards"].([]any)) != 2 {
		t.Fatalf("smartcards %v", m)
	}
	_, _, out = c.do("GET", "/user", "query", map[string]any{"email_id": "1"})
	if m := out.(map[string]any); len(m["computer_usernames"].([]any)) != 1 || m["policies"] == nil {
		t.Fatalf("user %v", m)
	}
	if st, _, out := c.do("DELETE", "/user", "json", map[string]any{"email": "g@example.test"}); st != 200 || !strings.Contains(out.(map[string]any)["success"].(string), "successfully deleted") {
		t.Fatalf("delete by email: %d %v", st, out)
	}
	if st, _, _ := c.do("DELETE", "/user", "query", map[string]any{"email_id": "1"}); st != 200 {
		t.Fatalf("delete by email_id: %d", st)
	}
	if len(srv.Users()) != 0 {
		t.Fatalf("users %+v", srv.Users())
	}
	if st, _, _ := c.do("PUT", "/invites", "json", map[string]any{"emails": []string{"n@example.test"}, "no_email": true}); st != 200 {
		t.Fatalf("invites: %d", st)
	}
	if n, ok := srv.UserByEmail("n@example.test"); !ok || !n.Unconfirmed {
		t.Fatalf("invited %+v", n)
	}
	calls := srv.Calls()
	if calls[0].Encoding != "json" || calls[0].Params["rank"] != "ADMIN" || !calls[0].Authorized {
		t.Fatalf("recorded %+v", calls[0])
	}
}

func TestFaults(t *testing.T) {
	srv, c := setup(t, allthenticatefake.Options{FaultOptions: fakekit.FaultOptions{RetryAfter: 4}})
	id := srv.AddUser(allthenticatefake.User{Email: "a@example.test"})
	srv.SetFaults(1, fakekit.Fault429)
	if st, h, _ := c.do("GET", "/multipleusers", "query", nil); st != 429 || h.Get("Retry-After") != "4" {
		t.Fatalf("429: %d %v", st, h)
	}
	srv.SetFaults(1, fakekit.FaultDrop)
	srv.SetFaultAfterApply(true)
	req, _ := http.NewRequest("POST", c.base+"/togglesuspension?email_id=1", nil)
	req.Header.Set("Authorization", "Bearer "+c.key)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("not dropped")
	}
	if u, _ := srv.User(id); !u.Suspended || srv.Toggles(id) != 1 {
		t.Fatal("the toggle was not applied before the drop")
	}
}

func TestStartAndClose(t *testing.T) {
	srv := allthenticatefake.New(allthenticatefake.Options{})
	base, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, base: base, key: srv.APIKey()}
	if st, _, _ := c.do("GET", "/multipleusers", "query", nil); st != 200 {
		t.Fatalf("%d", st)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
}
