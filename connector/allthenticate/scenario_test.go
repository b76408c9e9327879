package allthenticate_test

import (
	"fmt"
	"github.com/dirsync/dirsync/connector/fakekit"
	"github.com/dirsync/dirsync/connector/targettest"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/allthenticate"
	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// The rules: staff are in scope; owners would be SUPER, security-admins
// ADMIN, everyone else REGULAR; computer usernames from sAMAccountName,
// smartcards from badge.
const atRulesYAML = `
    scope: [staff]
    roles: [{group: owners, role: SUPER}, {group: security-admins, role: ADMIN}]
    default_role: REGULAR
    attributes: {computer_usernames: sAMAccountName, smartcards: badge}
`

func atRules(c *config.TargetCommon) {
	c.Scope = []string{"staff"}
	c.Roles = []config.RoleRule{{Group: "owners", Role: "SUPER"}, {Group: "security-admins", Role: "ADMIN"}}
	c.DefaultRole = "REGULAR"
	c.Attributes = map[string]string{"computer_usernames": "sAMAccountName", "smartcards": "badge"}
}

type atScenario struct {
	t      *testing.T
	srv    *allthenticatefake.Server
	h      *synctest.Harness
	users  targettest.People
	logs   *syncBuffer
	engine *syncBuffer
}

func newATScenario(t *testing.T, o allthenticatefake.Options, deprovision, extra string, limits *config.Limits, mods ...func(*config.TargetCommon)) *atScenario {
	t.Helper()
	srv, url := allthenticatefake.NewTestServer(t, o)
	t.Setenv("ALLTHENTICATE_TEST_KEY", srv.APIKey())
	yaml := fmt.Sprintf("  - name: allthenticate\n    type: allthenticate\n    base_url: %s\n    api_key: ${ALLTHENTICATE_TEST_KEY}\n    deprovision: {action: %s}\n", url, deprovision) + atRulesYAML + extra
	cfg := parseTargets(t, yaml)[0]
	log, buf := debugLogger()
	tg, err := allthenticate.Factory(cfg, connector.Deps{Logger: log, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	elog, ebuf := debugLogger()
	common := synctest.Common(append([]func(*config.TargetCommon){atRules, func(c *config.TargetCommon) { c.Deprovision.Action = deprovision }}, mods...)...)
	if limits == nil {
		limits = &config.Limits{MaxSourceShrinkPercent: 20, QuarantineAfter: 5}
	}
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(tg, common)}, synctest.Options{Logger: elog, Limits: limits})
	return &atScenario{t: t, srv: srv, h: h, users: targettest.People{}, logs: buf, engine: ebuf}
}

// user is an active staff member with a computer username and a badge.
func user(key string, groups ...string) identity.User {
	u := synctest.User(key, append([]string{"staff"}, groups...)...)
	u.Attributes = map[string]string{"sAMAccountName": key, "badge": "1" + fmt.Sprint(len(key))}
	return u
}

func (sc *atScenario) set(us ...identity.User) { sc.users.Set(sc.h, us...) }

func (sc *atScenario) edit(key string, f func(*identity.User)) { sc.users.Edit(sc.h, key, f) }

func (sc *atScenario) run() ([]allthenticatefake.Call, []state.Decision) {
	sc.t.Helper()
	sc.srv.ResetCalls()
	ds := targettest.RunOK(sc.t, sc.h)
	return sc.srv.Calls(), ds
}

func (sc *atScenario) member(email string) allthenticatefake.User {
	sc.t.Helper()
	u, ok := sc.srv.UserByEmail(email)
	if !ok {
		sc.t.Fatalf("no member %s", email)
	}
	return u
}

func sortedWrites(calls []allthenticatefake.Call) []string {
	w := writes(calls)
	slices.Sort(w)
	return w
}

func TestScenarioAllthenticateLifecycle(t *testing.T) {
	sc := newATScenario(t, allthenticatefake.Options{}, "suspend", "", nil)
	srv := sc.srv
	srv.AddUser(allthenticatefake.User{Email: "alice@example.test", FirstName: "Given", LastName: "alice"})
	srv.AddUser(allthenticatefake.User{Email: "bob@example.test", FirstName: "Given", LastName: "bob", Tag: allthenticatefake.TagGuest})
	sc.set(user("alice"), user("bob"), user("carl"))

	// alice is adopted (lists and rank sent), bob the guest is promoted
	// (then his lists and rank), carl is not a member: skipped, once.
	calls, ds := sc.run()
	want := []string{"POST /modifyallusernames", "POST /modifyallusernames", "POST /modifyrank", "POST /modifyrank",
		"POST /modifysmartcard", "POST /modifysmartcard", "POST /promoteguest"}
	if w := sortedWrites(calls); !slices.Equal(w, want) {
		t.Fatalf("first run writes %q, want %q\n%+v", w, want, ds)
	}
	var skipped []state.Decision
	for _, d := range ds {
		if d.Outcome == "skipped" {
			skipped = append(skipped, d)
		}
	}
	if len(skipped) != 1 || skipped[0].User != "carl" || skipped[0].Action != "create" || !strings.Contains(skipped[0].Reason, "invite them in Allthenticate") {
		t.Fatalf("decisions %+v", ds)
	}
	for _, k := range []string{"alice", "bob"} {
		u := sc.member(k + "@example.test")
		if u.Tag != "USER" || u.Rank != "REGULAR" || !slices.Equal(u.ComputerUsernames, []string{k}) || len(u.Smartcards) != 1 || u.Suspended {
			t.Fatalf("%s after the first run: %+v", k, u)
		}
	}
	alice := sc.member("alice@example.test")
	if acc := sc.h.Accounts("allthenticate")["alice"]; acc.Remote[allthenticate.RemoteEmailID] != fmt.Sprint(alice.EmailID) || acc.Remote[allthenticate.RemoteUserID] != fmt.Sprint(alice.UserID) {
		t.Fatalf("cached %+v", acc)
	}

	// Nothing changed: no write and no decision (carl's skip is not
	// repeated; the list is read to look for him).
	calls, ds = sc.run()
	if len(writes(calls)) != 0 || len(ds) != 0 {
		t.Fatalf("no-op run: writes %q decisions %+v", writes(calls), ds)
	}

	// Rank: alice becomes a security admin.
	sc.edit("alice", func(u *identity.User) { u.Groups = append(u.Groups, "security-admins") })
	calls, _ = sc.run()
	rank := calls[slices.IndexFunc(calls, func(c allthenticatefake.Call) bool { return c.Path == "/modifyrank" })]
	if w := writes(calls); !slices.Equal(w, []string{"POST /modifyrank"}) || rank.Params["rank"] != "ADMIN" ||
		rank.Params["admin_user_id"] != fmt.Sprint(alice.UserID) {
		t.Fatalf("rank writes %q %+v", w, calls)
	}
	// SUPER is not allowed by this config: a skipped decision, no request.
	sc.edit("alice", func(u *identity.User) { u.Groups = append(u.Groups, "owners") })
	calls, ds = sc.run()
	if len(writes(calls)) != 0 || len(ds) != 1 || ds[0].Outcome != "skipped" || !strings.Contains(ds[0].Reason, "allow_super") {
		t.Fatalf("SUPER: writes %q decisions %+v", writes(calls), ds)
	}
	if sc.member("alice@example.test").Rank != "ADMIN" {
		t.Fatal("SUPER was granted")
	}
	sc.edit("alice", func(u *identity.User) { u.Groups = []string{"staff", "security-admins"} })
	sc.run()

	// A name change: Allthenticate has no API for names; the decision is
	// recorded, nothing is sent.
	sc.edit("alice", func(u *identity.User) { u.FamilyName = "Smith" })
	calls, ds = sc.run()
	if len(writes(calls)) != 0 || len(ds) != 1 || ds[0].Action != "update" || ds[0].Outcome != "applied" {
		t.Fatalf("name change: writes %q decisions %+v", writes(calls), ds)
	}

	// Computer username change: the whole list is replaced.
	sc.edit("alice", func(u *identity.User) { u.Attributes["sAMAccountName"] = "alice2" })
	calls, _ = sc.run()
	names := calls[slices.IndexFunc(calls, func(c allthenticatefake.Call) bool { return c.Path == "/modifyallusernames" })]
	if w := writes(calls); !slices.Equal(w, []string{"POST /modifyallusernames"}) || !strings.Contains(names.Body, `[{\"computer_username\":\"alice2\"}]`) {
		t.Fatalf("attribute change %+v", calls)
	}

	// Disable: read, one toggle, verify (after the engine's list of users
	// and guests, which
	// still looks for carl; leavers go first, then carl's create is tried
	// again: two reads that find he is still not a member).
	sc.edit("alice", func(u *identity.User) { u.Active = false })
	calls, ds = sc.run()
	got := seq(calls)
	if i := slices.Index(got, "POST /togglesuspension"); !slices.Equal(writes(calls), []string{"POST /togglesuspension"}) || i < 2 || i == len(got)-1 {
		t.Fatalf("disable: %q\n%+v", got, ds)
	}
	if !sc.member("alice@example.test").Suspended || srv.Toggles(alice.EmailID) != 1 {
		t.Fatal("alice not suspended by one toggle")
	}

	// Stale cache: an admin unsuspends alice by hand; when the directory
	// re-enables her, the read shows it is done: no toggle. Then an admin
	// suspends her by hand and the directory disables her: no toggle.
	srv.SetSuspended(alice.EmailID, false)
	sc.edit("alice", func(u *identity.User) { u.Active = true })
	calls, ds = sc.run()
	if n := toggles(calls); n != 0 || len(ds) != 1 || ds[0].Action != "unsuspend" || ds[0].Outcome != "applied" {
		t.Fatalf("re-enable with a stale cache: %d toggles, %+v", n, ds)
	}
	srv.SetSuspended(alice.EmailID, true)
	sc.edit("alice", func(u *identity.User) { u.Active = false })
	calls, _ = sc.run()
	if n := toggles(calls); n != 0 {
		t.Fatalf("disable with a stale cache: %d toggles", n)
	}
	// And a real re-enable toggles once.
	sc.edit("alice", func(u *identity.User) { u.Active = true })
	calls, _ = sc.run()
	if n := toggles(calls); n != 1 || sc.member("alice@example.test").Suspended {
		t.Fatalf("re-enable: %d toggles", n)
	}

	// Removal: bob leaves the scope; deprovision suspend toggles him once.
	sc.edit("bob", func(u *identity.User) { u.Groups = nil })
	calls, ds = sc.run()
	if n := toggles(calls); n != 1 || !sc.member("bob@example.test").Suspended {
		t.Fatalf("removal: %d toggles\n%+v", n, ds)
	}
	if ds[0].Action != "suspend" || !strings.Contains(ds[0].Reason, "no longer in scope") {
		t.Fatalf("decisions %+v", ds)
	}

	// carl is invited in Allthenticate: the next run adopts him.
	srv.AddUser(allthenticatefake.User{Email: "carl@example.test", FirstName: "Given", LastName: "carl"})
	calls, _ = sc.run()
	if w := sortedWrites(calls); !slices.Equal(w, []string{"POST /modifyallusernames", "POST /modifyrank", "POST /modifysmartcard"}) {
		t.Fatalf("carl's adoption writes %q", w)
	}

	for _, l := range []string{sc.logs.String(), sc.engine.String()} {
		if strings.Contains(l, srv.APIKey()) {
			t.Fatal("the API key reached the logs")
		}
	}
}

func TestScenarioAllthenticateDeprovisionDelete(t *testing.T) {
	sc := newATScenario(t, allthenticatefake.Options{}, "delete", "", nil)
	id := sc.srv.AddUser(allthenticatefake.User{Email: "dana@example.test", FirstName: "Given", LastName: "dana", Policies: []string{"dana-vpn"}})
	sc.set(user("dana"))
	sc.run()
	sc.edit("dana", func(u *identity.User) { u.Groups = nil })
	calls, ds := sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"DELETE /user"}) || calls[len(calls)-1].Params["email_id"] != fmt.Sprint(id) {
		t.Fatalf("writes %q\n%+v", w, ds)
	}
	if _, ok := sc.srv.User(id); ok {
		t.Fatal("dana is still a member")
	}
	// DELETE /user also deleted the policy assigned only to her: the
	// decision names it.
	var reason string
	for _, d := range ds {
		if d.Action == "delete" {
			reason = d.Reason
		}
	}
	if !strings.Contains(reason, "dana-vpn") || !slices.Equal(sc.srv.DeletedPolicies(), []string{"dana-vpn"}) {
		t.Fatalf("delete decision %q, deleted policies %v", reason, sc.srv.DeletedPolicies())
	}
}

