package scimclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/scimclient/scimfake"
	"go.uber.org/zap"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantLines(t *testing.T, f *scimfake.Server, want ...string) {
	t.Helper()
	got := reqLines(f)
	if !slices.Equal(got, want) {
		t.Fatalf("requests\n got: %q\nwant: %q", got, want)
	}
}

const entURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

func TestCreateSendsExactBody(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "enterprise_attributes: {department: dept, employeeNumber: empno, manager: mgr}")
	bossID := e.fake.SeedUser(map[string]any{"userName": "boss"})
	a := identity.Account{Key: "k-1", Username: "jo", Email: "jo@example.test", GivenName: "Jo", FamilyName: "Doe", DisplayName: "Jo Doe",
		Attributes: map[string]string{"dept": "IT", "empno": "42", "mgr": "boss", "unmapped": "x"}}
	if err := e.tg.(target.Creator).Create(ctxT(t), &a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	wantLines(t, e.fake,
		"GET /ServiceProviderConfig",
		`GET /Users filter=userName eq "jo"`,
		`GET /Users filter=userName eq "boss"`,
		"POST /Users")
	jsonEq(t, lastReq(t, e.fake, "POST", "/Users").Body, `{
		"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","`+entURN+`"],
		"externalId":"k-1","userName":"jo","active":true,
		"name":{"givenName":"Jo","familyName":"Doe"},"displayName":"Jo Doe",
		"emails":[{"value":"jo@example.test","type":"work","primary":true}],
		"`+entURN+`":{"department":"IT","employeeNumber":"42","manager":{"value":"`+bossID+`"}}}`)
	u, _ := e.fake.UserByName("jo")
	if a.Remote["id"] != u["id"] {
		t.Fatalf("Remote id %q, provider id %v", a.Remote["id"], u["id"])
	}
	for _, r := range e.fake.Requests() {
		if r.Auth != "Bearer "+testToken {
			t.Fatalf("%s %s sent Authorization %q", r.Method, r.Path, r.Auth)
		}
	}

	// Update sends only what changed; an emptied attribute is removed.
	before := a.Clone()
	a.GivenName = "Joanna"
	a.Attributes = map[string]string{"dept": "Sales", "mgr": "boss"}
	e.fake.ResetRequests()
	if err := e.tg.(target.Updater).Update(ctxT(t), before, &a); err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantLines(t, e.fake, "PATCH /Users/"+a.Remote["id"])
	jsonEq(t, lastReq(t, e.fake, "PATCH", "/Users/").Body, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"replace","path":"name.givenName","value":"Joanna"},
		{"op":"replace","path":"`+entURN+`:department","value":"Sales"},
		{"op":"remove","path":"`+entURN+`:employeeNumber"}]}`)

	// Suspend and unsuspend are active=false / active=true.
	e.fake.ResetRequests()
	if err := e.tg.(target.Suspender).Suspend(ctxT(t), &a); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	jsonEq(t, lastReq(t, e.fake, "PATCH", "/Users/").Body, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	if got, _ := observeFake(e.fake, "jo"); !got.Suspended {
		t.Fatal("not suspended in the provider")
	}

	// Read returns the account as the provider has it, manager as userName.
	got, err := e.t.Read(ctxT(t), a)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if got.GivenName != "Joanna" || !got.Suspended || got.Email != "jo@example.test" || got.Attributes["dept"] != "Sales" || got.Attributes["mgr"] != "boss" || got.Attributes["empno"] != "" {
		t.Fatalf("Read: %+v", got)
	}
}

func TestFilterValuesAreEscaped(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "")
	a := identity.Account{Key: "k", Username: `o"brien\x`, Email: "ob@example.test", Groups: []string{`Sales "EU" \ West`}}
	if err := e.tg.(target.Creator).Create(ctxT(t), &a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.tg.(target.GroupSetter).SetGroups(ctxT(t), identity.Account{}, &a); err != nil {
		t.Fatalf("SetGroups: %v", err)
	}
	var filters []string
	for _, r := range e.fake.Requests() {
		if f := r.Query.Get("filter"); f != "" {
			filters = append(filters, f)
		}
	}
	want := []string{
		`userName eq "o\"brien\\x"`,
		`members.value eq "` + a.Remote["id"] + `"`,
		`displayName eq "Sales \"EU\" \\ West"`,
	}
	if !slices.Equal(filters, want) {
		t.Fatalf("filters\n got: %q\nwant: %q", filters, want)
	}
	// The raw query is percent-encoded: quotes and backslashes never reach
	// the URL unencoded.
	for _, r := range e.fake.Requests() {
		if strings.ContainsAny(r.Query.Encode(), `"\ `) {
			t.Fatalf("query not encoded: %s", r.Query.Encode())
		}
	}
	if got, _ := observeFake(e.fake, `o"brien\x`); !slices.Equal(got.Groups, a.Groups) {
		t.Fatalf("groups in the provider: %v", got.Groups)
	}
	// Looking the user up again by the escaped value finds it.
	b := a.Clone()
	b.Remote = nil
	if _, err := e.t.Read(ctxT(t), b); err != nil {
		t.Fatalf("Read by userName: %v", err)
	}
}

