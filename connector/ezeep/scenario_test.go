package ezeep_test

import (
	"encoding/json"
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
	"github.com/dirsync/dirsync/connector/ezeep"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// The rules: print-users are in scope, print-admins are admins, everyone
// else user; staff and design map to the ezeep groups staff and color.
const ezRulesYAML = `
    scope: [print-users]
    roles: [{group: print-admins, role: admin}]
    default_role: user
    groups: [{group: staff, as: staff}, {group: design, as: color}]
`

func ezRules(c *config.TargetCommon) {
	c.Scope = []string{"print-users"}
	c.Roles = []config.RoleRule{{Group: "print-admins", Role: "admin"}}
	c.DefaultRole = "user"
	c.Groups = []config.GroupRule{{Group: "staff", As: "staff"}, {Group: "design", As: "color"}}
}

type ezScenario struct {
	t       *testing.T
	srv     *ezeepfake.Server
	h       *synctest.Harness
	tg      connector.Connector
	groups  map[string]string
	users   targettest.People
	logs    *syncBuffer // the connector's
	engine  *syncBuffer // the engine's decision lines
	secrets []string
}

// newEZScenario builds the connector through Factory from YAML (extra is
// appended to the target) and the engine with the same rules (mods adjust
// them); the fake, the connector and the engine share the harness clock.
func newEZScenario(t *testing.T, o ezeepfake.Options, deprovision, extra string, mods ...func(*config.TargetCommon)) *ezScenario {
	t.Helper()
	var h *synctest.Harness
	now := func() time.Time { return h.Clock.Now() }
	o.Now = now
	srv, url := ezeepfake.NewTestServer(t, o)
	groups := map[string]string{"staff": srv.AddGroup("staff"), "color": srv.AddGroup("color")}
	t.Setenv("EZEEP_TEST_CLIENT_ID", srv.ClientID())
	t.Setenv("EZEEP_TEST_CLIENT_SECRET", srv.ClientSecret())
	yaml := fmt.Sprintf(`  - name: ezeep
    type: ezeep
    account_url: %s
    printing_url: %s/printing/v1
    client_id: ${EZEEP_TEST_CLIENT_ID}
    client_secret: ${EZEEP_TEST_CLIENT_SECRET}
    group_ids: {staff: %s, color: %s}
    deprovision: {action: %s}
`, url, url, groups["staff"], groups["color"], deprovision) + ezRulesYAML + extra
	cfg := parseTargets(t, yaml)[0]
	log, buf := debugLogger()
	tg, err := ezeep.Factory(cfg, connector.Deps{Logger: log, Now: now, HTTPClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	elog, ebuf := debugLogger()
	common := synctest.Common(append([]func(*config.TargetCommon){ezRules, func(c *config.TargetCommon) {
		c.Deprovision.Action = deprovision
	}}, mods...)...)
	h = synctest.New(t, []dsync.TargetSpec{synctest.Spec(tg, common)}, synctest.Options{Logger: elog,
		Limits: &config.Limits{MaxSourceShrinkPercent: 20, QuarantineAfter: 5}})
	return &ezScenario{t: t, srv: srv, h: h, tg: tg, groups: groups, users: targettest.People{}, logs: buf, engine: ebuf,
		secrets: []string{srv.ClientSecret()}}
}

func (sc *ezScenario) set(us ...identity.User) { sc.users.Set(sc.h, us...) }

func (sc *ezScenario) edit(key string, f func(*identity.User)) { sc.users.Edit(sc.h, key, f) }

// run runs the engine once and returns the requests the fake received and
// the decisions; a failed decision fails the test.
func (sc *ezScenario) run() ([]ezeepfake.Call, []state.Decision) {
	sc.t.Helper()
	sc.srv.ResetCalls()
	ds := targettest.RunOK(sc.t, sc.h)
	return sc.srv.Calls(), ds
}

func (sc *ezScenario) id(email string) string {
	sc.t.Helper()
	u, ok := sc.srv.UserByEmail(email)
	if !ok {
		sc.t.Fatalf("no ezeep user %s", email)
	}
	return u.ID
}

// checkGroupPatches asserts that every group PATCH carried a complete
// list: exactly the groups the user has afterwards in the fake.
func (sc *ezScenario) checkGroupPatches(calls []ezeepfake.Call) {
	sc.t.Helper()
	last := map[string][]string{}
	for _, c := range calls {
		if c.Method == http.MethodPatch && strings.HasPrefix(c.Path, "/printing/v1/users/") && c.Status == 200 {
			last[strings.TrimSuffix(strings.TrimPrefix(c.Path, "/printing/v1/users/"), "/")] = groupBody(sc.t, c)
		}
	}
	for id, sent := range last {
		u, _ := sc.srv.User(id)
		if !slices.Equal(sent, sorted(u.Groups...)) {
			sc.t.Fatalf("the last group PATCH of %s sent %v but the user has %v", u.Email, sent, u.Groups)
		}
	}
}

func decisionsOf(ds []state.Decision, action string) []state.Decision {
	var out []state.Decision
	for _, d := range ds {
		if d.Action == action {
			out = append(out, d)
		}
	}
	return out
}

func TestScenarioEzeepLifecycle(t *testing.T) {
	sc := newEZScenario(t, ezeepfake.Options{}, "suspend", "")
	staff, color := sc.groups["staff"], sc.groups["color"]
	exp := time.Date(2027, 3, 31, 18, 0, 0, 0, time.UTC)
	bob := synctest.User("bob", "print-users", "staff", "design")
	bob.Expires = &exp
	sc.set(synctest.User("alice", "print-users", "print-admins", "staff"), bob, synctest.User("carl", "staff"))

	// In scope → invited, then role and groups (carl is out of scope);
	// bob's invitation carries his directory expiry from the start.
	calls, ds := sc.run()
	a, b := sc.id("alice@example.test"), sc.id("bob@example.test")
	bobInv := sc.srv.Invitations("bob@example.test")
	if len(bobInv) != 1 || !bobInv[0].ExpireDate.Equal(exp) {
		t.Fatalf("bob's invitation %+v, want it to expire with him at %s", bobInv, exp)
	}
	w := writes(calls)
	slices.Sort(w)
	want := []string{"PATCH /printing/v1/users/" + a + "/", "PATCH /printing/v1/users/" + b + "/", "PATCH /v1/users/" + a + "/",
		"PATCH /v1/users/" + b + "/", "POST /v1/userinvitations/", "POST /v1/userinvitations/"}
	slices.Sort(want)
	if !slices.Equal(w, want) {
		t.Fatalf("first run writes %q, want %q\n%+v", w, want, ds)
	}
	if len(decisionsOf(ds, "create")) != 2 || len(decisionsOf(ds, "set_expiry")) != 0 {
		t.Fatalf("decisions %+v", ds)
	}
	if _, ok := sc.srv.UserByEmail("carl@example.test"); ok {
		t.Fatal("carl is out of scope")
	}
	ua, _ := sc.srv.User(a)
	ub, _ := sc.srv.User(b)
	if ua.Role != "admin" || !slices.Equal(ua.Groups, []string{staff}) || ub.Role != "user" || !slices.Equal(sorted(ub.Groups...), sorted(staff, color)) {
		t.Fatalf("after the first run alice %+v bob %+v", ua, ub)
	}
	sc.checkGroupPatches(calls)
	acc := sc.h.Accounts("ezeep")["alice"]
	if acc.Remote[ezeep.RemoteUUID] != a || acc.Remote[ezeep.RemoteGroups] != staff {
		t.Fatalf("cached remote %v", acc.Remote)
	}

	// Both accept their invitations (a pending invitee's suspension
	// withdraws the invitation instead: TestScenarioEzeepPendingInvitee).
	sc.srv.Accept("alice@example.test")
	sc.srv.Accept("bob@example.test")

	// Nothing changed: no request at all.
	if calls, _ := sc.run(); len(calls) != 0 {
		t.Fatalf("no-op run sent %d requests: %+v", len(calls), calls)
	}

	// Profile change: one PATCH with names and email.
	sc.edit("alice", func(u *identity.User) { u.GivenName = "Alicia" })
	calls, _ = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"PATCH /v1/users/" + a + "/"}) {
		t.Fatalf("profile writes %q", w)
	}
	if m := body(t, calls[len(calls)-1]); m["first_name"] != "Alicia" || m["last_name"] != "alice" || m["email"] != "alice@example.test" {
		t.Fatalf("profile body %v", m)
	}

	// Role change: alice leaves print-admins.
	sc.edit("alice", func(u *identity.User) { u.Groups = []string{"print-users", "staff"} })
	calls, _ = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"PATCH /v1/users/" + a + "/"}) {
		t.Fatalf("role writes %q", w)
	}
	if m := body(t, calls[len(calls)-1]); m["roles"] != "user" || len(m) != 1 {
		t.Fatalf("role body %v", m)
	}

	// Group change: alice joins design; the PATCH carries the complete
	// list, read first (read_groups_first, the default).
	sc.edit("alice", func(u *identity.User) { u.Groups = []string{"print-users", "staff", "design"} })
	calls, _ = sc.run()
	if len(calls) != 2 || calls[0].Method != http.MethodGet || writes(calls)[0] != "PATCH /printing/v1/users/"+a+"/" {
		t.Fatalf("group change calls %+v", calls)
	}
	if got := groupBody(t, calls[1]); !slices.Equal(got, sorted(staff, color)) {
		t.Fatalf("group PATCH %v", got)
	}

	// Disable: ezeep has no suspension; groups and the admin role go.
	sc.edit("alice", func(u *identity.User) { u.Active = false })
	calls, ds = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"PATCH /v1/users/" + a + "/", "PATCH /printing/v1/users/" + a + "/"}) {
		t.Fatalf("disable writes %q", w)
	}
	if got := groupBody(t, lastWrite(t, calls, http.MethodPatch, "/printing/v1/users/"+a+"/")); len(got) != 0 {
		t.Fatalf("strip sent %v", got)
	}
	if len(decisionsOf(ds, "suspend")) != 1 {
		t.Fatalf("decisions %+v", ds)
	}
	if u, _ := sc.srv.User(a); len(u.Groups) != 0 || u.Role != "user" {
		t.Fatalf("after disable %+v", u)
	}

	// Re-enable: role and the desired groups come back.
	sc.edit("alice", func(u *identity.User) { u.Active = true })
	calls, ds = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"PATCH /v1/users/" + a + "/", "PATCH /printing/v1/users/" + a + "/"}) {
		t.Fatalf("re-enable writes %q\n%+v", w, ds)
	}
	if u, _ := sc.srv.User(a); !slices.Equal(sorted(u.Groups...), sorted(staff, color)) || u.Role != "user" {
		t.Fatalf("after re-enable %+v", u)
	}
	sc.checkGroupPatches(calls)

	// Removal: bob leaves the scope; deprovision suspend strips him.
	sc.edit("bob", func(u *identity.User) { u.Groups = []string{"staff", "design"} })
	calls, ds = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"PATCH /v1/users/" + b + "/", "PATCH /printing/v1/users/" + b + "/"}) {
		t.Fatalf("removal writes %q", w)
	}
	if d := decisionsOf(ds, "suspend"); len(d) != 1 || !strings.Contains(d[0].Reason, "no longer in scope") {
		t.Fatalf("decisions %+v", ds)
	}
	// And back in scope: restored.
	sc.edit("bob", func(u *identity.User) { u.Groups = []string{"print-users", "staff", "design"} })
	sc.run()
	if u, _ := sc.srv.User(b); !slices.Equal(sorted(u.Groups...), sorted(staff, color)) {
		t.Fatalf("bob back in scope: %+v", u)
	}

	// No credential reached the connector's logs or the decision lines.
	for _, s := range []string{sc.logs.String(), sc.engine.String()} {
		for _, secret := range append(sc.srv.Tokens(), sc.secrets...) {
			if strings.Contains(s, secret) {
				t.Fatal("a credential reached the logs")
			}
		}
	}
}