// With 20% of requests failing (429 with Retry-After, 500, slow answers,
// dropped connections — before or after the request is applied), a
// 500-user initial sync converges: every user ends as desired, every user
// whose suspension had to change was toggled exactly once, Retry-After is
// honoured, and one user's failures do not hold up the others.
func TestScenarioAllthenticateFaultInjectionConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("500 users")
	}
	for _, after := range []bool{false, true} {
		t.Run(fmt.Sprintf("fault_after_apply=%v", after), func(t *testing.T) {
			sc := newATScenario(t, allthenticatefake.Options{FaultOptions: fakekit.FaultOptions{Seed: 11, FaultAfterApply: after}}, "suspend", "",
				&config.Limits{MaxSourceShrinkPercent: 20, QuarantineAfter: 10})
			srv := sc.srv
			const n = 500
			var us []identity.User
			wantSuspended := map[string]bool{}
			flips := map[string]bool{}
			for i := range n {
				key := fmt.Sprintf("user%03d", i)
				u := user(key)
				if i%50 == 0 {
					u.Groups = append(u.Groups, "security-admins")
				}
				u.Active = i%20 != 0
				// Some were suspended by hand before dirsync ran.
				handSuspended := i%30 == 0
				srv.AddUser(allthenticatefake.User{Email: u.Email, FirstName: u.GivenName, LastName: u.FamilyName, Suspended: handSuspended})
				wantSuspended[u.Email] = !u.Active
				flips[u.Email] = handSuspended != !u.Active
				us = append(us, u)
			}
			sc.set(us...)
			srv.SetFaults(0.2)
			targettest.Converge(t, sc.h, n, func() { srv.SetFaults(0) }, func() []fakekit.Fault {
				var fs []fakekit.Fault
				for _, c := range srv.Calls() {
					fs = append(fs, c.Fault)
				}
				return fs
			})
			changed := 0
			for i, u := range us {
				m := sc.member(u.Email)
				wantRank := "REGULAR"
				if i%50 == 0 {
					wantRank = "ADMIN"
				}
				if m.Suspended != wantSuspended[u.Email] || m.Rank != wantRank || !slices.Equal(m.ComputerUsernames, []string{u.Username}) || len(m.Smartcards) != 1 {
					t.Fatalf("%s: %+v", u.Email, m)
				}
				wantToggles := 0
				if flips[u.Email] {
					wantToggles = 1
					changed++
				}
				if got := srv.Toggles(m.EmailID); got != wantToggles {
					t.Fatalf("%s toggled %d times, want %d", u.Email, got, wantToggles)
				}
			}
			t.Logf("%d users needed a suspension change, each toggled once", changed)
			srv.ResetCalls()
			res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
			if w := writes(srv.Calls()); len(w) != 0 || res.Status != "ok" {
				t.Fatalf("after convergence: writes %q, status %s", w, res.Status)
			}
		})
	}
}

