package allthenticate_test

import (
	"context"
	"encoding/json"
	"github.com/dirsync/dirsync/connector/fakekit"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/allthenticate"
	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/identity"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// seed adds a full user and returns the account as the cache holds it.
func seed(e *env, email string, mods ...func(*allthenticatefake.User)) identity.Account {
	u := allthenticatefake.User{Email: email, FirstName: "Given", LastName: strings.Split(email, "@")[0]}
	for _, m := range mods {
		m(&u)
	}
	id := e.srv.AddUser(u)
	got, _ := e.srv.User(id)
	return identity.Account{Email: email, Exists: true, Remote: map[string]string{
		allthenticate.RemoteEmailID: strconv.Itoa(got.EmailID), allthenticate.RemoteUserID: strconv.Itoa(got.UserID)}}
}

func seq(calls []allthenticatefake.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Method+" "+c.Path)
	}
	return out
}

func TestToggleReadsFirstAndVerifies(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{})
	ctx := ctxT(t)
	a := seed(e, "ann@example.test")
	id := remote(a)
	if err := e.tg.Suspend(ctx, &a); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	if got, want := seq(calls), []string{"GET /multipleusers", "POST /togglesuspension", "GET /multipleusers"}; !slices.Equal(got, want) {
		t.Fatalf("suspend: %q, want read, toggle, verify %q", got, want)
	}
	if p := calls[1].Params; p["email_id"] != strconv.Itoa(id) || calls[1].Encoding != "json" || calls[1].Body != `{"email_id":`+strconv.Itoa(id)+`}` {
		t.Fatalf("toggle %+v", calls[1])
	}
	if u, _ := e.srv.User(id); !u.Suspended || e.srv.Toggles(id) != 1 {
		t.Fatalf("after suspend %+v, toggles %d", u, e.srv.Toggles(id))
	}
	// Asked again (a retry, a stale cache): the read says it is done.
	e.srv.ResetCalls()
	if err := e.tg.Suspend(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if got := seq(e.srv.Calls()); !slices.Equal(got, []string{"GET /multipleusers"}) {
		t.Fatalf("second suspend: %q", got)
	}
	if err := e.tg.Unsuspend(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.srv.User(id); u.Suspended || e.srv.Toggles(id) != 1 {
		t.Fatalf("after unsuspend %+v, toggles %d", u, e.srv.Toggles(id))
	}
}

func remote(a identity.Account) int {
	n, _ := strconv.Atoi(a.Remote[allthenticate.RemoteEmailID])
	return n
}

// The cache may be wrong about the status: the read decides, and no toggle
// is sent when the user already is as wanted.
func TestStaleCacheNeverToggles(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{})
	ctx := ctxT(t)
	teach(t, e)
	a := seed(e, "bo@example.test")
	id := remote(a)
	e.srv.SetSuspended(id, true) // suspended by hand in the portal
	a.Suspended = false          // the cache does not know
	if err := e.tg.Suspend(ctx, &a); err != nil {
		t.Fatal(err)
	}
	e.srv.SetSuspended(id, false) // and unsuspended by hand
	if err := e.tg.Unsuspend(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if n := toggles(e.srv.Calls()); n != 0 {
		t.Fatalf("%d toggles sent for changes already made", n)
	}
	// Without cached ids the user is found by email.
	b := identity.Account{Email: "BO@example.test"}
	if err := e.tg.Suspend(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if e.srv.Toggles(id) != 1 || b.Remote[allthenticate.RemoteEmailID] != strconv.Itoa(id) {
		t.Fatalf("toggles %d remote %v", e.srv.Toggles(id), b.Remote)
	}
}

// Concurrent calls for one user (two runs, or retries in flight) toggle
// once: the per-user lock serialises read-toggle-verify.
func TestConcurrentSuspendsToggleOnce(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{FaultOptions: fakekit.FaultOptions{SlowDelay: 5 * time.Millisecond, FaultRate: 0.5, Faults: []fakekit.Fault{fakekit.FaultSlow}}})
	ctx := ctxT(t)
	a := seed(e, "cy@example.test")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acc := a.Clone()
			errs <- e.tg.Suspend(ctx, &acc)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := e.srv.Toggles(remote(a)); n != 1 {
		t.Fatalf("8 concurrent suspends toggled %d times", n)
	}
}

// A toggle whose answer is lost is uncertain: the engine re-reads (Read)
// and a retry reads first, so the user is never toggled twice.
func TestLostToggleAnswerIsUncertainAndNotRepeated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault fakekit.Fault
		after bool
	}{
		{"dropped after applying", fakekit.FaultDrop, true},
		{"500 after applying", fakekit.Fault500, true},
		{"dropped before applying", fakekit.FaultDrop, false},
		{"slow beyond the client timeout", fakekit.FaultSlow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, allthenticatefake.Options{FaultOptions: fakekit.FaultOptions{SlowDelay: 2 * time.Second}})
			a := seed(e, "di@example.test")
			id := remote(a)
			e.srv.SetFaultAfterApply(tc.after)
			// Fail only the toggle: the read before it goes through.
			ctx := ctxT(t)
			err := suspendWithToggleFault(t, e, &a, tc.fault)
			if connector.KindOf(err) != connector.KindUncertain {
				t.Fatalf("kind %v (%v), want uncertain", connector.KindOf(err), err)
			}
			e.srv.SetFaults(0)
			got, rerr := e.tg.Read(ctx, a)
			if rerr != nil {
				t.Fatal(rerr)
			}
			landed := got.Suspended
			if landed != tc.after {
				t.Fatalf("read after the lost answer: suspended %v", got.Suspended)
			}
			// The engine retries when it did not land; either way a retry
			// reads first and the user ends suspended with one toggle.
			if err := e.tg.Suspend(ctx, &a); err != nil {
				t.Fatal(err)
			}
			if u, _ := e.srv.User(id); !u.Suspended || e.srv.Toggles(id) != 1 {
				t.Fatalf("suspended %v after %d toggles", u.Suspended, e.srv.Toggles(id))
			}
		})
	}
}