// With deprovision delete (and include_inactive false, as documented),
// leavers and disabled users are deleted.
func TestScenarioEzeepDeprovisionDelete(t *testing.T) {
	sc := newEZScenario(t, ezeepfake.Options{}, "delete", "    include_inactive: false\n", func(c *config.TargetCommon) {
		f := false
		c.IncludeInactive = &f
	})
	if _, ok := sc.tg.(connector.Suspender); ok {
		t.Fatal("delete mode offers no suspension")
	}
	sc.set(synctest.User("dan", "print-users", "staff"), synctest.User("eve", "print-users"))
	sc.run()
	d, e := sc.id("dan@example.test"), sc.id("eve@example.test")
	sc.edit("dan", func(u *identity.User) { u.Groups = []string{"staff"} })
	sc.edit("eve", func(u *identity.User) { u.Active = false })
	calls, ds := sc.run()
	w := writes(calls)
	slices.Sort(w)
	if want := sorted("DELETE /v1/users/"+d+"/", "DELETE /v1/users/"+e+"/"); !slices.Equal(w, want) {
		t.Fatalf("writes %q, want %q\n%+v", w, want, ds)
	}
	if len(sc.srv.Users()) != 0 {
		t.Fatalf("users left %+v", sc.srv.Users())
	}
}

