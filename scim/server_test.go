package scim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state/memstore"
)

func TestAuth(t *testing.T) {
	sum := sha256.Sum256([]byte("hashed-token"))
	e := newEnv(t, envOpt{extra: []string{
		fmt.Sprintf("token_sha256: [%s]", hex.EncodeToString(sum[:])),
		fmt.Sprintf("tokens: [%q]", testToken),
	}})
	cases := []struct {
		name, auth string
		want       int
	}{
		{"missing", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"wrong scheme", "Basic " + testToken, 401},
		{"empty bearer", "Bearer ", 401},
		{"plain token", "Bearer " + testToken, 200},
		{"hashed token", "Bearer hashed-token", 200},
		{"scheme case-insensitive", "bearer " + testToken, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do("GET", "/Users", nil, "Authorization", c.auth)
			if r.status != c.want {
				t.Fatalf("status %d, want %d", r.status, c.want)
			}
			if c.want == 401 {
				if r.str("status") != "401" || r.str("detail") == "" || r.str("schemas") != `["`+urnError+`"]` {
					t.Fatalf("401 body is not a SCIM error: %s", r.body)
				}
				if r.header.Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate header")
				}
			}
		})
	}
	// Discovery endpoints are protected too.
	if r := e.do("GET", "/ServiceProviderConfig", nil, "Authorization", ""); r.status != 401 {
		t.Fatalf("ServiceProviderConfig without token: %d", r.status)
	}
}

func TestConfigErrors(t *testing.T) {
	store := memstore.New(memstore.Options{})
	cases := []struct {
		extra []string
		want  string
	}{
		{nil, "sources[0].token_sha256: at least one token"},
		{[]string{"token_sha256: [abc]"}, "sources[0].token_sha256[0]: must be 64 hex digits"},
		{[]string{`tokens: [""]`}, "sources[0].tokens[0]: is empty"},
		{[]string{`tokens: [x]`, "max_body_bytes: -1"}, "sources[0].max_body_bytes: must be > 0"},
		{[]string{`tokens: [x]`, "base_url: ftp://x"}, "sources[0].base_url: must be an http(s) URL"},
		{[]string{`tokens: [x]`, "max_result: 5"}, "max_result"},
	}
	for _, c := range cases {
		_, err := New(sourceConfig(t, "corp", c.extra...), store, zap.NewNop())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to contain %q", c.extra, err, c.want)
		}
	}
}

func TestSample(t *testing.T) {
	cfg, err := config.Parse(strings.NewReader("sources:\n" + indent(Sample, "  ")))
	if err != nil {
		t.Fatalf("sample does not parse: %v", err)
	}
	s, err := New(cfg.Sources[0], memstore.New(memstore.Options{}), zap.NewNop())
	if err != nil {
		t.Fatalf("sample does not build: %v", err)
	}
	if s.Name() != "entra" || s.MountPath() != "/scim/entra/v2" {
		t.Fatalf("name %q, mount %q", s.Name(), s.MountPath())
	}
}

func indent(s, pre string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pre + l
		}
	}
	return strings.Join(lines, "\n")
}

func TestBodyLimit(t *testing.T) {
	e := newEnv(t, envOpt{extra: []string{fmt.Sprintf("tokens: [%q]", testToken), "max_body_bytes: 2048"}})
	big := `{"userName":"big","displayName":"` + strings.Repeat("x", 4096) + `"}`
	r := e.do("POST", "/Users", big)
	if r.status != http.StatusRequestEntityTooLarge || r.str("status") != "413" {
		t.Fatalf("big body: %d %s", r.status, r.body)
	}
	// Without a Content-Length (chunked), the limit holds while reading.
	req, _ := http.NewRequest("POST", e.base+"/Users", strings.NewReader(big))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked big body: %d", res.StatusCode)
	}
	// PATCH bodies too.
	id := e.createUser("small", nil)
	r = e.do("PATCH", "/Users/"+id, `{"schemas":["`+urnPatchOp+`"],"Operations":[{"op":"add","path":"title","value":"`+strings.Repeat("y", 4096)+`"}]}`)
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("big PATCH: %d", r.status)
	}
	if got := e.must(200, e.do("GET", "/Users/"+id, nil)).str("title"); got != "" {
		t.Fatalf("rejected PATCH was applied: title %q", got)
	}
}

