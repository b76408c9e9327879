package netmaker_test

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/netmaker"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// planned lists a plan's steps and skips as "user action" and "user
// action skipped", sorted.
func planned(p []dsync.Plan) []string {
	var out []string
	for _, pl := range p {
		for _, s := range pl.Steps {
			out = append(out, s.User+" "+string(s.Action))
		}
		for _, s := range pl.Skips {
			out = append(out, s.User+" "+string(s.Action)+" skipped")
		}
	}
	sort.Strings(out)
	return out
}

// Bug E: a plan made by a process that has not contacted Netmaker yet
// lists exactly what the sync then does: the community edition's missing
// groups and roles are skipped in both.
func TestPlanAndSyncAgree(t *testing.T) {
	sc := newNMScenario(t, netmakerfake.Options{Community: true}, "")
	sc.e.srv.AddUser(netmakerfake.User{Username: "erin", PlatformRoleID: "admin"})
	sc.e.srv.AddUser(netmakerfake.User{Username: "frank", PlatformRoleID: "admin"})
	sc.set(synctest.User("erin", "vpn-admins", "vpn-dev"), synctest.User("frank", "vpn-ops"))
	plan := sc.h.Run(dsync.RunOptions{Trigger: "plan", NoApply: true})
	want := planned(plan.Plans)
	if len(want) == 0 {
		t.Fatal("empty plan")
	}
	for _, c := range sc.e.srv.Calls() {
		if c.Method != http.MethodGet {
			t.Fatalf("plan sent %s %s", c.Method, c.Path)
		}
	}
	res := sc.h.Run(dsync.RunOptions{Trigger: "test"})
	var got []string
	for _, d := range sc.h.DecisionsOf(res.RunID) {
		switch d.Outcome {
		case "applied":
			got = append(got, d.User+" "+d.Action)
		case "skipped":
			got = append(got, d.User+" "+d.Action+" skipped")
		default:
			t.Fatalf("decision %+v", d)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("plan %q\nsync %q", want, got)
	}
	for _, s := range want {
		if strings.Contains(s, "set_groups") && !strings.HasSuffix(s, "skipped") {
			t.Fatalf("the plan lists a group change the community edition cannot do: %q", want)
		}
	}
}

// Bug C: a permission refusal Netmaker sends as 500 ("admin cannot delete
// another admin user") is permanent: sent once, never retried.
func TestPermissionRefusalAs500NotRetried(t *testing.T) {
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
	srv.AddUser(netmakerfake.User{Username: "svc-admin", PlatformRoleID: "admin"})
	srv.AddUser(netmakerfake.User{Username: "olga", PlatformRoleID: "admin"})
	srv.AddUser(netmakerfake.User{Username: "pam1", PlatformRoleID: "admin"})
	tg, err := netmaker.New("netmaker", netmaker.Settings{BaseURL: url, Token: config.NewSecret(srv.CreateToken("svc-admin"))}, connector.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	common := synctest.Common(func(c *config.TargetCommon) {
		c.Roles = []config.RoleRule{{Group: "vpn-admins", Role: "admin"}}
		c.Deprovision = config.Deprovision{Action: "delete"}
		c.MaxAttempts = 4
	})
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(tg, common)}, synctest.Options{Limits: &config.Limits{MaxSourceShrinkPercent: 100}})
	h.Source.Set(synctest.User("olga", "vpn-admins"), synctest.User("pam1", "vpn-admins"))
	h.Run(dsync.RunOptions{Trigger: "test"})
	srv.ResetCalls()
	h.Source.Set(synctest.User("pam1", "vpn-admins"))
	res := h.Run(dsync.RunOptions{Trigger: "test"})
	deletes := 0
	for _, c := range srv.Calls() {
		if c.Method == http.MethodDelete {
			deletes++
		}
	}
	var failed []string
	for _, d := range h.DecisionsOf(res.RunID) {
		if d.Outcome == "failed" && d.Action == "delete" {
			failed = append(failed, fmt.Sprintf("%s %s attempt %d: %s", d.User, d.Action, d.Attempt, d.Error))
		}
	}
	if deletes != 1 || len(failed) != 1 || !strings.Contains(failed[0], "attempt 1:") || !strings.Contains(failed[0], "admin cannot delete another admin") {
		t.Fatalf("%d DELETE sent; failed decisions %q", deletes, failed)
	}
}