func TestCreateAdoptsExistingUser(t *testing.T) {
	t.Run("found before create", func(t *testing.T) {
		e := newEnv(t, scimfake.Options{}, "")
		id := e.fake.SeedUser(map[string]any{"userName": "JO", "active": false, "displayName": "Old", "externalId": "okta-1"})
		a := identity.Account{Key: "k-1", Username: "jo", Email: "jo@example.test", GivenName: "Jo", FamilyName: "Doe", DisplayName: "Jo Doe"}
		if err := e.tg.(target.Creator).Create(ctxT(t), &a); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if a.Remote["id"] != id {
			t.Fatalf("Remote id %q, want the existing %q", a.Remote["id"], id)
		}
		wantLines(t, e.fake, "GET /ServiceProviderConfig", `GET /Users filter=userName eq "jo"`, "PATCH /Users/"+id)
		jsonEq(t, lastReq(t, e.fake, "PATCH", "/Users/").Body, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
			{"op":"replace","path":"userName","value":"jo"},
			{"op":"replace","path":"name.givenName","value":"Jo"},
			{"op":"replace","path":"name.familyName","value":"Doe"},
			{"op":"replace","path":"displayName","value":"Jo Doe"},
			{"op":"replace","path":"emails","value":[{"value":"jo@example.test","type":"work","primary":true}]},
			{"op":"replace","path":"active","value":true}]}`)
		u, _ := e.fake.User(id)
		if u["active"] != true || u["externalId"] != "okta-1" {
			t.Fatalf("adopted user: %v", u)
		}
	})
	t.Run("409 on create", func(t *testing.T) {
		e := newEnv(t, scimfake.Options{}, "")
		id := e.fake.SeedUser(map[string]any{"userName": "jo", "active": true})
		// The lookup misses (the user appeared between lookup and create).
		e.fake.FailNext("GET", "/Users", scimfake.Fault{Status: 200, Body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}`})
		a := identity.Account{Key: "k-1", Username: "jo", Email: "jo@example.test"}
		if err := e.tg.(target.Creator).Create(ctxT(t), &a); err != nil {
			t.Fatalf("Create: %v", err)
		}
		if a.Remote["id"] != id {
			t.Fatalf("Remote id %q, want the existing %q", a.Remote["id"], id)
		}
		wantLines(t, e.fake, "GET /ServiceProviderConfig", `GET /Users filter=userName eq "jo"`, "POST /Users",
			`GET /Users filter=userName eq "jo"`, "PATCH /Users/"+id)
		if n := len(e.fake.Users()); n != 1 {
			t.Fatalf("%d users in the provider, want 1", n)
		}
	})
	t.Run("409 on another attribute", func(t *testing.T) {
		e := newEnv(t, scimfake.Options{}, "")
		e.fake.FailNext("POST", "/Users", scimfake.Fault{Status: 409, Body: `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"email in use"}`})
		a := identity.Account{Key: "k-1", Username: "jo", Email: "jo@example.test"}
		err := e.tg.(target.Creator).Create(ctxT(t), &a)
		if target.KindOf(err) != target.KindPermanent || !strings.Contains(err.Error(), `scimclient: create "jo": 409 Conflict: uniqueness: email in use`) {
			t.Fatalf("Create: %v (kind %v)", err, target.KindOf(err))
		}
	})
}