func TestMounting(t *testing.T) {
	store := memstore.New(memstore.Options{})
	s, err := New(sourceConfig(t, "okta", fmt.Sprintf("tokens: [%q]", testToken)), store, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"full path", func() http.Handler { m := http.NewServeMux(); m.Handle("/scim/okta/v2/", s.Handler()); return m }()},
		{"StripPrefix", http.StripPrefix("/scim/okta/v2", s.Handler())},
	} {
		t.Run(c.name, func(t *testing.T) {
			hs := httptest.NewServer(c.h)
			defer hs.Close()
			e := &testEnv{t: t, base: hs.URL + "/scim/okta/v2", token: testToken, client: hs.Client()}
			id := e.createUser("mount."+strings.ReplaceAll(c.name, " ", ""), nil)
			r := e.must(200, e.do("GET", "/Users/"+id, nil))
			want := hs.URL + "/scim/okta/v2/Users/" + id
			if got := r.str("meta.location"); got != want {
				t.Fatalf("meta.location %q, want %q", got, want)
			}
			// Case-insensitive resource paths and a trailing slash.
			for _, p := range []string{"/users/" + id, "/USERS/" + id + "/", "/Users/" + id + "/"} {
				e.must(200, e.do("GET", p, nil))
			}
			e.must(200, e.do("GET", "/users/", nil))
			e.must(200, e.do("GET", "/serviceproviderconfig", nil))
			e.must(404, e.do("GET", "/Nope", nil))
		})
	}
}

func TestBaseURLSetting(t *testing.T) {
	e := newEnv(t, envOpt{extra: []string{fmt.Sprintf("tokens: [%q]", testToken), "base_url: https://sync.example.com/scim/corp/v2/"}})
	r := e.must(201, e.do("POST", "/Users", map[string]any{"userName": "loc"}))
	want := "https://sync.example.com/scim/corp/v2/Users/" + r.str("id")
	if r.header.Get("Location") != want || r.str("meta.location") != want {
		t.Fatalf("Location %q, meta.location %q, want %q", r.header.Get("Location"), r.str("meta.location"), want)
	}
}