// Users who exist in ezeep before dirsync runs are adopted by email (with
// their uuid and complete group list) instead of invited again.
func TestScenarioEzeepAdoptsExistingUsers(t *testing.T) {
	sc := newEZScenario(t, ezeepfake.Options{}, "suspend", "")
	hand := sc.srv.AddGroup("hand-made")
	id := sc.srv.AddUser(ezeepfake.User{Email: "Fay@Example.test", FirstName: "Given", LastName: "fay", IsVerified: true,
		Role: ezeepfake.RoleAdmin, Groups: []string{hand, sc.groups["staff"]}})
	sc.set(synctest.User("fay", "print-users", "design"))
	calls, ds := sc.run()
	// No invitation; the role becomes user, and the group PATCH keeps the
	// hand-made group (known from the list) while staff → color.
	w := writes(calls)
	if slices.Contains(w, "POST /v1/userinvitations/") {
		t.Fatalf("an existing user was invited: %q", w)
	}
	u, _ := sc.srv.User(id)
	if u.Role != "user" || !slices.Equal(sorted(u.Groups...), sorted(hand, sc.groups["color"])) {
		t.Fatalf("fay %+v (groups %v)\n%+v", u, sc.srv.GroupNames(u.Groups), ds)
	}
	if acc := sc.h.Accounts("ezeep")["fay"]; acc.Remote[ezeep.RemoteUUID] != id {
		t.Fatalf("cached %+v", acc)
	}
}