func TestPutWhenPatchUnsupported(t *testing.T) {
	e := newEnv(t, scimfake.Options{NoPatch: true}, "role_attribute: userType")
	id := e.fake.SeedUser(map[string]any{"userName": "jo", "active": true, "nickName": "keep me", "schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}})
	gid := e.fake.SeedGroup("Eng")
	a := identity.Account{Key: "k", Username: "jo", Remote: map[string]string{"id": id}, Exists: true}
	if err := e.tg.(target.Suspender).Suspend(ctxT(t), &a); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	wantLines(t, e.fake, "GET /ServiceProviderConfig", "GET /Users/"+id, "PUT /Users/"+id)
	jsonEq(t, lastReq(t, e.fake, "PUT", "/Users/").Body, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"`+id+`","userName":"jo","active":false,"nickName":"keep me"}`)

	e.fake.ResetRequests()
	a.Role = "Contractor"
	if err := e.tg.(target.RoleSetter).SetRole(ctxT(t), &a); err != nil {
		t.Fatalf("SetRole: %v", err)
	}
	if u, _ := e.fake.User(id); u["userType"] != "Contractor" || u["active"] != false {
		t.Fatalf("after SetRole: %v", u)
	}

	e.fake.ResetRequests()
	a.Groups = []string{"Eng"}
	if err := e.tg.(target.GroupSetter).SetGroups(ctxT(t), identity.Account{Groups: []string{"Other"}, Exists: true}, &a); err != nil {
		t.Fatalf("SetGroups: %v", err)
	}
	wantLines(t, e.fake, `GET /Groups filter=displayName eq "Eng"`, "GET /Groups/"+gid, "PUT /Groups/"+gid, `GET /Groups filter=displayName eq "Other"`)
	jsonEq(t, lastReq(t, e.fake, "PUT", "/Groups/").Body, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"id":"`+gid+`","displayName":"Eng","members":[{"value":"`+id+`"}]}`)
	for _, r := range e.fake.Requests() {
		if r.Method == "PATCH" {
			t.Fatal("PATCH sent although ServiceProviderConfig says unsupported")
		}
	}
}

func TestSwitchesToPutWhenPatchIsRefused(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "")
	id := e.fake.SeedUser(map[string]any{"userName": "jo", "active": true})
	a := identity.Account{Username: "jo", Remote: map[string]string{"id": id}}
	e.fake.FailNext("PATCH", "/Users", scimfake.Fault{Status: 501, Body: `{"status":"501","detail":"no PATCH here"}`})
	if err := e.tg.(target.Suspender).Suspend(ctxT(t), &a); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	if err := e.tg.(target.Suspender).Unsuspend(ctxT(t), &a); err != nil {
		t.Fatalf("Unsuspend: %v", err)
	}
	wantLines(t, e.fake, "GET /ServiceProviderConfig", "PATCH /Users/"+id, "GET /Users/"+id, "PUT /Users/"+id, "GET /Users/"+id, "PUT /Users/"+id)

	// With patch: on the refusal is an error, not a silent switch.
	e2 := newEnv(t, scimfake.Options{}, "patch: on")
	id2 := e2.fake.SeedUser(map[string]any{"userName": "jo", "active": true})
	e2.fake.FailNext("PATCH", "/Users", scimfake.Fault{Status: 405})
	err := e2.tg.(target.Suspender).Suspend(ctxT(t), &identity.Account{Username: "jo", Remote: map[string]string{"id": id2}})
	if target.KindOf(err) != target.KindPermanent {
		t.Fatalf("Suspend with patch on and 405: %v (kind %v)", err, target.KindOf(err))
	}
}

