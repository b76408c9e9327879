package netmaker_test

import (
	"encoding/json"
	"fmt"
	"github.com/dirsync/dirsync/connector/fakekit"
	"github.com/dirsync/dirsync/connector/targettest"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/netmaker"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// rules: vpn-admins are admins, everyone else platform-user; two groups.
func rules(c *config.TargetCommon) {
	c.Roles = []config.RoleRule{{Group: "vpn-admins", Role: "admin"}}
	c.DefaultRole = "platform-user"
	c.Groups = []config.GroupRule{{Group: "vpn-dev", As: "dev"}, {Group: "vpn-ops", As: "ops"}}
}

const rulesYAML = `
    roles: [{group: vpn-admins, role: admin}]
    default_role: platform-user
    groups: [{group: vpn-dev, as: dev}, {group: vpn-ops, as: ops}]
`

type nmScenario struct {
	t     *testing.T
	e     *env
	h     *synctest.Harness
	users targettest.People
	logs  interface{ String() string }
}

// newNMScenario builds the connector through Factory from YAML (extra is
// appended to the target), and the engine with the same rules (common
// mods adjust them).
func newNMScenario(t *testing.T, o netmakerfake.Options, extra string, mods ...func(*config.TargetCommon)) *nmScenario {
	t.Helper()
	return newNMScenarioToken(t, o, (*netmakerfake.Server).AdminToken, extra, mods...)
}

// newNMScenarioToken is newNMScenario with the token token gives (the
// master key); the connector may be an *Adopting one (create: false).
func newNMScenarioToken(t *testing.T, o netmakerfake.Options, token func(*netmakerfake.Server) string, extra string, mods ...func(*config.TargetCommon)) *nmScenario {
	t.Helper()
	srv, url := netmakerfake.NewTestServer(t, o)
	e := &env{srv: srv, url: url, token: token(srv)}
	t.Setenv("NETMAKER_TEST_TOKEN", e.token)
	yaml := "  - name: netmaker\n    type: netmaker\n    base_url: " + url + "\n    token: ${NETMAKER_TEST_TOKEN}\n" + rulesYAML + extra
	cfg := parseTargets(t, yaml)[0]
	log, buf := debugLogger()
	e.logs = buf
	tg, err := netmaker.Factory(cfg, connector.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if inner, ok := tg.(*netmaker.Adopting); ok {
		e.tg = inner.Inner()
	} else {
		e.tg = tg.(*netmaker.Target)
	}
	logger, logs := debugLogger()
	common := synctest.Common(append([]func(*config.TargetCommon){rules}, mods...)...)
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(tg, common)}, synctest.Options{Logger: logger,
		Limits: &config.Limits{MaxSourceShrinkPercent: 20, QuarantineAfter: 5}})
	return &nmScenario{t: t, e: e, h: h, users: targettest.People{}, logs: logs}
}

func (sc *nmScenario) set(us ...identity.User) { sc.users.Set(sc.h, us...) }

func (sc *nmScenario) edit(key string, f func(*identity.User)) { sc.users.Edit(sc.h, key, f) }

// run runs the engine once and returns the requests the server received.
func (sc *nmScenario) run() ([]netmakerfake.Call, []state.Decision) {
	sc.t.Helper()
	sc.e.srv.ResetCalls()
	ds := targettest.RunOK(sc.t, sc.h)
	return sc.e.srv.Calls(), ds
}

func writes(calls []netmakerfake.Call) []string {
	var out []string
	for _, c := range calls {
		if c.Method != http.MethodGet {
			out = append(out, c.Method+" "+c.Path)
		}
	}
	return out
}