func TestCreateGetReplaceDelete(t *testing.T) {
	e := newEnv(t, envOpt{})
	r := e.must(201, e.do("POST", "/Users", map[string]any{
		"schemas":     []string{URNUser, URNEnterpriseUser},
		"userName":    "Alice@Example.com",
		"externalId":  "ext-1",
		"password":    "Sup3r-S3cret!",
		"active":      "True",
		"displayName": "Alice",
		"emails":      []any{map[string]any{"Value": "alice@example.com", "Type": "work", "Primary": true}},
		URNEnterpriseUser: map[string]any{
			"employeeNumber": "42", "department": "R&D",
			"manager": map[string]any{"value": "boss-id"},
		},
		"id":   "client-chosen",
		"meta": map[string]any{"created": "2001-01-01T00:00:00Z"},
	}))
	id := r.str("id")
	if id == "" || id == "client-chosen" {
		t.Fatalf("id %q", id)
	}
	if loc := r.header.Get("Location"); loc != e.base+"/Users/"+id {
		t.Fatalf("Location %q", loc)
	}
	if r.header.Get("ETag") != `W/"1"` || r.str("meta.version") != `W/"1"` {
		t.Fatalf("ETag %q, meta.version %q", r.header.Get("ETag"), r.str("meta.version"))
	}
	if r.json["active"] != true || r.str("emails.0.value") != "alice@example.com" || r.json["emails"].([]any)[0].(map[string]any)["primary"] != true {
		t.Fatalf("body: %s", r.body)
	}
	if r.str(URNEnterpriseUser+".employeeNumber") != "42" && dig(r.json[URNEnterpriseUser], "employeeNumber") != "42" {
		t.Fatalf("enterprise extension lost: %s", r.body)
	}
	if !slices.Contains(strings.Split(r.str("schemas"), ","), `"`+URNEnterpriseUser+`"]`) && !strings.Contains(r.str("schemas"), URNEnterpriseUser) {
		t.Fatalf("schemas %s", r.str("schemas"))
	}
	if strings.Contains(string(r.body), "Sup3r") || strings.Contains(string(r.body), "password") {
		t.Fatalf("password returned: %s", r.body)
	}
	if r.str("meta.created") == "2001-01-01T00:00:00Z" {
		t.Fatal("client meta was kept")
	}
	// The password is not stored either.
	all, _ := e.store.KVList(context.Background(), "scim/corp/users")
	for _, v := range all {
		if strings.Contains(string(v), "Sup3r") {
			t.Fatalf("password stored: %s", v)
		}
	}

	// Duplicate userName, case-insensitively.
	dup := e.do("POST", "/Users", map[string]any{"userName": "alice@example.COM"})
	if dup.status != 409 || dup.str("scimType") != "uniqueness" || dup.str("detail") == "" {
		t.Fatalf("duplicate: %d %s", dup.status, dup.body)
	}

	g := e.must(200, e.do("GET", "/Users/"+id, nil))
	if g.str("userName") != "Alice@Example.com" || g.header.Get("ETag") != `W/"1"` {
		t.Fatalf("get: %s", g.body)
	}
	e.must(304, e.do("GET", "/Users/"+id, nil, "If-None-Match", `W/"1"`))

	// PUT replaces everything (the enterprise extension goes away).
	put := e.must(200, e.do("PUT", "/Users/"+id, map[string]any{"userName": "alice2", "active": false}))
	if put.str("userName") != "alice2" || put.json["active"] != false || put.json[URNEnterpriseUser] != nil || put.json["emails"] != nil {
		t.Fatalf("put: %s", put.body)
	}
	if put.header.Get("ETag") != `W/"2"` {
		t.Fatalf("put ETag %q", put.header.Get("ETag"))
	}
	// The old userName is free again, the new one is taken.
	other := e.createUser("alice@example.com", nil)
	e.must(409, e.do("PUT", "/Users/"+other, map[string]any{"userName": "ALICE2"}))

	// If-Match.
	e.must(412, e.do("PUT", "/Users/"+id, map[string]any{"userName": "alice3"}, "If-Match", `W/"1"`))
	e.must(412, e.do("PATCH", "/Users/"+id, patchBody(op("replace", "title", "x")), "If-Match", `W/"7"`))
	e.must(412, e.do("DELETE", "/Users/"+id, nil, "If-Match", `"1"`))
	e.must(200, e.do("PUT", "/Users/"+id, map[string]any{"userName": "alice3"}, "If-Match", `W/"2"`))
	e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("replace", "title", "x")), "If-Match", `*`))

	// PUT without userName is a 400, and changes nothing.
	bad := e.do("PUT", "/Users/"+id, map[string]any{"userame": "typo"})
	if bad.status != 400 {
		t.Fatalf("PUT without userName: %d", bad.status)
	}
	e.must(204, e.do("DELETE", "/Users/"+id, nil))
	e.must(404, e.do("GET", "/Users/"+id, nil))
	e.must(404, e.do("DELETE", "/Users/"+id, nil))
	e.must(404, e.do("PATCH", "/Users/"+id, patchBody(op("replace", "title", "x"))))
	nf := e.do("GET", "/Users/does-not-exist", nil)
	if nf.status != 404 || nf.str("detail") == "" || nf.str("status") != "404" {
		t.Fatalf("404 body: %s", nf.body)
	}
	// The deleted user's name is free.
	e.createUser("alice3", nil)
}