func TestListFollowsTotalResults(t *testing.T) {
	// No ServiceProviderConfig: the client asks for 100 and the provider
	// answers 2 at a time; the client must follow totalResults.
	e := newEnv(t, scimfake.Options{NoSPC: true, MaxResults: 2}, "manage_groups: false")
	for i := range 5 {
		e.fake.SeedUser(map[string]any{"userName": fmt.Sprintf("u%d", i), "active": i%2 == 0})
	}
	list, err := e.tg.(target.Lister).List(ctxT(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 5 || list[4].Username != "u4" || !list[1].Suspended || list[0].Suspended {
		t.Fatalf("List: %+v", list)
	}
	var pages []string
	for _, r := range e.fake.Requests() {
		if r.Path == "/Users" {
			pages = append(pages, r.Query.Get("startIndex")+"/"+r.Query.Get("count"))
		}
	}
	if !slices.Equal(pages, []string{"1/100", "3/100", "5/100"}) {
		t.Fatalf("pages %v", pages)
	}

	// page_size and the provider's maxResults bound count.
	for _, c := range []struct {
		settings string
		max      int
		want     string
	}{{"page_size: 2", 100, "2"}, {"", 3, "3"}} {
		e := newEnv(t, scimfake.Options{MaxResults: c.max}, c.settings)
		for i := range 4 {
			e.fake.SeedUser(map[string]any{"userName": fmt.Sprintf("u%d", i)})
		}
		list, err := e.tg.(target.Lister).List(ctxT(t))
		if err != nil || len(list) != 4 {
			t.Fatalf("List: %d accounts, %v", len(list), err)
		}
		if got := lastReq(t, e.fake, "GET", "/Users").Query.Get("count"); got != c.want {
			t.Fatalf("%q: count %s, want %s", c.settings, got, c.want)
		}
	}
}

func TestListStopsWhenPagingDoesNotAdvance(t *testing.T) {
	f, srv := startFake(t, scimfake.Options{MaxResults: 2}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			q.Del("startIndex") // a provider that ignores startIndex
			r.URL.RawQuery = q.Encode()
			h.ServeHTTP(w, r)
		})
	})
	for i := range 3 {
		f.SeedUser(map[string]any{"userName": fmt.Sprintf("u%d", i)})
	}
	e := &env{fake: f, srv: srv}
	e.build(t, "manage_groups: false")
	_, err := e.tg.(target.Lister).List(ctxT(t))
	if target.KindOf(err) != target.KindPermanent || !strings.Contains(err.Error(), "pagination does not advance") {
		t.Fatalf("List: %v", err)
	}
}