// suspendWithToggleFault runs Suspend with fault injected into the toggle
// only (a transport wrapper turns faults on just before it), through a
// client that gives up after 300ms.
func suspendWithToggleFault(t *testing.T, e *env, a *identity.Account, fault fakekit.Fault) error {
	t.Helper()
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/togglesuspension" {
			e.srv.SetFaults(1, fault)
		} else {
			e.srv.SetFaults(0)
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	tg, err := allthenticate.New("allthenticate", allthenticate.Settings{BaseURL: e.url, APIKey: config.NewSecret(e.srv.APIKey())},
		connector.Deps{HTTPClient: &http.Client{Transport: rt, Timeout: 300 * time.Millisecond}, Memory: e.mem})
	if err != nil {
		t.Fatal(err)
	}
	return tg.Suspend(ctxT(t), a)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// When a toggle lands but the configured field does not show it, the
// configuration is wrong: that user is reported, what the toggle showed is
// kept in memory, and no further toggle is sent for anyone — by this
// process or a restarted one — so nobody is flipped back and forth.
func TestUnverifiableToggleStopsAllToggles(t *testing.T) {
	wrong := func(s *allthenticate.Settings) { s.SuspensionField = "email_status" }
	e := newEnv(t, allthenticatefake.Options{StatusField: "ad_status"}, wrong)
	ctx := ctxT(t)
	a := seed(e, "ed@example.test")
	b := seed(e, "flo@example.test")
	err := e.tg.Suspend(ctx, &a)
	if connector.KindOf(err) != connector.KindPermanent || !strings.Contains(err.Error(), "suspension_field") || !strings.Contains(err.Error(), "changed ad_status") {
		t.Fatalf("unverifiable toggle: %v", err)
	}
	restarted, err := allthenticate.New("allthenticate", allthenticate.Settings{BaseURL: e.url, APIKey: config.NewSecret(e.srv.APIKey()), SuspensionField: "email_status"},
		connector.Deps{Memory: e.mem})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range []*allthenticate.Target{e.tg, restarted} {
		err = tg.Suspend(ctx, &b)
		if connector.KindOf(err) != connector.KindPermanent || !strings.Contains(err.Error(), "toggles are refused") {
			t.Fatalf("next toggle: %v", err)
		}
	}
	if n := toggles(e.srv.Calls()); n != 1 {
		t.Fatalf("%d toggles sent", n)
	}
	// With the right field (or none: learnt), it works.
	for _, f := range []string{"ad_status", ""} {
		e2 := newEnv(t, allthenticatefake.Options{StatusField: "ad_status"}, func(s *allthenticate.Settings) { s.SuspensionField = f })
		c := seed(e2, "gil@example.test")
		if err := e2.tg.Suspend(ctx, &c); err != nil {
			t.Fatal(err)
		}
		if got, err := e2.tg.Read(ctx, c); err != nil || !got.Suspended {
			t.Fatalf("read %+v %v", got, err)
		}
	}
}

// teach has the connector learn the suspension field from a toggle of a
// user of its own (so a test can start from users suspended by hand).
func teach(t *testing.T, e *env) {
	t.Helper()
	a := seed(e, "teacher@example.test")
	if err := e.tg.Suspend(ctxT(t), &a); err != nil {
		t.Fatal(err)
	}
	e.srv.ResetCalls()
}

func TestRank(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{})
	ctx := ctxT(t)
	a := seed(e, "hu@example.test")
	u, _ := e.srv.User(remote(a))
	a.Role = "admin"
	if err := e.tg.SetRole(ctx, &a); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	if len(calls) != 1 || calls[0].Path != "/modifyrank" || calls[0].Params["admin_user_id"] != strconv.Itoa(u.UserID) || calls[0].Params["rank"] != "ADMIN" {
		t.Fatalf("modifyrank %+v", calls)
	}
	if got, _ := e.srv.User(remote(a)); got.Rank != "ADMIN" {
		t.Fatalf("rank %q", got.Rank)
	}
	// SUPER needs allow_super: a skip, nothing sent; the gate says so at
	// plan time.
	e.srv.ResetCalls()
	a.Role = "SUPER"
	if err := e.tg.SetRole(ctx, &a); connector.KindOf(err) != connector.KindSkipped || !strings.Contains(err.Error(), "allow_super") {
		t.Fatalf("SUPER without allow_super: %v", err)
	}
	if why := e.tg.Gate(connector.ActSetRole, a); !strings.Contains(why, "allow_super") {
		t.Fatalf("gate %q", why)
	}
	if len(e.srv.Calls()) != 0 {
		t.Fatalf("calls %+v", e.srv.Calls())
	}
	e2 := newEnv(t, allthenticatefake.Options{}, func(s *allthenticate.Settings) { s.AllowSuper = true })
	b := seed(e2, "ida@example.test")
	b.Role = "SUPER"
	if e2.tg.Gate(connector.ActSetRole, b) != "" {
		t.Fatal("allow_super: the gate must let SUPER through")
	}
	if err := e2.tg.SetRole(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if got, _ := e2.srv.User(remote(b)); got.Rank != "SUPER" {
		t.Fatalf("rank %q", got.Rank)
	}
	b.Role = "owner"
	if why := e2.tg.Gate(connector.ActSetRole, b); !strings.Contains(why, "not an Allthenticate rank") {
		t.Fatalf("gate %q", why)
	}
}

func TestParamsHeaderAndPrefixAsConfigured(t *testing.T) {
	for _, mode := range []string{"json", "form", "query"} {
		t.Run(mode, func(t *testing.T) {
			empty := ""
			e := newEnv(t, allthenticatefake.Options{Header: "X-API-Key", Prefix: ""}, func(s *allthenticate.Settings) {
				s.Params, s.Header, s.Prefix = mode, "X-API-Key", &empty
			})
			a := seed(e, "jan@example.test")
			a.Role = "REGULAR"
			if err := e.tg.SetRole(ctxT(t), &a); err != nil {
				t.Fatal(err)
			}
			c := e.srv.Calls()[0]
			if c.Encoding != mode || c.Params["rank"] != "REGULAR" || !c.Authorized {
				t.Fatalf("%+v", c)
			}
			if mode == "query" && c.Body != "" || mode != "query" && c.Query != "" {
				t.Fatalf("parameters in the wrong place: %+v", c)
			}
		})
	}
}

func TestComputerUsernamesAndSmartcardsAreWholeLists(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{})
	ctx := ctxT(t)
	a := seed(e, "kai@example.test", func(u *allthenticatefake.User) { u.ComputerUsernames = []string{"old"} })
	id := remote(a)
	before := a.Clone()
	a.Attributes = map[string]string{allthenticate.AttrComputerUsernames: "kai, kai-admin,kai", allthenticate.AttrSmartcards: "123456, Badge:987654"}
	if err := e.tg.Update(ctx, before, &a); err != nil {
		t.Fatal(err)
	}
	calls := e.srv.Calls()
	if got := seq(calls); !slices.Equal(got, []string{"POST /modifyallusernames", "POST /modifysmartcard"}) {
		t.Fatalf("calls %q", got)
	}
	var body map[string]any
	_ = json.Unmarshal([]byte(calls[0].Body), &body)
	if body["computer_usernames"] != `[{"computer_username":"kai"},{"computer_username":"kai-admin"}]` || body["email_id"] != float64(id) {
		t.Fatalf("usernames body %v", body)
	}
	_ = json.Unmarshal([]byte(calls[1].Body), &body)
	if body["smartcards"] != `[{"number":"123456"},{"number":"987654","label":"Badge"}]` {
		t.Fatalf("smartcards body %v", body)
	}
	u, _ := e.srv.User(id)
	if !slices.Equal(u.ComputerUsernames, []string{"kai", "kai-admin"}) || len(u.Smartcards) != 2 || u.Smartcards[1].Label != "Badge" {
		t.Fatalf("after update %+v", u)
	}
	if got, err := e.tg.Read(ctx, a); err != nil || got.Attributes[allthenticate.AttrComputerUsernames] != "kai,kai-admin" || got.Attributes[allthenticate.AttrSmartcards] != "123456,Badge:987654" {
		t.Fatalf("read %+v %v", got, err)
	}
	// Only the smartcards change; then the attribute goes away: cleared.
	e.srv.ResetCalls()
	before = a.Clone()
	a.Attributes = map[string]string{allthenticate.AttrComputerUsernames: "kai,kai-admin"}
	if err := e.tg.Update(ctx, before, &a); err != nil {
		t.Fatal(err)
	}
	calls = e.srv.Calls()
	if got := seq(calls); !slices.Equal(got, []string{"POST /modifysmartcard"}) || !strings.Contains(calls[0].Body, `"smartcards":"[]"`) {
		t.Fatalf("calls %+v", calls)
	}
	// Names only: nothing to send.
	e.srv.ResetCalls()
	before = a.Clone()
	a.GivenName = "Renamed"
	if err := e.tg.Update(ctx, before, &a); err != nil || len(e.srv.Calls()) != 0 {
		t.Fatalf("names-only update: %v %+v", err, e.srv.Calls())
	}
	// A malformed smartcard is refused at plan time.
	a.Attributes[allthenticate.AttrSmartcards] = "12ab"
	if why := e.tg.Gate(connector.ActUpdate, a); !strings.Contains(why, "integer") {
		t.Fatalf("gate %q", why)
	}
}