func TestScenarioNetmaker(t *testing.T) {
	sc := newNMScenario(t, netmakerfake.Options{}, "")
	srv := sc.e.srv
	dev, ops, manual := srv.AddGroup("dev"), srv.AddGroup("ops"), srv.AddGroup("hand-made")
	// alice exists before dirsync, with MFA, a hand-made group and a
	// network role: she is adopted, and keeps them.
	srv.AddUser(netmakerfake.User{Username: "alice", DisplayName: "Given alice", PlatformRoleID: "platform-user", IsMFAEnabled: true,
		UserGroups:   map[string]struct{}{manual: {}},
		NetworkRoles: map[string]map[string]struct{}{"net1": {"net1-user": {}}}})
	totp := srv.TOTPSecret("alice")
	sc.set(synctest.User("alice", "vpn-admins", "vpn-dev"), synctest.User("bob1", "vpn-dev"))

	calls, ds := sc.run()
	w := writes(calls)
	// alice: role and groups (two read-modify-writes); bob1: created with
	// the default role, then its groups.
	want := []string{"POST /api/users/bob1", "PUT /api/users/alice", "PUT /api/users/alice", "PUT /api/users/bob1"}
	slices.Sort(w)
	if !slices.Equal(w, want) {
		t.Fatalf("first run writes %q, want %q\n%+v", w, want, ds)
	}
	a, _ := srv.User("alice")
	if a.PlatformRoleID != "admin" || !a.IsMFAEnabled || srv.TOTPSecret("alice") != totp || len(a.NetworkRoles) != 1 {
		t.Fatalf("alice after the first run: %+v", a)
	}
	if got := groupNames(srv, a); !slices.Equal(got, []string{"dev", "hand-made"}) {
		t.Fatalf("alice's groups %v", got)
	}
	b, _ := srv.User("bob1")
	if b.PlatformRoleID != "platform-user" || !slices.Equal(b.GroupIDs(), []string{dev}) || b.AuthType != "basic_auth" {
		t.Fatalf("bob1: %+v", b)
	}

	// No change: no request at all.
	if calls, _ := sc.run(); len(calls) != 0 {
		t.Fatalf("no-op run sent %d requests: %+v", len(calls), calls)
	}

	// Role change: alice leaves vpn-admins. One read, one PUT that keeps
	// MFA and her other groups.
	sc.edit("alice", func(u *identity.User) { u.Groups = []string{"vpn-dev"} })
	calls, _ = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"PUT /api/users/alice"}) {
		t.Fatalf("role change writes %q", w)
	}
	var body map[string]any
	_ = json.Unmarshal([]byte(calls[len(calls)-1].Body), &body)
	if body["platform_role_id"] != "platform-user" || body["is_mfa_enabled"] != true || len(body["user_group_ids"].(map[string]any)) != 2 {
		t.Fatalf("PUT body %v", body)
	}
	a, _ = srv.User("alice")
	if a.PlatformRoleID != "platform-user" || !a.IsMFAEnabled || srv.TOTPSecret("alice") != totp || len(a.UserGroups) != 2 {
		t.Fatalf("alice after the role change: %+v", a)
	}

	// Group membership change: bob1 joins vpn-ops.
	sc.edit("bob1", func(u *identity.User) { u.Groups = []string{"vpn-dev", "vpn-ops"} })
	calls, _ = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"PUT /api/users/bob1"}) {
		t.Fatalf("group change writes %q", w)
	}
	b, _ = srv.User("bob1")
	if !slices.Equal(b.GroupIDs(), sortedIDs(dev, ops)) {
		t.Fatalf("bob1's groups %v", srv.GroupNames(b.GroupIDs()))
	}

	// Disable, re-enable.
	sc.edit("bob1", func(u *identity.User) { u.Active = false })
	calls, _ = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"POST /api/users/bob1/disable"}) {
		t.Fatalf("disable writes %q", w)
	}
	if b, _ := srv.User("bob1"); !b.AccountDisabled {
		t.Fatal("bob1 not disabled")
	}
	sc.edit("bob1", func(u *identity.User) { u.Active = true })
	calls, _ = sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"POST /api/users/bob1/enable"}) {
		t.Fatalf("enable writes %q", w)
	}

	// Nothing in the engine's decision lines or the connector's logs
	// carries the token.
	for _, s := range []string{sc.logs.String(), sc.e.logs.String()} {
		if strings.Contains(s, sc.e.token) || strings.Contains(s, srv.MasterKey()) {
			t.Fatal("a credential reached the logs")
		}
	}
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

// On a community server, group rules become skipped decisions (logged
// once), and the rest is applied.
func TestScenarioCommunityEdition(t *testing.T) {
	sc := newNMScenario(t, netmakerfake.Options{Community: true}, "    create_role: admin\n", func(c *config.TargetCommon) {
		c.Roles = nil
		c.DefaultRole = "admin"
	})
	sc.set(synctest.User("carl", "vpn-dev"))
	calls, ds := sc.run()
	if w := writes(calls); !slices.Equal(w, []string{"POST /api/users/carl"}) {
		t.Fatalf("writes %q\n%+v", w, ds)
	}
	var skipped []state.Decision
	for _, d := range ds {
		if d.Outcome == "skipped" {
			skipped = append(skipped, d)
		}
	}
	if len(skipped) != 1 || skipped[0].Action != string(connector.ActSetGroups) || !strings.Contains(skipped[0].Reason, "community edition") {
		t.Fatalf("decisions %+v", ds)
	}
	// The engine records the skip before the same account's create step
	// overwrites the record, so on the run after a create the skip is told
	// once more (reported to the engine's owner); after that, silence.
	calls, ds = sc.run()
	if len(calls) != 0 || len(ds) > 1 || (len(ds) == 1 && ds[0].Action != string(connector.ActSetGroups)) {
		t.Fatalf("second run: calls %+v decisions %+v", calls, ds)
	}
	calls, ds = sc.run()
	if len(calls) != 0 || len(ds) != 0 {
		t.Fatalf("third run: calls %+v decisions %+v", calls, ds)
	}
}