func TestErrorClassification(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "")
	id := e.fake.SeedUser(map[string]any{"userName": "jo"})
	a := identity.Account{Username: "jo", Remote: map[string]string{"id": id}}
	if err := e.t.Open(ctxT(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	in30 := e.now.Add(30 * time.Second).Format(http.TimeFormat)
	cases := []struct {
		name  string
		fault scimfake.Fault
		kind  target.Kind
		after time.Duration
	}{
		{"429 seconds", scimfake.Fault{Status: 429, Header: map[string]string{"Retry-After": "7"}}, target.KindRateLimited, 7 * time.Second},
		{"429 http date", scimfake.Fault{Status: 429, Header: map[string]string{"Retry-After": in30}}, target.KindRateLimited, 30 * time.Second},
		{"429 no header", scimfake.Fault{Status: 429}, target.KindRateLimited, 0},
		{"503 retry-after", scimfake.Fault{Status: 503, Header: map[string]string{"Retry-After": "2"}}, target.KindRateLimited, 2 * time.Second},
		{"503", scimfake.Fault{Status: 503}, target.KindRetryable, 0},
		{"500", scimfake.Fault{Status: 500, Body: "boom"}, target.KindRetryable, 0},
		{"400", scimfake.Fault{Status: 400, Body: `{"status":"400","scimType":"invalidValue","detail":"bad"}`}, target.KindPermanent, 0},
		{"403", scimfake.Fault{Status: 403}, target.KindPermanent, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.fake.FailNext("PATCH", "/Users", c.fault)
			err := e.tg.(target.Suspender).Suspend(ctxT(t), &a)
			if k := target.KindOf(err); k != c.kind {
				t.Fatalf("kind %v, want %v (%v)", k, c.kind, err)
			}
			if d := target.RetryAfterOf(err); d != c.after {
				t.Fatalf("retry after %v, want %v", d, c.after)
			}
			if !strings.HasPrefix(err.Error(), `scimclient: suspend "jo": `+fmt.Sprint(c.fault.Status)) {
				t.Fatalf("message %q", err)
			}
		})
	}
	t.Run("missing user", func(t *testing.T) {
		err := e.tg.(target.Suspender).Suspend(ctxT(t), &identity.Account{Username: "nobody"})
		if target.KindOf(err) != target.KindNotFound {
			t.Fatalf("kind %v (%v)", target.KindOf(err), err)
		}
	})
	t.Run("stale id", func(t *testing.T) {
		b := identity.Account{Username: "jo", Remote: map[string]string{"id": "gone"}}
		if err := e.tg.(target.Suspender).Suspend(ctxT(t), &b); err != nil {
			t.Fatalf("Suspend: %v", err)
		}
		if b.Remote["id"] != id {
			t.Fatalf("Remote id %q, want %q", b.Remote["id"], id)
		}
		if _, err := e.t.Read(ctxT(t), identity.Account{Username: "nobody", Remote: map[string]string{"id": "gone"}}); target.KindOf(err) != target.KindNotFound {
			t.Fatalf("Read of a missing user: %v", err)
		}
	})
	t.Run("dropped connection on create is uncertain", func(t *testing.T) {
		f, srv := startFake(t, scimfake.Options{}, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					c, _, _ := w.(http.Hijacker).Hijack()
					c.Close()
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		e := &env{fake: f, srv: srv}
		e.build(t, "")
		err := e.tg.(target.Creator).Create(ctxT(t), &identity.Account{Username: "jo"})
		if target.KindOf(err) != target.KindUncertain {
			t.Fatalf("kind %v (%v)", target.KindOf(err), err)
		}
	})
	t.Run("refused connection is retryable", func(t *testing.T) {
		f, srv := startFake(t, scimfake.Options{}, nil)
		e := &env{fake: f, srv: srv}
		e.build(t, "")
		srv.Close()
		err := e.tg.(target.Creator).Create(ctxT(t), &identity.Account{Username: "jo"})
		if target.KindOf(err) != target.KindRetryable {
			t.Fatalf("kind %v (%v)", target.KindOf(err), err)
		}
	})
}

func TestGroupMembership(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "")
	gs := e.tg.(target.GroupSetter)
	u1 := e.fake.SeedUser(map[string]any{"userName": "u1"})
	u2 := e.fake.SeedUser(map[string]any{"userName": "u2"})
	oldID := e.fake.SeedGroup("Old", u2)
	if err := e.t.Open(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	patch := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[%s]}`

	// u1: the cache knows no groups, so the current ones are read first;
	// the missing group is created, then the member added.
	a1 := identity.Account{Username: "u1", Remote: map[string]string{"id": u1}, Groups: []string{"Eng"}}
	e.fake.ResetRequests()
	if err := gs.SetGroups(ctxT(t), identity.Account{Username: "u1", Exists: true}, &a1); err != nil {
		t.Fatalf("SetGroups u1: %v", err)
	}
	eng, _ := e.fake.GroupByName("Eng")
	engID := str(eng["id"])
	wantLines(t, e.fake, "GET /Users/"+u1, `GET /Groups filter=members.value eq "`+u1+`"`, `GET /Groups filter=displayName eq "Eng"`, "POST /Groups", "PATCH /Groups/"+engID)
	jsonEq(t, lastReq(t, e.fake, "POST", "/Groups").Body, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Eng"}`)
	jsonEq(t, lastReq(t, e.fake, "PATCH", "/Groups/").Body, fmt.Sprintf(patch, `{"op":"add","path":"members","value":[{"value":"`+u1+`"}]}`))

	// u2: before.Groups is trusted; Eng's id is cached; Old is looked up.
	a2 := identity.Account{Username: "u2", Remote: map[string]string{"id": u2}, Groups: []string{"Eng"}}
	e.fake.ResetRequests()
	if err := gs.SetGroups(ctxT(t), identity.Account{Username: "u2", Groups: []string{"Old"}, Exists: true}, &a2); err != nil {
		t.Fatalf("SetGroups u2: %v", err)
	}
	wantLines(t, e.fake, "PATCH /Groups/"+engID, `GET /Groups filter=displayName eq "Old"`, "PATCH /Groups/"+oldID)
	jsonEq(t, lastReq(t, e.fake, "PATCH", "/Groups/"+oldID).Body, fmt.Sprintf(patch, `{"op":"remove","path":"members[value eq \"`+u2+`\"]"}`))
	if got := e.fake.MemberOf(u2); !slices.Equal(got, []string{"Eng"}) {
		t.Fatalf("u2 is in %v", got)
	}

	// Removing from a group that no longer exists is a no-op.
	e.fake.ResetRequests()
	a2.Groups = []string{"Eng"}
	if err := gs.SetGroups(ctxT(t), identity.Account{Groups: []string{"Eng", "Ghost"}, Exists: true}, &a2); err != nil {
		t.Fatalf("SetGroups: %v", err)
	}
	wantLines(t, e.fake, `GET /Groups filter=displayName eq "Ghost"`)

	// A cached group id gone stale (the group was deleted) is looked up and
	// the group created again.
	e.fake.DeleteGroup(engID)
	e.fake.ResetRequests()
	if err := gs.SetGroups(ctxT(t), identity.Account{Groups: []string{"Other"}, Exists: true}, &a1); err != nil {
		t.Fatalf("SetGroups after deletion: %v", err)
	}
	if got := e.fake.MemberOf(u1); !slices.Equal(got, []string{"Eng"}) {
		t.Fatalf("u1 is in %v", got)
	}
	if lines := reqLines(e.fake); lines[0] != "PATCH /Groups/"+engID || !slices.Contains(lines, "POST /Groups") {
		t.Fatalf("requests %v", lines)
	}

	// List reports membership from one scan of the groups.
	list, err := e.tg.(target.Lister).List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string][]string{}
	for _, a := range list {
		groups[a.Username] = a.Groups
	}
	if !slices.Equal(groups["u1"], []string{"Eng"}) || len(groups["u2"]) != 0 || len(list) != 2 {
		t.Fatalf("List groups: %v", groups)
	}
}