// Bug A: on a community server with default_role platform-user and a
// rule giving admin, the admins are created (as admin) and the others are
// skipped with a reason naming their role; after the config is fixed, the
// next run creates the others, without deleting any state.
func TestCommunityAdminsCreatedAndRecovery(t *testing.T) {
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{Community: true})
	build := func(defaultRole string) dsync.TargetSpec {
		t.Setenv("NETMAKER_TEST_TOKEN", srv.AdminToken())
		cfg := parseTargets(t, "  - name: netmaker\n    type: netmaker\n    base_url: "+url+"\n    token: ${NETMAKER_TEST_TOKEN}\n"+
			"    roles: [{group: vpn-admins, role: admin}]\n    default_role: "+defaultRole+"\n")[0]
		tg, err := netmaker.Factory(cfg, connector.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		return synctest.Spec(tg, synctest.Common(func(c *config.TargetCommon) {
			c.Roles = []config.RoleRule{{Group: "vpn-admins", Role: "admin"}}
			c.DefaultRole = defaultRole
		}))
	}
	h := synctest.New(t, []dsync.TargetSpec{build("platform-user")}, synctest.Options{})
	h.Source.Set(synctest.User("anna", "vpn-admins"), synctest.User("bert", "vpn-users"))
	res := h.Run(dsync.RunOptions{Trigger: "test"})
	if u, ok := srv.User("anna"); !ok || u.PlatformRoleID != "admin" {
		t.Fatalf("anna (admin) was not created as an admin on community edition: %+v %v; decisions %+v", u, ok, h.DecisionsOf(res.RunID))
	}
	if _, ok := srv.User("bert"); ok {
		t.Fatal("bert (platform-user) was created: community edition would make him an admin")
	}
	var why string
	for _, d := range h.DecisionsOf(res.RunID) {
		if d.User == "bert" && d.Action == "create" && d.Outcome == "skipped" {
			why = d.Reason
		}
	}
	if !strings.Contains(why, `"platform-user"`) {
		t.Fatalf("bert's skip %q does not name his role", why)
	}
	// The config is fixed: everyone is an admin. Same store, same state.
	h2 := synctest.New(t, []dsync.TargetSpec{build("admin")}, synctest.Options{Store: h.Store})
	h2.Source.Set(synctest.User("anna", "vpn-admins"), synctest.User("bert", "vpn-users"))
	h2.Run(dsync.RunOptions{Trigger: "test"})
	if u, ok := srv.User("bert"); !ok || u.PlatformRoleID != "admin" {
		t.Fatalf("after the config fix bert is %+v (exists %v)", u, ok)
	}
}

// Through the engine: an IdP user who leaves is a skipped delete (not a
// failure every run) and is suspended instead (invariant 12), and the
// super-admin, disabled in the directory, is a skipped suspend; nothing
// else is sent, in this run or the next.
func TestIdPAndOwnerSkippedThroughTheEngine(t *testing.T) {
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
	srv.AddUser(netmakerfake.User{Username: "gina1", AuthType: "oauth", PlatformRoleID: "platform-user"})
	tg, err := netmaker.New("netmaker", netmaker.Settings{BaseURL: url, Token: config.NewSecret(srv.AdminToken())}, connector.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	common := synctest.Common(func(c *config.TargetCommon) {
		c.DefaultRole = "platform-user"
		c.Deprovision = config.Deprovision{Action: "delete"}
	})
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(tg, common)}, synctest.Options{Limits: &config.Limits{MaxSourceShrinkPercent: 100}})
	owner := synctest.User("netmaker-admin")
	h.Source.Set(synctest.User("gina1"), owner, synctest.User("hugo"))
	h.Run(dsync.RunOptions{Trigger: "test"})
	owner.Active = false
	h.Source.Set(owner, synctest.User("hugo"))
	for run := range 2 {
		srv.ResetCalls()
		res := h.Run(dsync.RunOptions{Trigger: "test"})
		for _, c := range srv.Calls() {
			if c.Method != http.MethodGet && (run > 0 || c.Method+" "+c.Path != "POST /api/users/gina1/disable") {
				t.Fatalf("run %d sent %s %s", run, c.Method, c.Path)
			}
		}
		for _, d := range h.DecisionsOf(res.RunID) {
			if d.Outcome == "failed" {
				t.Fatalf("run %d: failed %+v", run, d)
			}
			if run == 0 && d.User == "gina1" && !(d.Action == "delete" && d.Outcome == "skipped" && strings.Contains(d.Reason, "IdP")) &&
				!(d.Action == "suspend" && d.Outcome == "applied" && strings.Contains(d.Reason, "suspended instead")) {
				t.Fatalf("gina1: %+v", d)
			}
			if run == 0 && d.User == "netmaker-admin" && (d.Outcome != "skipped" || !strings.Contains(d.Reason, "never")) {
				t.Fatalf("netmaker-admin: %+v", d)
			}
		}
	}
	if u, _ := srv.User("netmaker-admin"); u.AccountDisabled {
		t.Fatal("the super-admin was disabled")
	}
	if u, ok := srv.User("gina1"); !ok || !u.AccountDisabled {
		t.Fatalf("the IdP user: exists %v, disabled %v", ok, u.AccountDisabled)
	}
}