// A create the server would get wrong is skipped, once, and nothing else
// is tried for that account: on a community server, a user whose rules
// give platform-user (it would become an admin); with the master key,
// anyone.
func TestScenarioCreateSkipped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		o     netmakerfake.Options
		extra string
		want  string
	}{
		{"community", netmakerfake.Options{Community: true}, "", "creates every user as admin"},
		{"master key", netmakerfake.Options{MasterKey: "not-a-jwt-master-key"}, "    token_kind: master_key\n", "master key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newNMScenario(t, tc.o, tc.extra)
			sc.set(synctest.User("dora", "vpn-dev"))
			calls, ds := sc.run()
			if w := writes(calls); len(w) != 0 {
				t.Fatalf("writes %q", w)
			}
			// The create is skipped with the reason (steps planned after it
			// may be skipped too); nothing fails.
			found := false
			for _, d := range ds {
				if d.Outcome != "skipped" {
					t.Fatalf("decision %+v", d)
				}
				found = found || d.Action == "create" && strings.Contains(d.Reason, tc.want)
			}
			if !found {
				t.Fatalf("decisions %+v", ds)
			}
			// The next run sends nothing either (it may tell the skip again:
			// skips are decisions, not cache records).
			calls, ds = sc.run()
			if len(writes(calls)) != 0 {
				t.Fatalf("second run: calls %+v", calls)
			}
			for _, d := range ds {
				if d.Outcome != "skipped" {
					t.Fatalf("second run: decision %+v", d)
				}
			}
		})
	}
}

// With 20% of requests failing (429 with Retry-After, 500, slow answers,
// dropped connections), a 500-user initial sync converges, and every
// change lands exactly once.
func TestScenarioFaultInjectionConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("500 users")
	}
	sc := newNMScenario(t, netmakerfake.Options{FaultOptions: fakekit.FaultOptions{FaultRate: 0.2, Seed: 42}}, "")
	srv := sc.e.srv
	srv.SetFaults(0)
	srv.AddGroup("dev")
	srv.AddGroup("ops")
	const n = 500
	var us []identity.User
	for i := range n {
		groups := []string{"vpn-dev"}
		if i%3 == 0 {
			groups = append(groups, "vpn-ops")
		}
		if i%50 == 0 {
			groups = append(groups, "vpn-admins")
		}
		us = append(us, synctest.User(fmt.Sprintf("user%03d", i), groups...))
	}
	sc.set(us...)
	srv.SetFaults(0.2)
	runs := 0
	for ; runs < 5; runs++ {
		res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
		failed := 0
		for _, d := range sc.h.DecisionsOf(res.RunID) {
			if d.Outcome == "failed" {
				failed++
			}
		}
		for _, d := range sc.h.DecisionsOf(res.RunID) {
			if d.Outcome == "failed" {
				t.Logf("run %d: %s %s: %s (%s)", runs+1, d.User, d.Action, d.Error, d.Reason)
			}
		}
		if failed == 0 && res.Status == "ok" {
			break
		}
	}
	srv.SetFaults(0)
	faults := map[fakekit.Fault]int{}
	for _, c := range srv.Calls() {
		if c.Fault != "" {
			faults[c.Fault]++
		}
	}
	t.Logf("converged after %d run(s); %d requests, injected faults: %v", runs+1, len(srv.Calls()), faults)
	if runs == 5 {
		t.Fatal("did not converge in 5 runs")
	}
	if len(faults) != 4 {
		t.Fatalf("not every kind of fault was injected: %v", faults)
	}
	// Every user is as desired, and each change landed exactly once: one
	// create (with the role the person will have: the admins' role PUT
	// then changes nothing) and one PUT for the groups.
	applied := srv.Applied()
	for i, u := range us {
		nu, ok := srv.User(u.Username)
		if !ok {
			t.Fatalf("%s was not created", u.Username)
		}
		wantRole := "platform-user"
		if i%50 == 0 {
			wantRole = "admin"
		}
		wantGroups := []string{"dev"}
		if i%3 == 0 {
			wantGroups = []string{"dev", "ops"}
		}
		if nu.PlatformRoleID != wantRole || !slices.Equal(groupNames(srv, nu), wantGroups) {
			t.Fatalf("%s: role %q groups %v, want %q %v", u.Username, nu.PlatformRoleID, groupNames(srv, nu), wantRole, wantGroups)
		}
		wantPuts := 1
		if c, p := applied["POST /api/users/"+u.Username], applied["PUT /api/users/"+u.Username]; c != 1 || p != wantPuts {
			t.Fatalf("%s: created %d times, PUT applied %d times; want 1 and %d", u.Username, c, p, wantPuts)
		}
	}
	// A run after convergence changes nothing and sends nothing.
	srv.ResetCalls()
	res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
	if calls := srv.Calls(); len(calls) != 0 || res.Status != "ok" {
		t.Fatalf("after convergence: %d requests, status %s", len(calls), res.Status)
	}
}