func TestCapabilities(t *testing.T) {
	cases := []struct {
		settings    string
		role, group bool
	}{
		{"", false, true},
		{"role_attribute: roles", true, true},
		{"role_attribute: urn:acme:2.0:User:role\nmanage_groups: false", true, false},
		{"manage_groups: false", false, false},
	}
	for _, c := range cases {
		tg, err := build(t, "base_url: https://scim.example.test/v2\nauth: {bearer_token: x}\n"+c.settings, target.Deps{})
		if err != nil {
			t.Fatalf("%q: %v", c.settings, err)
		}
		_, role := tg.(target.RoleSetter)
		_, group := tg.(target.GroupSetter)
		if role != c.role || group != c.group {
			t.Fatalf("%q: role %v group %v, want %v %v", c.settings, role, group, c.role, c.group)
		}
		for _, act := range []target.Action{target.ActCreate, target.ActUpdate, target.ActSuspend, target.ActUnsuspend, target.ActDelete} {
			if !target.Supports(tg, act) {
				t.Fatalf("%q: does not support %s", c.settings, act)
			}
		}
		if _, ok := tg.(target.Lister); !ok {
			t.Fatal("not a Lister")
		}
		if _, ok := tg.(target.Reader); !ok {
			t.Fatal("not a Reader")
		}
		if _, ok := tg.(target.Opener); !ok {
			t.Fatal("not an Opener")
		}
		if tg.Name() != "acme" || tg.Type() != "scim" {
			t.Fatalf("Name %q Type %q", tg.Name(), tg.Type())
		}
	}
}