func TestCreatePromotesGuestsAdoptsMembersSkipsOthers(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{}, func(*allthenticate.Settings) {})
	tg, err := allthenticate.New("allthenticate", allthenticate.Settings{BaseURL: e.url, APIKey: config.NewSecret(e.srv.APIKey()), SuspensionField: "email_status"},
		connector.Deps{}, allthenticate.AttrComputerUsernames)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	gid := e.srv.AddUser(allthenticatefake.User{Email: "guest@example.test", Tag: allthenticatefake.TagGuest, Suspended: true})
	g := identity.Account{Email: "guest@example.test", Attributes: map[string]string{allthenticate.AttrComputerUsernames: "gst"}}
	if err := tg.Create(ctx, &g); err != nil {
		t.Fatal(err)
	}
	// The promotion reads the guests first (whose ids would another
	// reading of /promoteguest name?) and after (who was promoted?).
	want := []string{"GET /multipleusers", "GET /multipleusers", "GET /multipleusers", "POST /promoteguest", "GET /multipleusers",
		"GET /multipleusers", "POST /togglesuspension", "GET /multipleusers", "POST /modifyallusernames"}
	if got := seq(e.srv.Calls()); !slices.Equal(got, want) {
		t.Fatalf("promotion %q, want %q", got, want)
	}
	if e.srv.Calls()[1].Params["user_tag"] != "GUEST" {
		t.Fatalf("guest list %+v", e.srv.Calls()[1])
	}
	if u, _ := e.srv.User(gid); u.Tag != allthenticatefake.TagUser || u.Suspended || !slices.Equal(u.ComputerUsernames, []string{"gst"}) || g.Remote[allthenticate.RemoteEmailID] != strconv.Itoa(gid) {
		t.Fatalf("promoted %+v remote %v", u, g.Remote)
	}
	// A member the cache did not know: adopted, nothing promoted.
	e.srv.ResetCalls()
	m := seed(e, "member@example.test")
	fresh := identity.Account{Email: "member@example.test"}
	if err := tg.Create(ctx, &fresh); err != nil {
		t.Fatal(err)
	}
	if w := writes(e.srv.Calls()); !slices.Equal(w, []string{"POST /modifyallusernames"}) || fresh.Remote[allthenticate.RemoteEmailID] != m.Remote[allthenticate.RemoteEmailID] {
		t.Fatalf("adoption writes %q remote %v", w, fresh.Remote)
	}
	// Nobody: a skip that says what to do, and nothing written.
	e.srv.ResetCalls()
	n := identity.Account{Email: "new@example.test"}
	err = tg.Create(ctx, &n)
	if connector.KindOf(err) != connector.KindSkipped || !strings.Contains(err.Error(), "invite them in Allthenticate") {
		t.Fatalf("create of a stranger: %v", err)
	}
	if w := writes(e.srv.Calls()); len(w) != 0 {
		t.Fatalf("writes %q", w)
	}
}

