package ezeep_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/dirsync/dirsync/connector/fakekit"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeep"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/identity"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func body(t *testing.T, c ezeepfake.Call) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(c.Body), &m); err != nil {
		t.Fatalf("%s %s: body %q: %v", c.Method, c.Path, c.Body, err)
	}
	return m
}

// groupBody returns the group ids of a printing PATCH, sorted.
func groupBody(t *testing.T, c ezeepfake.Call) []string {
	t.Helper()
	var in struct {
		Groups []map[string]string `json:"groups"`
	}
	if err := json.Unmarshal([]byte(c.Body), &in); err != nil || in.Groups == nil {
		t.Fatalf("%s %s: body %q is not a complete group list", c.Method, c.Path, c.Body)
	}
	var ids []string
	for _, g := range in.Groups {
		ids = append(ids, g["group_id"])
	}
	slices.Sort(ids)
	return ids
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func lastWrite(t *testing.T, calls []ezeepfake.Call, method, path string) ezeepfake.Call {
	t.Helper()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Method == method && calls[i].Path == path {
			return calls[i]
		}
	}
	t.Fatalf("no %s %s among %d calls", method, path, len(calls))
	return ezeepfake.Call{}
}

func TestTokenFetchedOnceReusedAndRefreshedAfterExpiry(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{})
	ctx := ctxT(t)
	if err := e.core.Open(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.core.List(ctx); err != nil {
			t.Fatal(err)
		}
	}
	calls := e.srv.Calls()
	if calls[0].Method != http.MethodPost || calls[0].Path != "/oauth/access_token/" || calls[0].Auth != "basic" ||
		calls[0].Body != "grant_type=client_credentials" || calls[0].Status != 200 {
		t.Fatalf("token request %+v", calls[0])
	}
	tokens := 0
	for _, c := range calls {
		if c.Path == "/oauth/access_token/" {
			tokens++
		} else if c.Auth != "bearer" {
			t.Fatalf("API call without a valid token: %+v", c)
		}
	}
	if tokens != 1 {
		t.Fatalf("%d token requests for one token's life, want 1", tokens)
	}

	// The server expires the token: the next call is refused (401), a new
	// token is fetched and the call is sent again, once.
	e.srv.ExpireTokens()
	e.srv.ResetCalls()
	if _, err := e.core.List(ctx); err != nil {
		t.Fatal(err)
	}
	calls = e.srv.Calls()
	var got []string
	for _, c := range calls[:3] {
		got = append(got, fmt.Sprintf("%s %s %d %s", c.Method, c.Path, c.Status, c.Auth))
	}
	want := []string{"GET /v1/users/ 401 expired", "POST /oauth/access_token/ 200 basic", "GET /v1/users/ 200 bearer"}
	if !slices.Equal(got, want) {
		t.Fatalf("after expiry: %q, want %q", got, want)
	}
	if len(e.srv.Tokens()) != 2 {
		t.Fatalf("tokens issued %d", len(e.srv.Tokens()))
	}

	// Neither the secret nor any token reaches the connector's logs.
	logs := e.logs.String()
	for _, s := range append(e.srv.Tokens(), e.srv.ClientSecret()) {
		if strings.Contains(logs, s) {
			t.Fatalf("a credential reached the logs: %s", logs)
		}
	}
}

func TestBadCredentialsArePermanentAndSecretFree(t *testing.T) {
	const secret = "s3cr3t-that-must-not-leak"
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{}, func(s *ezeep.Settings) { s.ClientSecret = config.NewSecret(secret) })
	err := e.core.Open(ctxT(t))
	if connector.KindOf(err) != connector.KindPermanent {
		t.Fatalf("bad client secret: kind %v (%v), want permanent", connector.KindOf(err), err)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(e.logs.String(), secret) {
		t.Fatalf("the secret leaked: %v", err)
	}
	if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "client_secret") {
		t.Fatalf("error should say what is wrong: %v", err)
	}
}