// A person disabled in the directory who is only a guest in Allthenticate
// is suspended like a full user: the engine's list reads the guests too,
// and the suspension reads, toggles once and verifies. Exact requests.
func TestScenarioDisabledGuestSuspended(t *testing.T) {
	sc := newATScenario(t, allthenticatefake.Options{}, "suspend", "", nil, func(c *config.TargetCommon) {
		c.Roles, c.DefaultRole, c.Attributes = nil, "", nil
	})
	gid := sc.srv.AddUser(allthenticatefake.User{Email: "gus@example.test", FirstName: "Given", LastName: "gus", Tag: allthenticatefake.TagGuest})
	gus := user("gus")
	gus.Active = false
	sc.set(gus)
	calls, ds := sc.run()
	type req struct{ method, path, query, body string }
	var got []req
	for _, c := range calls {
		got = append(got, req{c.Method, c.Path, c.Query, c.Body})
	}
	toggle := fmt.Sprintf(`{"email_id":%d}`, gid)
	want := []req{
		{"GET", "/multipleusers", "email=true", ""},                // the engine's list: full users
		{"GET", "/multipleusers", "email=true&user_tag=GUEST", ""}, // and guests
		{"GET", "/multipleusers", "email=true", ""},                // suspend: read
		{"GET", "/multipleusers", "email=true&user_tag=GUEST", ""},
		{"POST", "/togglesuspension", "", toggle},   // one toggle
		{"GET", "/multipleusers", "email=true", ""}, // verify
		{"GET", "/multipleusers", "email=true&user_tag=GUEST", ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("requests\n%q\nwant\n%q\ndecisions %+v", got, want, ds)
	}
	if len(ds) != 1 || ds[0].Action != "suspend" || ds[0].Outcome != "applied" {
		t.Fatalf("decisions %+v", ds)
	}
	if u, _ := sc.srv.UserByEmail("gus@example.test"); !u.Suspended || u.Tag != allthenticatefake.TagGuest {
		t.Fatalf("gus %+v", u)
	}
	// Nothing more on the next run.
	if calls, ds := sc.run(); len(writes(calls)) != 0 || len(ds) != 0 {
		t.Fatalf("second run: %+v %+v", calls, ds)
	}
}
