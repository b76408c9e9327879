package scimpull

import (
	"context"
	"errors"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/scimclient/scimfake"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
)

const token = "pull-tok-2718"

func user(i int, active bool) map[string]any {
	return map[string]any{
		"schemas":     []any{scimfake.SchemaUser, scimfake.SchemaEnterprise},
		"userName":    fmt.Sprintf("user%03d", i),
		"externalId":  fmt.Sprintf("ext-%03d", i),
		"active":      active,
		"displayName": fmt.Sprintf("User %d", i),
		"name":        map[string]any{"givenName": "User", "familyName": fmt.Sprint(i)},
		"emails": []any{
			map[string]any{"value": fmt.Sprintf("home%03d@example.test", i), "type": "home"},
			map[string]any{"value": fmt.Sprintf("user%03d@example.test", i), "type": "work", "primary": true},
		},
		scimfake.SchemaEnterprise: map[string]any{"employeeNumber": fmt.Sprint(1000 + i), "department": "ops", "manager": map[string]any{"value": "boss"}},
		"meta":                    map[string]any{"lastModified": "2026-12-01T10:00:00Z"},
	}
}

func newSource(t *testing.T, base string, extra func(*Settings)) *Source {
	t.Helper()
	s := Settings{URL: base, Token: config.NewSecret(token), PageSize: 100}
	off := config.Duration(0)
	s.PollInterval = &off
	if extra != nil {
		extra(&s)
	}
	src, err := New("hr-scim", s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// fakeProvider serves the project's SCIM fake behind an optional rewrite of
// list answers (for the faults a real provider shows).
type fakeProvider struct {
	fake    *scimfake.Server
	srv     *httptest.Server
	mu      sync.Mutex
	rewrite func(r *http.Request, page map[string]any)
	pages   atomic.Int32
}

func startFake(t *testing.T, opts scimfake.Options) *fakeProvider {
	t.Helper()
	opts.Token = token
	p := &fakeProvider{fake: scimfake.New(opts)}
	h := p.fake.Handler()
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		rw := p.rewrite
		p.mu.Unlock()
		isList := r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/Users") || strings.HasSuffix(r.URL.Path, "/Groups"))
		if isList {
			p.pages.Add(1)
		}
		if rw == nil || !isList {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var page map[string]any
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &page) != nil {
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		rw(r, page)
		w.Header().Set("Content-Type", "application/scim+json")
		_ = json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeProvider) base() string { return p.srv.URL + p.fake.Prefix() }

func (p *fakeProvider) setRewrite(f func(r *http.Request, page map[string]any)) {
	p.mu.Lock()
	p.rewrite = f
	p.mu.Unlock()
}

func TestPullPagesAndMapsUsersAndGroups(t *testing.T) {
	p := startFake(t, scimfake.Options{})
	var ids []string
	for i := range 250 {
		ids = append(ids, p.fake.SeedUser(user(i, i != 7)))
	}
	inner := p.fake.SeedGroup("ops-oncall", ids[1], ids[2])
	p.fake.SeedGroup("staff", append(slices.Clone(ids[:10]), inner)...) // nested group
	src := newSource(t, p.base(), nil)
	snap, err := src.Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Users) != 250 || len(snap.Groups) != 2 {
		t.Fatalf("%d users, %d groups; want 250, 2", len(snap.Users), len(snap.Groups))
	}
	if got := p.pages.Load(); got != 4 { // 3 pages of users, 1 of groups
		t.Errorf("%d list requests, want 4 (3 user pages of 100, 1 group page)", got)
	}
	byName := map[string]identity.User{}
	for _, u := range snap.Users {
		byName[u.Username] = u
	}
	u1 := byName["user001"]
	if u1.Key != ids[1] || u1.Email != "user001@example.test" || !u1.Active || u1.GivenName != "User" || u1.DisplayName != "User 1" {
		t.Errorf("user001 = %+v", u1)
	}
	if want := []string{"ops-oncall", "staff"}; !slices.Equal(u1.Groups, want) {
		t.Errorf("user001 groups %v, want %v (nested group resolved)", u1.Groups, want)
	}
	if a := u1.Attributes; a["externalId"] != "ext-001" || a["employeeNumber"] != "1001" || a["department"] != "ops" || a["manager"] != "boss" {
		t.Errorf("user001 attributes %v", a)
	}
	if byName["user007"].Active {
		t.Error("user007 is active=false at the provider but active in the snapshot")
	}
	if g := byName["user050"].Groups; len(g) != 0 {
		t.Errorf("user050 groups %v, want none", g)
	}
}

func TestPullMembershipFromUserGroups(t *testing.T) {
	p := startFake(t, scimfake.Options{UserGroups: true})
	a := p.fake.SeedUser(user(1, true))
	p.fake.SeedUser(user(2, true))
	p.fake.SeedGroup("vpn", a)
	src := newSource(t, p.base(), func(s *Settings) { s.Groups = GroupsUserGroups })
	snap, err := src.Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range snap.Users {
		want := []string(nil)
		if u.Key == a {
			want = []string{"vpn"}
		}
		if !slices.Equal(u.Groups, want) {
			t.Errorf("%s groups %v, want %v", u.Username, u.Groups, want)
		}
	}
	for _, r := range p.fake.Requests() {
		if r.Path == "/Groups" {
			t.Error("groups: user_groups read /Groups")
		}
	}
}

func TestPullWaitsForRetryAfter(t *testing.T) {
	p := startFake(t, scimfake.Options{})
	for i := range 5 {
		p.fake.SeedUser(user(i, true))
	}
	p.fake.FailNext("GET", "/Users", scimfake.Fault{Status: 429, Header: map[string]string{"Retry-After": "1"}, Body: `{"status":"429","detail":"slow down"}`})
	src := newSource(t, p.base(), nil)
	start := time.Now()
	snap, err := src.Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Users) != 5 {
		t.Fatalf("%d users", len(snap.Users))
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("pull took %v: Retry-After: 1 was not honoured", took)
	}
	n := 0
	for _, r := range p.fake.Requests() {
		if r.Method == "GET" && r.Path == "/Users" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d /Users requests, want 2 (the 429, then the retry)", n)
	}
}

func TestPullRefusesAnInconsistentProvider(t *testing.T) {
	cases := []struct {
		name    string
		rewrite func(r *http.Request, page map[string]any)
		want    string
	}{
		{"page short of totalResults", func(r *http.Request, page map[string]any) {
			if i, _ := strconv.Atoi(r.URL.Query().Get("startIndex")); i > 200 {
				page["Resources"] = []any{} // the provider stops short of its own count
			}
		}, "short read"},
		{"totalResults changes while paging", func(r *http.Request, page map[string]any) {
			if r.URL.Query().Get("startIndex") == "201" {
				page["totalResults"] = 260.0
			}
		}, "totalResults changed"},
		{"count ignored", func(r *http.Request, page map[string]any) {
			if strings.HasSuffix(r.URL.Path, "/Users") {
				res := page["Resources"].([]any)
				page["Resources"] = append(res, res[0])
			}
		}, "ignores count"},
		{"resource repeated across pages", func(r *http.Request, page map[string]any) {
			if r.URL.Query().Get("startIndex") == "101" {
				res := page["Resources"].([]any)
				res[5] = res[4]
			}
		}, "returned twice"},
		{"no totalResults", func(r *http.Request, page map[string]any) { delete(page, "totalResults") }, "no totalResults"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startFake(t, scimfake.Options{})
			for i := range 250 {
				p.fake.SeedUser(user(i, true))
			}
			p.setRewrite(tc.rewrite)
			_, err := newSource(t, p.base(), nil).Pull(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Pull error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestPullFailsOnRefusedCredentialsWithoutRetrying(t *testing.T) {
	p := startFake(t, scimfake.Options{})
	p.fake.SeedUser(user(1, true))
	src := newSource(t, p.base(), func(s *Settings) { s.Token = config.NewSecret("wrong") })
	_, err := src.Pull(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Pull error %v, want 401", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error names the token: %v", err)
	}
}

func TestPullWithOAuthClientCredentials(t *testing.T) {
	p := startFake(t, scimfake.Options{ClientID: "dirsync", ClientSecret: "cc-secret"})
	p.fake.SeedUser(user(1, true))
	s := Settings{URL: p.base(), OAuth: &OAuth{TokenURL: p.srv.URL + "/oauth/token", ClientID: "dirsync", ClientSecret: config.NewSecret("cc-secret")}}
	off := config.Duration(0)
	s.PollInterval = &off
	src, err := New("hr", s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Pull(context.Background())
	if err != nil || len(snap.Users) != 1 {
		t.Fatalf("Pull: %v %v", snap, err)
	}
	if n := p.fake.TokenRequests(); n != 1 {
		t.Errorf("%d token requests, want 1 (cached)", n)
	}
}

func TestSettingsErrorsNameTheirKeys(t *testing.T) {
	neg := -1
	for _, tc := range []struct {
		s    Settings
		want string
	}{
		{Settings{Token: config.NewSecret("x")}, "url: is required"},
		{Settings{URL: "ftp://x", Token: config.NewSecret("x")}, "url: must be an http(s) URL"},
		{Settings{URL: "https://x"}, "token: is required"},
		{Settings{URL: "https://x", Token: config.NewSecret("x"), OAuth: &OAuth{}}, "token: set either token or oauth"},
		{Settings{URL: "https://x", OAuth: &OAuth{}}, "oauth.token_url: is required"},
		{Settings{URL: "https://x", Token: config.NewSecret("x"), Groups: "nested"}, "groups: must be members"},
		{Settings{URL: "https://x", Token: config.NewSecret("x"), Paging: "offset"}, "paging: must be"},
		{Settings{URL: "https://x", Token: config.NewSecret("x"), Retries: &neg}, "retries: must be"},
	} {
		err := tc.s.validate("sources[2]")
		if err == nil || !strings.Contains(err.Error(), "sources[2]."+tc.want) {
			t.Errorf("validate(%+v) = %v, want %q", tc.s, err, tc.want)
		}
	}
}

func TestRetryAfterForms(t *testing.T) {
	if s, ok := retryAfter("3"); !ok || s != 3 {
		t.Errorf("3 → %d %v", s, ok)
	}
	if _, ok := retryAfter("soon"); ok {
		t.Error("soon accepted")
	}
	if s, ok := retryAfter(time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)); !ok || s < 1 || s > 3 {
		t.Errorf("date → %d %v", s, ok)
	}
}

// A provider that advertises cursor paging (RFC 9865) is read with cursors
// until it sends no nextCursor.
func TestPullWithCursorPaging(t *testing.T) {
	const n = 230
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/scim+json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/ServiceProviderConfig"):
			_, _ = w.Write([]byte(`{"pagination":{"cursor":true,"index":false}}`))
		case strings.HasSuffix(r.URL.Path, "/Groups"):
			_, _ = w.Write([]byte(`{"Resources":[]}`))
		case strings.HasSuffix(r.URL.Path, "/Users"):
			q := r.URL.Query()
			if q.Has("startIndex") {
				w.WriteHeader(400)
				return
			}
			asked = append(asked, q.Get("cursor"))
			from, _ := strconv.Atoi(q.Get("cursor"))
			count, _ := strconv.Atoi(q.Get("count"))
			var res []any
			for i := from; i < min(n, from+count); i++ {
				res = append(res, map[string]any{"id": fmt.Sprintf("u%03d", i), "userName": fmt.Sprintf("user%03d", i), "active": true})
			}
			page := map[string]any{"Resources": res}
			if from+count < n {
				page["nextCursor"] = strconv.Itoa(from + count)
			}
			_ = json.NewEncoder(w).Encode(page)
		}
	}))
	defer srv.Close()
	snap, err := newSource(t, srv.URL, nil).Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Users) != n {
		t.Fatalf("%d users, want %d", len(snap.Users), n)
	}
	if want := []string{"", "100", "200"}; !slices.Equal(asked, want) {
		t.Errorf("cursors asked %q, want %q", asked, want)
	}
}

// A provider that refuses meta.lastModified filters cannot be polled: Watch
// says so, and the daemon re-reads the source in full instead.
func TestWatchWithoutLastModifiedFilterIsUnsupported(t *testing.T) {
	p := startFake(t, scimfake.Options{}) // the fake filters on eq only
	p.fake.SeedUser(user(1, true))
	iv := config.Duration(10 * time.Millisecond)
	src := newSource(t, p.base(), func(s *Settings) { s.PollInterval = &iv })
	if _, err := src.Pull(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := src.Watch(ctx, func(source.Change) { t.Error("a change from a provider that cannot be polled") })
	if !errors.Is(err, source.ErrWatchUnsupported) {
		t.Fatalf("Watch = %v, want ErrWatchUnsupported", err)
	}
	off := newSource(t, p.base(), nil) // poll_interval 0
	if err := off.Watch(ctx, nil); !errors.Is(err, source.ErrWatchUnsupported) {
		t.Fatalf("Watch with polling off = %v", err)
	}
}