// A token endpoint or API that echoes the credential back in an error
// body does not leak it through the connector's errors.
func TestSecretsScrubbedFromErrorBodies(t *testing.T) {
	const secret = "echoed-secret-value"
	var srvURL string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/access_token/" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"tok-%s","token_type":"Bearer","expires_in":3600}`, secret)
			return
		}
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"detail":"bad request with %s and %s"}`, r.Header.Get("Authorization"), secret)
	}))
	defer ts.Close()
	srvURL = ts.URL
	tg, err := ezeep.New("ezeep", ezeep.Settings{AccountURL: srvURL, PrintingURL: srvURL, ClientID: "id", ClientSecret: config.NewSecret(secret)}, connector.Deps{}, ezeep.Common{})
	if err != nil {
		t.Fatal(err)
	}
	a := identity.Account{Email: "x@example.test", Role: "admin", Remote: map[string]string{ezeep.RemoteUUID: "0810f57c-6ce6-4ef0-badc-dcd121576b84"}}
	err = tg.(connector.RoleSetter).SetRole(ctxT(t), &a)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v", err)
	}
	if !strings.Contains(err.Error(), config.Redacted) {
		t.Fatalf("the echoed values should be redacted: %v", err)
	}
}

func TestInviteCarriesTheDirectoryExpiry(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{})
	ctx := ctxT(t)
	exp := e.clock.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	a := identity.Account{Email: "ann@example.test", GivenName: "Ann", Expires: &exp}
	if err := e.core.Create(ctx, &a); err != nil {
		t.Fatal(err)
	}
	b := identity.Account{Email: "bea@example.test"}
	if err := e.core.Create(ctx, &b); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	if w := writes(calls); !slices.Equal(w, []string{"POST /v1/userinvitations/", "POST /v1/userinvitations/"}) {
		t.Fatalf("writes %q", w)
	}
	var invites []map[string]any
	for _, c := range calls {
		if c.Method == http.MethodPost && c.Path == "/v1/userinvitations/" {
			invites = append(invites, body(t, c))
		}
	}
	if invites[0]["email"] != "ann@example.test" || invites[0]["expire_date"] != exp.UTC().Format("2006-01-02T15:04:05") || len(invites[0]) != 2 {
		t.Fatalf("first invitation %v", invites[0])
	}
	// Without a directory expiry: invitation_validity (30 days).
	if want := e.clock.Now().Add(30 * 24 * time.Hour).UTC().Format("2006-01-02T15:04:05"); invites[1]["expire_date"] != want {
		t.Fatalf("second invitation %v, want expire_date %s", invites[1], want)
	}
	u, ok := e.srv.UserByEmail("ann@example.test")
	if !ok || u.IsVerified || a.Remote[ezeep.RemoteUUID] != u.ID || a.Remote[ezeep.RemoteInvitation] != u.Invitations[0] {
		t.Fatalf("remote %v, user %+v", a.Remote, u)
	}
	if inv := e.srv.Invitations("ann@example.test"); len(inv) != 1 || !inv[0].ExpireDate.Equal(exp) {
		t.Fatalf("invitation %+v", inv)
	}
	// The expiry set afterwards (the engine creates without it) moves the
	// pending invitation's expire_date; a past expiry or an accepted
	// invitation sends nothing.
	e.srv.ResetCalls()
	later := exp.Add(24 * time.Hour)
	a.Expires = &later
	if err := e.core.SetExpiry(ctx, &a); err != nil {
		t.Fatal(err)
	}
	inv := a.Remote[ezeep.RemoteInvitation]
	if w := writes(e.srv.Calls()); !slices.Equal(w, []string{"PATCH /v1/userinvitations/" + inv + "/"}) {
		t.Fatalf("set expiry writes %q", w)
	}
	if m := body(t, lastWrite(t, e.srv.Calls(), http.MethodPatch, "/v1/userinvitations/"+inv+"/")); m["expire_date"] != later.Format("2006-01-02T15:04:05") || len(m) != 1 {
		t.Fatalf("set expiry body %v", m)
	}
	if got := e.srv.Invitations("ann@example.test"); !got[0].ExpireDate.Equal(later) {
		t.Fatalf("invitation %+v", got)
	}
	past := e.clock.Now().Add(-time.Hour)
	a.Expires = &past
	e.srv.Accept("bea@example.test")
	bl := b.Clone()
	bl.Expires = &later
	e.srv.ResetCalls()
	if err := e.core.SetExpiry(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if err := e.core.SetExpiry(ctx, &bl); err != nil {
		t.Fatal(err)
	}
	if w := writes(e.srv.Calls()); len(w) != 0 {
		t.Fatalf("past expiry / accepted invitation wrote %q", w)
	}

	// The uuid of a fresh invitee is on the first page (newest first).
	pages := 0
	for _, c := range calls {
		if c.Path == "/v1/users/" {
			pages++
			if !strings.Contains(c.Query, "page=1") {
				t.Fatalf("the lookup of a fresh invitee read %s", c.Query)
			}
		}
	}
	if pages != 2 {
		t.Fatalf("%d list pages read for two invitations", pages)
	}
}

func TestInviteOfAnExistingUser(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{})
	ctx := ctxT(t)
	// A pending invitee (invited before dirsync ran, invitation expired):
	// adopted, and the invitation resent.
	first := identity.Account{Email: "pending@example.test"}
	if err := e.core.Create(ctx, &first); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(31 * 24 * time.Hour)
	e.srv.ResetCalls()
	again := identity.Account{Email: "Pending@Example.test"}
	if err := e.core.Create(ctx, &again); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	invID := first.Remote[ezeep.RemoteInvitation]
	if w := writes(calls); !slices.Equal(w, []string{"POST /v1/userinvitations/", "PATCH /v1/userinvitations/" + invID + "/"}) {
		t.Fatalf("writes %q", w)
	}
	if calls[len(calls)-1].Status != 200 || again.Remote[ezeep.RemoteUUID] != first.Remote[ezeep.RemoteUUID] {
		t.Fatalf("resend %+v, remote %v", calls[len(calls)-1], again.Remote)
	}
	if inv := e.srv.Invitations("pending@example.test"); len(inv) != 1 || inv[0].Resent != 1 {
		t.Fatalf("invitations %+v", inv)
	}
	// A user who signed up long ago: adopted, nothing resent.
	id := e.srv.AddUser(ezeepfake.User{Email: "old@example.test", IsVerified: true, Role: ezeepfake.RoleAdmin})
	e.srv.ResetCalls()
	old := identity.Account{Email: "old@example.test"}
	if err := e.core.Create(ctx, &old); err != nil {
		t.Fatal(err)
	}
	if w := writes(e.srv.Calls()); !slices.Equal(w, []string{"POST /v1/userinvitations/"}) || old.Remote[ezeep.RemoteUUID] != id {
		t.Fatalf("writes %q, remote %v", w, old.Remote)
	}
}

// Every group PATCH carries the complete list: the desired managed groups
// plus the unmanaged groups the user has, read first when the cache does
// not know them.
func TestGroupPatchCarriesTheCompleteList(t *testing.T) {
	// read_groups_first: false trusts the list the cache holds.
	off := false
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{RuleGroups: []string{"staff", "color"}}, func(s *ezeep.Settings) { s.ReadGroupsFirst = &off })
	ctx := ctxT(t)
	manual := e.srv.AddGroup("hand-made")
	staff, color := e.groups["staff"], e.groups["color"]
	id := e.srv.AddUser(ezeepfake.User{Email: "gus@example.test", Groups: []string{manual, staff}})
	a := identity.Account{Email: "gus@example.test", Groups: []string{"color"}}

	// The cache does not know the list: read, then PATCH color + hand-made.
	if err := e.core.SetGroups(ctx, identity.Account{}, &a); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	var seq []string
	for _, c := range calls {
		if strings.HasPrefix(c.Path, "/printing/") {
			seq = append(seq, c.Method+" "+c.Path)
		}
	}
	if want := []string{"GET /printing/v1/users/" + id + "/", "PATCH /printing/v1/users/" + id + "/"}; !slices.Equal(seq, want) {
		t.Fatalf("printing calls %q, want %q", seq, want)
	}
	if got := groupBody(t, lastWrite(t, calls, http.MethodPatch, "/printing/v1/users/"+id+"/")); !slices.Equal(got, sorted(color, manual)) {
		t.Fatalf("PATCH groups %v, want color and hand-made", got)
	}
	if got := a.Remote[ezeep.RemoteGroups]; got != strings.Join(sorted(color, manual), ",") {
		t.Fatalf("cached list %q", got)
	}

	// Now the cache knows it: no read, and the PATCH still carries all.
	e.srv.ResetCalls()
	before := a.Clone()
	a.Groups = []string{"color", "staff"}
	if err := e.core.SetGroups(ctx, before, &a); err != nil {
		t.Fatal(err)
	}
	calls = e.srv.Calls()
	if w := writes(calls); !slices.Equal(w, []string{"PATCH /printing/v1/users/" + id + "/"}) || len(calls) != 1 {
		t.Fatalf("calls %+v", calls)
	}
	if got := groupBody(t, calls[0]); !slices.Equal(got, sorted(color, manual, staff)) {
		t.Fatalf("PATCH groups %v", got)
	}
	u, _ := e.srv.User(id)
	if !slices.Equal(sorted(u.Groups...), sorted(color, manual, staff)) {
		t.Fatalf("fake groups %v", e.srv.GroupNames(u.Groups))
	}

	// Removing every managed group still sends the unmanaged one.
	before = a.Clone()
	a.Groups = nil
	if err := e.core.SetGroups(ctx, before, &a); err != nil {
		t.Fatal(err)
	}
	if got := groupBody(t, lastWrite(t, e.srv.Calls(), http.MethodPatch, "/printing/v1/users/"+id+"/")); !slices.Equal(got, []string{manual}) {
		t.Fatalf("PATCH groups %v", got)
	}

	// read_groups_first (the default): a group added by hand since the
	// cache last saw the user's groups is kept.
	e2 := newEnv(t, ezeepfake.Options{}, ezeep.Common{RuleGroups: []string{"staff", "color"}})
	id2 := e2.srv.AddUser(ezeepfake.User{Email: "hal@example.test"})
	b := identity.Account{Email: "hal@example.test", Groups: []string{"staff"}, Remote: map[string]string{ezeep.RemoteUUID: id2, ezeep.RemoteGroups: ""}}
	late := e2.srv.AddGroup("added-by-hand")
	e2.srv.SetGroups(id2, late)
	if err := e2.core.SetGroups(ctx, identity.Account{}, &b); err != nil {
		t.Fatal(err)
	}
	if u, _ := e2.srv.User(id2); !slices.Equal(sorted(u.Groups...), sorted(late, e2.groups["staff"])) {
		t.Fatalf("with read_groups_first the hand-made group must stay: %v", e2.srv.GroupNames(u.Groups))
	}
}

func TestSuspendStripsAndUnsuspendRestores(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{RuleGroups: []string{"staff", "color"}})
	ctx := ctxT(t)
	manual := e.srv.AddGroup("hand-made")
	id := e.srv.AddUser(ezeepfake.User{Email: "ivy@example.test", Role: ezeepfake.RoleAdmin, Groups: []string{manual, e.groups["staff"]}})
	a := identity.Account{Email: "ivy@example.test", Role: "admin", Groups: []string{"staff"}, Remote: map[string]string{ezeep.RemoteUUID: id}}
	s := e.tg.(connector.Suspender)
	if err := s.Suspend(ctx, &a); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	// The role first, so nothing the printing API answers can skip it.
	want := []string{"PATCH /v1/users/" + id + "/", "PATCH /printing/v1/users/" + id + "/"}
	if w := writes(calls); !slices.Equal(w, want) {
		t.Fatalf("suspend writes %q, want %q", w, want)
	}
	if got := groupBody(t, lastWrite(t, calls, http.MethodPatch, "/printing/v1/users/"+id+"/")); len(got) != 0 {
		t.Fatalf("suspend sent groups %v, want none", got)
	}
	if b := body(t, lastWrite(t, calls, http.MethodPatch, "/v1/users/"+id+"/")); b["roles"] != "user" || len(b) != 1 {
		t.Fatalf("suspend role body %v", b)
	}
	if u, _ := e.srv.User(id); u.Role != "user" || len(u.Groups) != 0 {
		t.Fatalf("after suspend %+v", u)
	}
	got, err := e.core.Read(ctx, a)
	if err != nil || !got.Suspended {
		t.Fatalf("read after suspend: %+v %v", got, err)
	}

	e.srv.ResetCalls()
	if err := s.Unsuspend(ctx, &a); err != nil {
		t.Fatal(err)
	}
	calls = e.srv.Calls()
	if w := writes(calls); !slices.Equal(w, []string{"PATCH /v1/users/" + id + "/", "PATCH /printing/v1/users/" + id + "/"}) {
		t.Fatalf("unsuspend writes %q", w)
	}
	if b := body(t, lastWrite(t, calls, http.MethodPatch, "/v1/users/"+id+"/")); b["roles"] != "admin" {
		t.Fatalf("unsuspend role body %v", b)
	}
	// The managed group comes back; the hand-made one is not remembered.
	if u, _ := e.srv.User(id); u.Role != "admin" || !slices.Equal(u.Groups, []string{e.groups["staff"]}) {
		t.Fatalf("after unsuspend %+v", u)
	}
	if got, err := e.core.Read(ctx, a); err != nil || got.Suspended || got.Role != "admin" || !slices.Equal(got.Groups, []string{"staff"}) {
		t.Fatalf("read after unsuspend: %+v %v", got, err)
	}
}

func TestUpdateRoleDeleteRequests(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{})
	ctx := ctxT(t)
	id := e.srv.AddUser(ezeepfake.User{Email: "jo@example.test", FirstName: "Jo", LastName: "Old"})
	before := identity.Account{Email: "jo@example.test"}
	a := identity.Account{Email: "jo.new@example.test", GivenName: "Jo", FamilyName: "New"}
	// The uuid is not cached and the email changes: found by the old one.
	if err := e.core.Update(ctx, before, &a); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	c := lastWrite(t, calls, http.MethodPatch, "/v1/users/"+id+"/")
	if b := body(t, c); b["email"] != "jo.new@example.test" || b["first_name"] != "Jo" || b["last_name"] != "New" || len(b) != 3 {
		t.Fatalf("update body %v", b)
	}
	if u, _ := e.srv.User(id); u.Email != "jo.new@example.test" || u.DisplayName() != "Jo New" || a.Remote[ezeep.RemoteUUID] != id {
		t.Fatalf("after update %+v (remote %v)", u, a.Remote)
	}
	a.Role = "Admin"
	if err := e.core.SetRole(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if b := body(t, lastWrite(t, e.srv.Calls(), http.MethodPatch, "/v1/users/"+id+"/")); b["roles"] != "admin" || len(b) != 1 {
		t.Fatalf("role body %v", b)
	}
	a.Role = "owner"
	if err := e.core.SetRole(ctx, &a); connector.KindOf(err) != connector.KindSkipped {
		t.Fatalf("an unknown role: %v", err)
	}
	e.srv.ResetCalls()
	if err := e.core.Delete(ctx, &a); err != nil {
		t.Fatal(err)
	}
	calls = e.srv.Calls()
	if w := writes(calls); !slices.Equal(w, []string{"DELETE /v1/users/" + id + "/"}) || calls[len(calls)-1].Status != http.StatusNoContent {
		t.Fatalf("delete %+v", calls)
	}
	// Deleting again: not found (the engine counts it as done).
	if err := e.core.Delete(ctx, &a); connector.KindOf(err) != connector.KindNotFound {
		t.Fatalf("second delete: %v", err)
	}
}

func TestListFollowsNextAcrossPages(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{RuleGroups: []string{"staff"}}, func(s *ezeep.Settings) { s.PageSize = 7 })
	hand := e.srv.AddGroup("hand-made")
	for i := range 20 {
		id := e.srv.AddUser(ezeepfake.User{Email: fmt.Sprintf("u%02d@example.test", i), Role: ezeepfake.RoleUser})
		if i == 3 {
			e.srv.SetGroups(id, e.groups["staff"], hand)
		}
	}
	list, err := e.core.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 20 {
		t.Fatalf("listed %d users, want 20", len(list))
	}
	var pages []string
	for _, c := range e.srv.Calls() {
		if c.Method == http.MethodGet {
			pages = append(pages, c.Path+"?"+c.Query)
		}
	}
	if len(pages) != 6 || !strings.Contains(pages[2], "page=3") || !strings.Contains(pages[0], "per_page=7") {
		t.Fatalf("pages read %q", pages)
	}
	for _, a := range list {
		if a.Email == "u03@example.test" {
			// Only managed groups are reported; the complete list is cached.
			if !slices.Equal(a.Groups, []string{"staff"}) || len(strings.Split(a.Remote[ezeep.RemoteGroups], ",")) != 2 || !a.Exists || a.Role != "user" {
				t.Fatalf("u03 %+v", a)
			}
		}
	}
}

func TestNextLinkToAnotherHostIsRefused(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/oauth/access_token/" {
			fmt.Fprint(w, `{"access_token":"tok","token_type":"Bearer","expires_in":3600}`)
			return
		}
		fmt.Fprint(w, `{"count":2,"next":"https://evil.example/v1/users/?page=2","previous":null,"results":[{"id":"x","email":"a@b.c","roles":["user"]}]}`)
	}))
	defer ts.Close()
	tg, err := ezeep.New("ezeep", ezeep.Settings{AccountURL: ts.URL, PrintingURL: ts.URL, ClientID: "id", ClientSecret: config.NewSecret("s")}, connector.Deps{}, ezeep.Common{Deprovision: "delete"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tg.(connector.Lister).List(ctxT(t))
	if connector.KindOf(err) != connector.KindPermanent || !strings.Contains(err.Error(), "evil.example") {
		t.Fatalf("error %v", err)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{FaultOptions: fakekit.FaultOptions{RetryAfter: 7}}, ezeep.Common{})
	ctx := ctxT(t)
	if err := e.core.Open(ctx); err != nil {
		t.Fatal(err)
	}
	id := e.srv.AddUser(ezeepfake.User{Email: "kim@example.test"})
	a := identity.Account{Email: "kim@example.test", Role: "admin", Remote: map[string]string{ezeep.RemoteUUID: id}}
	for _, tc := range []struct {
		fault fakekit.Fault
		kind  connector.Kind
	}{{fakekit.Fault429, connector.KindRateLimited}, {fakekit.Fault500, connector.KindRetryable}, {fakekit.FaultDrop, connector.KindRetryable}} {
		e.srv.SetFaults(1, tc.fault)
		err := e.core.SetRole(ctx, &a)
		if connector.KindOf(err) != tc.kind {
			t.Fatalf("%s: kind %v (%v), want %v", tc.fault, connector.KindOf(err), err, tc.kind)
		}
		if tc.fault == fakekit.Fault429 && connector.RetryAfterOf(err) != 7*time.Second {
			t.Fatalf("Retry-After %v", connector.RetryAfterOf(err))
		}
	}
	// An invitation whose answer is lost may have landed: uncertain; the
	// engine then reads by email and finds the invitee.
	e.srv.SetFaultAfterApply(true)
	e.srv.SetFaults(1, fakekit.FaultDrop)
	b := identity.Account{Email: "lou@example.test"}
	err := e.core.Create(ctx, &b)
	if connector.KindOf(err) != connector.KindUncertain {
		t.Fatalf("lost invitation answer: %v", err)
	}
	e.srv.SetFaults(0)
	got, err := e.core.Read(ctx, b)
	if err != nil || !got.Exists || got.Remote[ezeep.RemoteUUID] == "" {
		t.Fatalf("read after an uncertain invitation: %+v %v", got, err)
	}
	if n := e.srv.Applied()["POST /v1/userinvitations/ lou@example.test"]; n != 1 {
		t.Fatalf("invitations applied %d", n)
	}
	// A missing user is not found.
	if _, err := e.core.Read(ctx, identity.Account{Email: "nobody@example.test"}); connector.KindOf(err) != connector.KindNotFound {
		t.Fatalf("read of a missing user: %v", err)
	}
	// A refused field is permanent and names the problem.
	c := identity.Account{Email: "kim@example.test", Groups: []string{"0810f57c-6ce6-4ef0-badc-dcd121576b84"}, Remote: map[string]string{ezeep.RemoteUUID: id, ezeep.RemoteGroups: ""}}
	if err := e.core.SetGroups(ctx, identity.Account{}, &c); connector.KindOf(err) != connector.KindPermanent || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("unknown group: %v", err)
	}
}

func TestGate(t *testing.T) {
	e := newEnv(t, ezeepfake.Options{}, ezeep.Common{})
	for _, tc := range []struct {
		act  connector.Action
		a    identity.Account
		want string
	}{
		{connector.ActCreate, identity.Account{Username: "x"}, "no email"},
		{connector.ActSetRole, identity.Account{Email: "x@y.z", Role: "owner"}, "only the roles admin and user"},
		{connector.ActSetRole, identity.Account{Email: "x@y.z", Role: "ADMIN"}, ""},
		{connector.ActSetGroups, identity.Account{Email: "x@y.z", Groups: []string{"staff", "nope"}}, "nope have no ezeep group id"},
		{connector.ActSetGroups, identity.Account{Email: "x@y.z", Groups: []string{"staff", "8228b289-2926-4813-8267-c61c767e55f0"}}, ""},
		{connector.ActDelete, identity.Account{Remote: map[string]string{ezeep.RemoteUUID: "u"}}, ""},
	} {
		got := e.core.Gate(tc.act, tc.a)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Gate(%s, %+v) = %q, want %q", tc.act, tc.a, got, tc.want)
		}
	}
}