func TestRoleAttributes(t *testing.T) {
	ext := "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
	cases := []struct {
		attr string
		want string
	}{
		{"roles", `[{"value":"admin","primary":true}]`},
		{"userType", `"admin"`},
		{ext + ":role", `"admin"`},
	}
	for _, c := range cases {
		e := newEnv(t, scimfake.Options{}, "role_attribute: "+c.attr)
		id := e.fake.SeedUser(map[string]any{"userName": "jo"})
		a := identity.Account{Username: "jo", Role: "admin", Remote: map[string]string{"id": id}}
		if err := e.tg.(target.RoleSetter).SetRole(ctxT(t), &a); err != nil {
			t.Fatalf("%s: SetRole: %v", c.attr, err)
		}
		jsonEq(t, lastReq(t, e.fake, "PATCH", "/Users/").Body, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"`+c.attr+`","value":`+c.want+`}]}`)
		got, err := e.t.Read(ctxT(t), a)
		if err != nil || got.Role != "admin" {
			t.Fatalf("%s: Read role %q, %v", c.attr, got.Role, err)
		}
	}
}

func TestManagerNotFoundIsLeftUnset(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "")
	a := identity.Account{Username: "jo", Attributes: map[string]string{"manager": "ghost", "department": "IT"}}
	if err := e.tg.(target.Creator).Create(ctxT(t), &a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	u, _ := e.fake.UserByName("jo")
	ent, _ := u[entURN].(map[string]any)
	if ent["department"] != "IT" || ent["manager"] != nil {
		t.Fatalf("enterprise extension %v", ent)
	}
	if e.logs.FilterMessage("manager not found in the provider; manager left unset").Len() != 1 {
		t.Fatal("no warning logged for the missing manager")
	}
}

func TestUserSchemaExtensionsAndExtensionAttributes(t *testing.T) {
	ext := "urn:ietf:params:scim:schemas:extension:acme:2.0:User"
	e := newEnv(t, scimfake.Options{}, "enterprise_attributes: {department: dept}\nuser_schema_extensions: ["+ext+"]\nextension_attributes: {\""+ext+":badge\": badge}")
	a := identity.Account{Key: "k", Username: "jo", Attributes: map[string]string{"badge": "B-7", "department": "ignored"}}
	if err := e.tg.(target.Creator).Create(ctxT(t), &a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	jsonEq(t, lastReq(t, e.fake, "POST", "/Users").Body, `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","`+ext+`"],
		"externalId":"k","userName":"jo","active":true,"`+ext+`":{"badge":"B-7"}}`)
	got, err := e.t.Read(ctxT(t), a)
	if err != nil || got.Attributes["badge"] != "B-7" || len(got.Attributes) != 1 {
		t.Fatalf("Read: %+v %v", got.Attributes, err)
	}
}

func TestOAuth2(t *testing.T) {
	const secret = "cs-0a1b2c3d4e5f"
	f, srv := startFake(t, scimfake.Options{ClientID: "dirsync", ClientSecret: secret}, nil)
	e := &env{fake: f, srv: srv}
	e.build(t, "auth:\n  oauth2:\n    token_url: "+srv.URL+"/oauth/token\n    client_id: dirsync\n    client_secret: "+secret+"\n    scopes: [scim.write]")
	a := identity.Account{Key: "k", Username: "jo"}
	if err := e.tg.(target.Creator).Create(ctxT(t), &a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := e.tg.(target.Suspender).Suspend(ctxT(t), &a); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	if n := f.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests, want 1 (the token is reused)", n)
	}
	for _, r := range f.Requests() {
		if !strings.HasPrefix(r.Auth, "Bearer at-") {
			t.Fatalf("%s %s sent Authorization %q", r.Method, r.Path, r.Auth)
		}
	}

	// Wrong credentials: a permanent error that does not carry the secret.
	e2 := &env{fake: f, srv: srv}
	e2.build(t, "auth:\n  oauth2:\n    token_url: "+srv.URL+"/oauth/token\n    client_id: dirsync\n    client_secret: wrong-"+secret)
	err := e2.t.Open(ctxT(t))
	if target.KindOf(err) != target.KindPermanent || !strings.Contains(err.Error(), "oauth2 token: 401") {
		t.Fatalf("Open with a wrong secret: %v (kind %v)", err, target.KindOf(err))
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error leaks the secret: %v", err)
	}
}

// TestSecretsNeverLeak makes a provider and a token endpoint echo the
// credentials they received back in error bodies, and checks that no error
// text and no log line carries them.
func TestSecretsNeverLeak(t *testing.T) {
	const secret = "cs-SECRET-77f0e1"
	var issued []string
	echo := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/oauth/token" && r.URL.Query().Get("fail") == "1" {
				_ = r.ParseForm()
				w.WriteHeader(400)
				fmt.Fprintf(w, `{"error":"invalid_request","error_description":"bad secret %s %s"}`, r.Form.Get("client_secret"), r.Header.Get("Authorization"))
				return
			}
			if r.Method == http.MethodPatch {
				issued = append(issued, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
				w.WriteHeader(400)
				fmt.Fprintf(w, `{"status":"400","detail":"you sent Authorization: %s"}`, r.Header.Get("Authorization"))
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	check := func(t *testing.T, e *env, err error, secrets ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("expected an error")
		}
		var texts []string
		texts = append(texts, err.Error(), fmt.Sprintf("%+v %#v", err, err))
		for _, l := range e.logs.All() {
			texts = append(texts, l.Message, fmt.Sprint(l.ContextMap()))
		}
		for _, s := range secrets {
			for _, txt := range texts {
				if s != "" && strings.Contains(txt, s) {
					t.Fatalf("secret %q leaked: %s", s, txt)
				}
			}
		}
	}

	t.Run("bearer", func(t *testing.T) {
		f, srv := startFake(t, scimfake.Options{}, echo)
		id := f.SeedUser(map[string]any{"userName": "jo"})
		e := &env{fake: f, srv: srv}
		e.build(t, "")
		err := e.tg.(target.Suspender).Suspend(ctxT(t), &identity.Account{Username: "jo", Remote: map[string]string{"id": id}})
		if !strings.Contains(fmt.Sprint(err), "you sent Authorization: Bearer [REDACTED]") {
			t.Fatalf("error: %v", err)
		}
		check(t, e, err, testToken)
	})
	t.Run("oauth2 access token", func(t *testing.T) {
		f, srv := startFake(t, scimfake.Options{ClientID: "dirsync", ClientSecret: secret}, echo)
		id := f.SeedUser(map[string]any{"userName": "jo"})
		e := &env{fake: f, srv: srv}
		e.build(t, "auth:\n  oauth2:\n    token_url: "+srv.URL+"/oauth/token\n    client_id: dirsync\n    client_secret: "+secret)
		err := e.tg.(target.Suspender).Suspend(ctxT(t), &identity.Account{Username: "jo", Remote: map[string]string{"id": id}})
		if len(issued) == 0 {
			t.Fatal("no PATCH reached the provider")
		}
		check(t, e, err, secret, issued[len(issued)-1])
	})
	t.Run("token endpoint echoes the client secret", func(t *testing.T) {
		for _, style := range []string{"params", "header"} {
			f, srv := startFake(t, scimfake.Options{ClientID: "dirsync", ClientSecret: secret}, echo)
			e := &env{fake: f, srv: srv}
			e.build(t, "auth:\n  oauth2:\n    token_url: "+srv.URL+"/oauth/token?fail=1\n    client_id: dirsync\n    auth_style: "+style+"\n    client_secret: "+secret)
			err := e.tg.(target.Creator).Create(ctxT(t), &identity.Account{Username: "jo"})
			check(t, e, err, secret, basic("dirsync", secret))
		}
	})
	t.Run("config errors", func(t *testing.T) {
		_, err := build(t, "base_url: nope\nauth:\n  bearer_token: "+testToken+"\n  oauth2: {client_secret: "+secret+"}", target.Deps{Logger: zap.NewNop()})
		if err == nil || strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), secret) {
			t.Fatalf("config error: %v", err)
		}
	})
}

func basic(id, secret string) string {
	r, _ := http.NewRequest("GET", "http://x", nil)
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

func TestRenameWithoutCachedID(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "")
	id := e.fake.SeedUser(map[string]any{"userName": "jdoe"})
	before := identity.Account{Key: "k", Username: "jdoe", Exists: true}
	a := identity.Account{Key: "k", Username: "jane.doe", Exists: true}
	if err := e.tg.(target.Updater).Update(ctxT(t), before, &a); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if a.Remote["id"] != id {
		t.Fatalf("Remote %v, want id %s", a.Remote, id)
	}
	if u, _ := e.fake.User(id); u["userName"] != "jane.doe" {
		t.Fatalf("userName %v", u["userName"])
	}
	// An id in the cached account is used as is.
	e.fake.ResetRequests()
	b := identity.Account{Key: "k", Username: "jane.doe", GivenName: "Jane"}
	if err := e.tg.(target.Updater).Update(ctxT(t), identity.Account{Username: "jane.doe", Remote: map[string]string{"id": id}}, &b); err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantLines(t, e.fake, "PATCH /Users/"+id)
}

// TestConcurrentJoinsCreateTheGroupOnce runs many accounts joining one new
// group at once (the engine applies with concurrency): the group is
// created once and every account ends up a member.
func TestConcurrentJoinsCreateTheGroupOnce(t *testing.T) {
	e := newEnv(t, scimfake.Options{}, "")
	gs := e.tg.(target.GroupSetter)
	const n = 12
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.fake.SeedUser(map[string]any{"userName": fmt.Sprintf("u%d", i)})
	}
	errs := make(chan error, n)
	for i := range n {
		go func() {
			a := identity.Account{Username: fmt.Sprintf("u%d", i), Remote: map[string]string{"id": ids[i]}, Groups: []string{"New", "Other"}}
			errs <- gs.SetGroups(ctxT(t), identity.Account{Groups: []string{"Old"}, Exists: true}, &a)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("SetGroups: %v", err)
		}
	}
	posts := 0
	for _, r := range e.fake.Requests() {
		if r.Method == "POST" && r.Path == "/Groups" {
			posts++
		}
	}
	if posts != 2 {
		t.Fatalf("%d group creations, want 2", posts)
	}
	for _, id := range ids {
		if got := e.fake.MemberOf(id); !slices.Equal(got, []string{"New", "Other"}) {
			t.Fatalf("%s is in %v", id, got)
		}
	}
}