func TestDeleteAndMissingUsers(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{})
	ctx := ctxT(t)
	a := seed(e, "lu@example.test")
	if err := e.tg.Delete(ctx, &a); err != nil {
		t.Fatal(err)
	}
	c := e.srv.Calls()[1]
	if c.Method != http.MethodDelete || c.Path != "/user" || c.Params["email_id"] != a.Remote[allthenticate.RemoteEmailID] {
		t.Fatalf("delete %+v", c)
	}
	if _, ok := e.srv.User(remote(a)); ok {
		t.Fatal("still a member")
	}
	// Gone: every action on it is not found.
	if err := e.tg.Delete(ctx, &a); connector.KindOf(err) != connector.KindNotFound {
		t.Fatalf("second delete: %v", err)
	}
	a.Role = "ADMIN"
	if err := e.tg.SetRole(ctx, &a); connector.KindOf(err) != connector.KindNotFound {
		t.Fatalf("rank of a removed user: %v", err)
	}
	if _, err := e.tg.Read(ctx, identity.Account{Email: "nobody@example.test"}); connector.KindOf(err) != connector.KindNotFound {
		t.Fatalf("read: %v", err)
	}
}

func TestErrorsClassifiedAndKeyNeverShown(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{FaultOptions: fakekit.FaultOptions{RetryAfter: 9}})
	ctx := ctxT(t)
	a := seed(e, "max@example.test")
	a.Role = "ADMIN"
	for _, tc := range []struct {
		fault fakekit.Fault
		kind  connector.Kind
	}{{fakekit.Fault429, connector.KindRateLimited}, {fakekit.Fault500, connector.KindRetryable}, {fakekit.FaultDrop, connector.KindRetryable}} {
		e.srv.SetFaults(1, tc.fault)
		err := e.tg.SetRole(ctx, &a)
		if connector.KindOf(err) != tc.kind {
			t.Fatalf("%s: %v (%v)", tc.fault, connector.KindOf(err), err)
		}
		if tc.fault == fakekit.Fault429 && connector.RetryAfterOf(err) != 9*time.Second {
			t.Fatalf("Retry-After %v", connector.RetryAfterOf(err))
		}
	}
	e.srv.SetFaults(0)
	// A wrong key: permanent, and the configured key is not in the error.
	const key = "the-wrong-key-that-must-not-leak"
	bad := newEnv(t, allthenticatefake.Options{}, func(s *allthenticate.Settings) { s.APIKey = config.NewSecret(key) })
	_, err := bad.tg.List(ctx)
	if connector.KindOf(err) != connector.KindPermanent || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "api_key") {
		t.Fatalf("wrong key: %v", err)
	}
	for _, l := range []string{bad.logs.String(), e.logs.String()} {
		if strings.Contains(l, key) || strings.Contains(l, e.srv.APIKey()) {
			t.Fatal("a key reached the logs")
		}
	}
}

func TestListsGuestsToo(t *testing.T) {
	e := newEnv(t, allthenticatefake.Options{})
	seed(e, "nia@example.test", func(u *allthenticatefake.User) { u.Groups = []string{"Employees"} })
	seed(e, "oz@example.test", func(u *allthenticatefake.User) { u.Suspended = true })
	e.srv.AddUser(allthenticatefake.User{Email: "guest@example.test", Tag: allthenticatefake.TagGuest})
	list, err := e.tg.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].Email != "nia@example.test" || list[0].Suspended || !list[1].Suspended || list[1].Username != "oz" ||
		list[0].Remote[allthenticate.RemoteUserID] == "" || !list[0].Exists || list[0].DisplayName != "Given nia" ||
		list[0].Remote[allthenticate.RemoteTag] != "" || list[2].Email != "guest@example.test" || list[2].Remote[allthenticate.RemoteTag] != allthenticate.TagGuest {
		t.Fatalf("list %+v", list)
	}
}