func TestBadBodies(t *testing.T) {
	e := newEnv(t, envOpt{})
	for _, b := range []string{``, `{`, `[]`, `"x"`, `{"acve": tre}`, `{"userName": 5}`, `{"userName": "x", "active": "maybe"}`,
		`{"userName": "x", "emails": 5}`, `{"userName":"x"} trailing`, `{"displayName": "no userName"}`} {
		r := e.do("POST", "/Users", b)
		if r.status != 400 || r.str("status") != "400" {
			t.Errorf("POST %s: %d %s", b, r.status, r.body)
		}
	}
	for _, b := range []string{`{}`, `{"displayName": ""}`} {
		if r := e.do("POST", "/Groups", b); r.status != 400 {
			t.Errorf("POST group %s: %d", b, r.status)
		}
	}
	e.must(405, e.do("DELETE", "/Users", nil))
	e.must(501, e.do("POST", "/Bulk", `{}`))
	e.must(501, e.do("GET", "/Me", nil))
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t, envOpt{})
	sp := e.must(200, e.do("GET", "/ServiceProviderConfig", nil))
	for path, want := range map[string]any{
		"patch.supported": true, "filter.supported": true, "etag.supported": true,
		"bulk.supported": false, "sort.supported": false, "changePassword.supported": false,
		"authenticationSchemes.0.type": "oauthbearertoken",
	} {
		if got := dig(sp.json, path); got != want {
			t.Errorf("ServiceProviderConfig %s = %v, want %v", path, got, want)
		}
	}
	if sp.str("documentationUri") == "" {
		t.Error("no documentationUri")
	}
	rts := e.must(200, e.do("GET", "/ResourceTypes", nil))
	if rts.str("Resources.0.endpoint") != "/Users" || rts.str("Resources.1.endpoint") != "/Groups" ||
		rts.str("itemsPerPage") != "2" || rts.str("totalResults") != "2" {
		t.Fatalf("ResourceTypes: %s", rts.body)
	}
	if rts.str("Resources.0.schemaExtensions.0.schema") != URNEnterpriseUser {
		t.Fatalf("User resource type lacks the enterprise extension: %s", rts.body)
	}
	e.must(200, e.do("GET", "/ResourceTypes/User", nil))
	sc := e.must(200, e.do("GET", "/Schemas", nil))
	// The three resource schemas and, RFC 7643 §5–7, those of the
	// discovery resources.
	if sc.str("totalResults") != "6" || !strings.Contains(string(sc.body), "User Account") {
		t.Fatalf("Schemas: %.300s", sc.body)
	}
	one := e.must(200, e.do("GET", "/Schemas/"+URNEnterpriseUser, nil))
	if one.str("id") != URNEnterpriseUser {
		t.Fatalf("schema: %.200s", one.body)
	}
	e.must(404, e.do("GET", "/Schemas/urn:nope", nil))
}

func TestListAndPagination(t *testing.T) {
	e := newEnv(t, envOpt{})
	for i := range 7 {
		e.createUser(fmt.Sprintf("user%d", i), nil)
	}
	cases := []struct {
		query                 string
		total, items, startIx int
		first                 string
	}{
		{"", 7, 7, 1, "user0"},
		{"?startIndex=1&count=2", 7, 2, 1, "user0"},
		{"?startIndex=3&count=2", 7, 2, 3, "user2"},
		{"?startIndex=6&count=5", 7, 2, 6, "user5"},
		{"?startIndex=20", 7, 0, 20, ""},
		{"?count=0", 7, 0, 1, ""},
		{"?count=-3", 7, 0, 1, ""},
		{"?startIndex=0&count=1", 7, 1, 1, "user0"},
		{"?filter=userName+sw+%22user1%22", 1, 1, 1, "user1"},
	}
	for _, c := range cases {
		r := e.must(200, e.do("GET", "/Users"+c.query, nil))
		if r.str("totalResults") != fmt.Sprint(c.total) || r.str("itemsPerPage") != fmt.Sprint(c.items) ||
			r.str("startIndex") != fmt.Sprint(c.startIx) || r.str("Resources.0.userName") != c.first {
			t.Errorf("%s: total %s items %s start %s first %q", c.query, r.str("totalResults"), r.str("itemsPerPage"), r.str("startIndex"), r.str("Resources.0.userName"))
		}
		if r.str("Resources") == "" {
			t.Errorf("%s: Resources missing (must be [] when empty): %s", c.query, r.body)
		}
	}
	e.must(400, e.do("GET", "/Users?count=abc", nil))
	e.must(400, e.do("GET", "/Users?startIndex=x", nil))
	bad := e.do("GET", "/Users?filter=userName+eq", nil)
	if bad.status != 400 || bad.str("scimType") != "invalidFilter" {
		t.Fatalf("bad filter: %d %s", bad.status, bad.body)
	}
	// count is capped at max_results.
	e2 := newEnv(t, envOpt{extra: []string{fmt.Sprintf("tokens: [%q]", testToken), "max_results: 3"}})
	for i := range 5 {
		e2.createUser(fmt.Sprintf("u%d", i), nil)
	}
	r := e2.must(200, e2.do("GET", "/Users?count=50", nil))
	if r.str("itemsPerPage") != "3" || r.str("totalResults") != "5" {
		t.Fatalf("cap: %s", r.body)
	}
	if dig(e2.must(200, e2.do("GET", "/ServiceProviderConfig", nil)).json, "filter.maxResults") != float64(3) {
		t.Fatal("maxResults not advertised")
	}
	// Empty lists are [] not null.
	g := e.must(200, e.do("GET", "/Groups", nil))
	if !strings.Contains(string(g.body), `"Resources":[]`) {
		t.Fatalf("empty list: %s", g.body)
	}
	// POST /.search
	s := e.must(200, e.do("POST", "/Users/.search", map[string]any{
		"schemas": []string{urnSearchRequest}, "filter": `userName ew "3"`, "attributes": []string{"userName"}, "count": 10}))
	if s.str("totalResults") != "1" || s.str("Resources.0.userName") != "user3" || s.str("Resources.0.emails") != "" {
		t.Fatalf(".search: %s", s.body)
	}
}