// With 20% of requests failing (429 with Retry-After, 500, slow answers,
// dropped connections), a 500-user initial sync converges: every user is
// invited exactly once, has the desired role and groups, Retry-After is
// honoured, and one user's failures do not stop the others.
func TestScenarioEzeepFaultInjectionConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("500 users")
	}
	sc := newEZScenario(t, ezeepfake.Options{MaxPerPage: 1000, FaultOptions: fakekit.FaultOptions{FaultRate: 0.2, Seed: 7}}, "suspend", "    page_size: 500\n")
	srv := sc.srv
	const n = 500
	var us []identity.User
	for i := range n {
		groups := []string{"print-users", "staff"}
		if i%3 == 0 {
			groups = append(groups, "design")
		}
		if i%50 == 0 {
			groups = append(groups, "print-admins")
		}
		us = append(us, synctest.User(fmt.Sprintf("user%03d", i), groups...))
	}
	sc.set(us...)
	targettest.Converge(t, sc.h, n, func() { srv.SetFaults(0) }, func() []fakekit.Fault {
		var fs []fakekit.Fault
		for _, c := range srv.Calls() {
			fs = append(fs, c.Fault)
		}
		return fs
	})
	applied := srv.Applied()
	for i, u := range us {
		email := u.Email
		eu, ok := srv.UserByEmail(email)
		if !ok {
			t.Fatalf("%s was not invited", email)
		}
		if c := applied["POST /v1/userinvitations/ "+email]; c != 1 {
			t.Fatalf("%s invited %d times", email, c)
		}
		wantRole := "user"
		if i%50 == 0 {
			wantRole = "admin"
		}
		wantGroups := []string{sc.groups["staff"]}
		if i%3 == 0 {
			wantGroups = sorted(sc.groups["staff"], sc.groups["color"])
		}
		if eu.Role != wantRole || !slices.Equal(sorted(eu.Groups...), wantGroups) {
			t.Fatalf("%s: role %q groups %v, want %q %v", email, eu.Role, eu.Groups, wantRole, wantGroups)
		}
	}
	// Every group PATCH, faults or not, carried a complete list.
	for _, c := range srv.Calls() {
		if c.Method == http.MethodPatch && strings.HasPrefix(c.Path, "/printing/") {
			var in struct {
				Groups []map[string]string `json:"groups"`
			}
			if json.Unmarshal([]byte(c.Body), &in) != nil || len(in.Groups) == 0 {
				t.Fatalf("a group PATCH without the complete list: %+v", c)
			}
		}
	}
	srv.ResetCalls()
	res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
	if calls := srv.Calls(); len(calls) != 0 || res.Status != "ok" {
		t.Fatalf("after convergence: %d requests, status %s", len(calls), res.Status)
	}
}