func TestFiltersOverHTTP(t *testing.T) {
	e := newEnv(t, envOpt{})
	jane := e.createUser("Jane.Doe@corp.example", map[string]any{
		"externalId":  "00u1",
		"displayName": "Jane Doe",
		"emails": []any{
			map[string]any{"value": "jane@corp.example", "type": "work", "primary": true},
			map[string]any{"value": "jane@home.example", "type": "home"},
		},
		URNEnterpriseUser: map[string]any{"employeeNumber": "1001", "department": "Sales"},
	})
	bob := e.createUser("bob", map[string]any{"externalId": "00u2", "displayName": "Bob", "active": false,
		"emails": []any{map[string]any{"value": "bob@corp.example", "type": "other"}}})
	e.clock.Advance(24 * 3600e9)
	carol := e.createUser("carol", map[string]any{"displayName": "Carol", "name": nil, "emails": nil})
	g := e.createGroup("Sales", jane, bob)
	e.createGroup("Empty")

	users := map[string]string{jane: "Jane.Doe@corp.example", bob: "bob", carol: "carol"}
	cases := []struct {
		filter string
		want   []string
	}{
		{`userName eq "jane.doe@CORP.example"`, []string{jane}},
		{`UserName EQ "bob"`, []string{bob}},
		{`userName eq "nobody"`, nil},
		{`userName ne "bob"`, []string{jane, carol}},
		{`userName co "doe"`, []string{jane}},
		{`userName sw "b"`, []string{bob}},
		{`userName ew ".example"`, []string{jane}},
		{`externalId eq "00u2"`, []string{bob}},
		{`externalId eq 00u1`, []string{jane}},
		{`externalId eq "00U1"`, nil}, // externalId is case-exact
		{`id eq "` + carol + `"`, []string{carol}},
		{`emails eq "jane@home.example"`, []string{jane}},
		{`emails.value co "corp"`, []string{jane, bob}},
		{`emails[type eq "work"].value eq "jane@corp.example"`, []string{jane}},
		{`emails[type eq "work" and primary eq true]`, []string{jane}},
		{`emails[type eq "home"].value eq "bob@corp.example"`, nil},
		{`displayName eq "CAROL"`, []string{carol}},
		// A range on an indexed attribute lists in that attribute's order.
		{`displayName pr`, []string{bob, carol, jane}},
		{`name.familyName pr`, []string{jane, bob}},
		{`not (name.familyName pr)`, []string{carol}},
		{`active eq false`, []string{bob}},
		{`active eq "False"`, []string{bob}},
		{`active eq true and emails pr`, []string{jane}},
		{`userName eq "bob" or userName eq "carol"`, []string{bob, carol}},
		{`userName eq "bob" or userName eq "carol" and displayName eq "x"`, []string{bob}},
		{`(userName eq "bob" or userName eq "carol") and displayName eq "Carol"`, []string{carol}},
		{`meta.lastModified gt "2026-03-01T12:00:00Z"`, []string{jane, bob, carol}},
		{`meta.created ge "2026-03-02T00:00:00Z"`, []string{carol}},
		{`meta.created lt 2026-03-02T00:00:00Z`, []string{jane, bob}},
		{`meta.Created gt 2015-10-10T14:38:21.8617979-07:00`, []string{jane, bob, carol}},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1001"`, []string{jane}},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "sales"`, []string{jane}},
		// RFC 7644 §3.4.2.2: the computed groups attribute is filterable.
		{`groups.value eq "` + g + `"`, []string{jane, bob}},
		{`unknownAttr eq "x"`, nil},
	}
	for _, c := range cases {
		r := e.do("GET", "/Users?filter="+urlQuery(c.filter), nil)
		if r.status != 200 {
			t.Errorf("%s: %d %s", c.filter, r.status, r.body)
			continue
		}
		var got []string
		for _, res := range asList(r.json["Resources"]) {
			got = append(got, res.(map[string]any)["id"].(string))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) || r.str("totalResults") != fmt.Sprint(len(c.want)) {
			names := func(ids []string) (out []string) {
				for _, id := range ids {
					out = append(out, users[id])
				}
				return
			}
			t.Errorf("%s: got %v, want %v", c.filter, names(got), names(c.want))
		}
	}
	// Groups.
	for _, c := range []struct {
		filter string
		want   int
	}{
		{`displayName eq "sales"`, 1},
		{`members.value eq "` + bob + `"`, 1},
		{`members eq "` + carol + `"`, 0},
		{`members pr`, 1},
		{`not (members pr)`, 1},
	} {
		r := e.must(200, e.do("GET", "/Groups?filter="+urlQuery(c.filter), nil))
		if r.str("totalResults") != fmt.Sprint(c.want) {
			t.Errorf("groups %s: %s", c.filter, r.str("totalResults"))
		}
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", `"`, "%22", "&", "%26", "+", "%2B", "#", "%23", "[", "%5B", "]", "%5D").Replace(s)
}

func TestProjection(t *testing.T) {
	e := newEnv(t, envOpt{})
	id := e.createUser("proj", map[string]any{"externalId": "x1", "title": "Boss",
		URNEnterpriseUser: map[string]any{"department": "Ops", "employeeNumber": "7"}})
	gid := e.createGroup("G", id)
	r := e.must(200, e.do("GET", "/Users/"+id+"?attributes=userName,name.givenName,emails[type+eq+%22work%22],urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", nil))
	if r.str("id") != id || r.str("userName") != "proj" || r.str("name.givenName") != "Given proj" || r.str("name.familyName") != "" ||
		r.str("emails.0.value") != "proj@example.com" || r.str("title") != "" || r.str("meta") != "" || r.str("schemas") == "" {
		t.Fatalf("attributes: %s", r.body)
	}
	if ext, _ := r.json[URNEnterpriseUser].(map[string]any); ext["department"] != "Ops" || ext["employeeNumber"] != nil {
		t.Fatalf("attributes on the extension: %s", r.body)
	}
	r = e.must(200, e.do("GET", "/Users/"+id+"?excludedAttributes=emails,name.familyName,id,meta,groups", nil))
	if r.str("emails") != "" || r.str("name.familyName") != "" || r.str("name.givenName") == "" || r.str("id") != id || r.str("meta") != "" || r.str("groups") != "" {
		t.Fatalf("excludedAttributes: %s", r.body)
	}
	// The stored resource is untouched by projections.
	full := e.must(200, e.do("GET", "/Users/"+id, nil))
	if full.str("name.familyName") != "Family" || full.str("emails.0.value") == "" || full.str("groups.0.value") != gid {
		t.Fatalf("projection changed the resource: %s", full.body)
	}
	gr := e.must(200, e.do("GET", "/Groups/"+gid+"?excludedAttributes=members", nil))
	if gr.str("members") != "" || gr.str("displayName") != "G" {
		t.Fatalf("group excludedAttributes: %s", gr.body)
	}
	l := e.must(200, e.do("GET", "/Groups?excludedAttributes=members&filter=displayName+eq+%22G%22", nil))
	if l.str("Resources.0.members") != "" || l.str("totalResults") != "1" {
		t.Fatalf("list excludedAttributes: %s", l.body)
	}
	// PATCH with attributes returns the resource (200) instead of 204.
	p := e.must(200, e.do("PATCH", "/Users/"+id+"?attributes=title", patchBody(op("replace", "title", "Chief"))))
	if p.str("title") != "Chief" || p.str("userName") != "" {
		t.Fatalf("PATCH with attributes: %s", p.body)
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	e := newEnv(t, envOpt{})
	id := e.createUser("leaky", map[string]any{"password": "Pa55word-in-body"})
	e.do("PATCH", "/Users/"+id, patchBody(op("replace", "password", "An0ther-Pa55word")))
	e.do("GET", "/Users", nil, "Authorization", "Bearer wrong-token-value")
	e.do("PUT", "/Users/"+id, map[string]any{"userName": "leaky", "password": "Th1rd-Pa55word"})
	logs := e.logText()
	for _, secret := range []string{testToken, "wrong-token-value", "Pa55word"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("%q in logs:\n%s", secret, logs)
		}
	}
	all, _ := e.store.KVList(context.Background(), "scim/corp/users")
	for _, v := range all {
		if strings.Contains(string(v), "Pa55word") {
			t.Fatalf("password stored: %s", v)
		}
	}
	if e.logs.Len() == 0 {
		t.Fatal("expected change log lines")
	}
}

func TestSeveralSourcesAreSeparate(t *testing.T) {
	store := memstore.New(memstore.Options{})
	a := newEnv(t, envOpt{store: store, name: "entra"})
	b := newEnv(t, envOpt{store: store, name: "okta", extra: []string{`tokens: ["okta-token"]`}})
	b.token = "okta-token"
	a.createUser("same.name", nil)
	b.createUser("same.name", nil) // no clash across sources
	if r := a.do("GET", "/Users", nil, "Authorization", "Bearer okta-token"); r.status != 401 {
		t.Fatalf("okta's token accepted by entra: %d", r.status)
	}
	if a.must(200, a.do("GET", "/Users", nil)).str("totalResults") != "1" {
		t.Fatal("sources share users")
	}
}

// RFC 7644 §3.4.3: POST /.search at the root searches every resource type;
// a filter on an attribute only users have matches no group.
func TestRootSearch(t *testing.T) {
	e := newEnv(t, envOpt{})
	u := e.createUser("rooty", nil)
	e.createGroup("rooters", u)
	all := e.must(200, e.do("POST", "/.search", map[string]any{"schemas": []string{urnSearchRequest}}))
	if all.str("totalResults") != "2" {
		t.Fatalf("root search: %s", all.body)
	}
	byName := e.must(200, e.do("POST", "/.search", map[string]any{"schemas": []string{urnSearchRequest}, "filter": `userName eq "rooty"`}))
	if byName.str("totalResults") != "1" || byName.str("Resources.0.userName") != "rooty" {
		t.Fatalf("root search by userName: %s", byName.body)
	}
	byGroup := e.must(200, e.do("POST", "/.search", map[string]any{"schemas": []string{urnSearchRequest}, "filter": `displayName eq "rooters"`}))
	if byGroup.str("totalResults") != "1" || byGroup.str("Resources.0.displayName") != "rooters" {
		t.Fatalf("root search by displayName: %s", byGroup.body)
	}
	e.must(400, e.do("POST", "/.search", map[string]any{"schemas": []string{urnSearchRequest}, "filter": `(((`}))
	e.must(405, e.do("GET", "/.search", nil))
}
