package netmaker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/dirsync/dirsync/target/fakekit"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/netmaker"
	"github.com/dirsync/dirsync/target/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/target/targettest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// env is one fake server and a connector wired to it.
type env struct {
	srv   *netmakerfake.Server
	url   string
	token string
	tg    *netmaker.Target
	logs  *bytes.Buffer
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func debugLogger() (*zap.Logger, *bytes.Buffer) {
	buf := &bytes.Buffer{}
	var mu sync.Mutex
	ws := zapcore.AddSync(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}))
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), ws, zapcore.DebugLevel)), buf
}

func newEnv(t *testing.T, o netmakerfake.Options, mods ...func(*netmaker.Settings)) *env {
	t.Helper()
	srv, url := netmakerfake.NewTestServer(t, o)
	e := &env{srv: srv, url: url, token: srv.AdminToken()}
	e.tg = e.connect(t, e.token, mods...)
	return e
}

func (e *env) connect(t *testing.T, token string, mods ...func(*netmaker.Settings)) *netmaker.Target {
	t.Helper()
	s := netmaker.Settings{BaseURL: e.url, Token: config.NewSecret(token)}
	for _, m := range mods {
		m(&s)
	}
	log, buf := debugLogger()
	e.logs = buf
	tg, err := netmaker.New("netmaker", s, target.Deps{Logger: log}, "ops", "dev")
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func groupNames(srv *netmakerfake.Server, u netmakerfake.User) []string {
	if len(u.UserGroups) == 0 {
		return nil
	}
	return srv.GroupNames(u.GroupIDs())
}

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	envs := map[*testing.T]*env{}
	targettest.Run(t, targettest.Harness{
		New: func(t *testing.T) target.Target {
			e := newEnv(t, netmakerfake.Options{})
			e.srv.AddGroup("ops")
			e.srv.AddGroup("dev")
			mu.Lock()
			envs[t] = e
			mu.Unlock()
			return e.tg
		},
		Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
			mu.Lock()
			e := envs[t]
			mu.Unlock()
			u, ok := e.srv.User(a.Username)
			if !ok {
				return identity.Account{}, false
			}
			return identity.Account{Username: u.Username, DisplayName: u.DisplayName, Suspended: u.AccountDisabled,
				Role: u.PlatformRoleID, Groups: groupNames(e.srv, u)}, true
		},
		Secrets: []string{"netmaker-master-key"},
		Roles:   [2]string{"admin", "platform-user"},
		Groups:  []string{"ops", "dev"},
	})
}

// The PUT traps: a role or group change keeps MFA, the TOTP secret,
// network roles and the groups dirsync does not manage.
func TestReadModifyWriteKeepsEverythingElse(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	ops, dev, manual := e.srv.AddGroup("ops"), e.srv.AddGroup("dev"), e.srv.AddGroup("hand-made")
	e.srv.AddUser(netmakerfake.User{Username: "alice", DisplayName: "Alice", IsMFAEnabled: true, PlatformRoleID: "platform-user",
		UserGroups:   map[string]struct{}{ops: {}, manual: {}, netmakerfake.DefaultUserGroup: {}},
		NetworkRoles: map[string]map[string]struct{}{"net1": {"net1-user": {}}}})
	totp := e.srv.TOTPSecret("alice")
	c := ctx(t)
	alice := &identity.Account{Key: "a", Username: "alice", Role: "admin", Groups: []string{"ops"}, Exists: true}
	if err := e.tg.SetRole(c, alice); err != nil {
		t.Fatal(err)
	}
	u, _ := e.srv.User("alice")
	if u.PlatformRoleID != "admin" || !u.IsMFAEnabled || e.srv.TOTPSecret("alice") != totp || len(u.NetworkRoles) != 1 {
		t.Fatalf("after SetRole: %+v (totp kept %v)", u, e.srv.TOTPSecret("alice") == totp)
	}
	if got := groupNames(e.srv, u); !slices.Equal(got, []string{"Global Network Users", "hand-made", "ops"}) {
		t.Fatalf("groups after SetRole: %v", got)
	}
	var put netmakerfake.Call
	for _, c := range e.srv.Calls() {
		if c.Method == http.MethodPut {
			put = c
		}
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(put.Body), &body); err != nil {
		t.Fatalf("PUT body %q: %v", put.Body, err)
	}
	if body["is_mfa_enabled"] != true || body["username"] != "alice" || body["platform_role_id"] != "admin" {
		t.Fatalf("PUT body %v", body)
	}
	if _, ok := body["password"]; ok {
		t.Fatalf("PUT sent a password: %v", body)
	}

	// Group change: ops → dev; the hand-made and default groups stay.
	before := alice.Clone()
	alice.Groups = []string{"dev"}
	e.srv.ResetCalls()
	if err := e.tg.SetGroups(c, before, alice); err != nil {
		t.Fatal(err)
	}
	u, _ = e.srv.User("alice")
	if got := groupNames(e.srv, u); !slices.Equal(got, []string{"Global Network Users", "dev", "hand-made"}) {
		t.Fatalf("groups after SetGroups: %v", got)
	}
	if _, ok := u.UserGroups[dev]; !ok || !u.IsMFAEnabled || u.PlatformRoleID != "admin" {
		t.Fatalf("after SetGroups: %+v", u)
	}
	calls := e.srv.Calls()
	if len(calls) != 2 || calls[0].Method != http.MethodGet || calls[1].Method != http.MethodPut {
		t.Fatalf("SetGroups calls: %+v", calls)
	}
	// Nothing to change: read, no PUT.
	e.srv.ResetCalls()
	if err := e.tg.SetGroups(c, *alice, alice); err != nil {
		t.Fatal(err)
	}
	for _, c := range e.srv.Calls() {
		if c.Method == http.MethodPut {
			t.Fatal("a PUT without a change")
		}
	}
}

// The fake has the traps the connector avoids.
func TestFakePutTraps(t *testing.T) {
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
	ops := srv.AddGroup("ops")
	srv.AddUser(netmakerfake.User{Username: "bob1", IsMFAEnabled: true, UserGroups: map[string]struct{}{ops: {}}})
	put := func(token string, body string) int {
		req, _ := http.NewRequest(http.MethodPut, url+"/api/users/bob1", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The super-admin's PUT without is_mfa_enabled is not refused: MFA,
	// the TOTP secret and (without user_group_ids) the groups are gone;
	// the display name and the role, left out, are kept.
	srv.AddUser(netmakerfake.User{Username: "bob2", DisplayName: "Bob Two", PlatformRoleID: "auditor", IsMFAEnabled: true})
	if code := put(srv.AdminToken(), `{"username":"bob1","platform_role_id":"service-user"}`); code != 200 {
		t.Fatalf("PUT without is_mfa_enabled with the super-admin's token: %d, want 200", code)
	}
	u, _ := srv.User("bob1")
	if u.IsMFAEnabled || srv.TOTPSecret("bob1") != "" || len(u.UserGroups) != 0 {
		t.Fatalf("the trap did not spring: %+v", u)
	}
	req, _ := http.NewRequest(http.MethodPut, url+"/api/users/bob2", strings.NewReader(`{"username":"bob2","is_mfa_enabled":true}`))
	req.Header.Set("Authorization", "Bearer "+srv.AdminToken())
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT without display_name and role: %v %v", resp, err)
	}
	if b2, _ := srv.User("bob2"); b2.DisplayName != "Bob Two" || b2.PlatformRoleID != "auditor" || !b2.IsMFAEnabled {
		t.Fatalf("left-out fields not kept: %+v", b2)
	}
	if code := put(srv.MasterKey(), `{"username":"other","platform_role_id":"service-user"}`); code != 400 {
		t.Fatalf("PUT with another username: %d", code)
	}
	if code := put(srv.MasterKey(), `{"username":"bob1","platform_role_id":"service-user","account_disabled":true}`); code != 200 {
		t.Fatal(code)
	}
	if u, _ := srv.User("bob1"); u.AccountDisabled {
		t.Fatal("account_disabled in a PUT body must be ignored")
	}
}

func TestCreate(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	c := ctx(t)
	a := &identity.Account{Key: "k1", Username: "j_doe", Email: "j.doe@example.test", DisplayName: "J Doe", Role: "platform-user"}
	if err := e.tg.Create(c, a); err != nil {
		t.Fatal(err)
	}
	if a.Remote["username"] != "j.doe@example.test" {
		t.Fatalf("remote %v", a.Remote)
	}
	u, ok := e.srv.User("j.doe@example.test")
	if !ok || u.AuthType != "basic_auth" || u.PlatformRoleID != "platform-user" || u.DisplayName != "J Doe" || !u.HasPassword {
		t.Fatalf("created %+v (exists %v)", u, ok)
	}
	calls := e.srv.Calls()
	post := calls[len(calls)-1]
	if post.Method != http.MethodPost || post.Path != "/api/users/j.doe@example.test" || !strings.Contains(post.Body, `"password":"[REDACTED]"`) {
		t.Fatalf("create call %+v", post)
	}
	// Again: the user exists → permanent, with advice.
	b := &identity.Account{Key: "k1", Username: "j_doe", Email: "j.doe@example.test"}
	err := e.tg.Create(c, b)
	if target.KindOf(err) != target.KindPermanent || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate create: %v", err)
	}
	// No role from the rules: create_role.
	d := &identity.Account{Key: "k2", Username: "svc1"}
	if err := e.tg.Create(c, d); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.srv.User("svc1"); u.PlatformRoleID != "service-user" {
		t.Fatalf("default role %q", u.PlatformRoleID)
	}
}

func TestUsernameMapping(t *testing.T) {
	for _, tc := range []struct{ policy, user, email, want string }{
		{"email", "jdoe", "", "jdoe"},
		{"email", "j.doe-2", "", "j.doe-2"},
		{"email", "j_doe", "j.doe@example.test", "j.doe@example.test"},
		{"email", "abc", "abc@example.test", "abc@example.test"},
		{"email", "j_doe", "", ""},
		{"replace", "j_doe", "", "j-doe"},
		{"replace", "Zoë Smith", "", "Zo-Smith"},
		{"replace", "a_b", "", ""},
		{"skip", "j_doe", "j.doe@example.test", ""},
		{"skip", "j.doe@example.test", "", "j.doe@example.test"},
	} {
		got, why := netmaker.MapUsername(tc.policy, tc.user, tc.email)
		if got != tc.want || (got == "") != (why != "") {
			t.Errorf("%s %q %q = %q (%q), want %q", tc.policy, tc.user, tc.email, got, why, tc.want)
		}
	}
	e := newEnv(t, netmakerfake.Options{})
	if why := e.tg.Gate(target.ActSuspend, identity.Account{Username: "jo_"}); !strings.Contains(why, "not valid in Netmaker") {
		t.Fatalf("gate on an unmappable name: %q", why)
	}
	err := e.tg.Create(ctx(t), &identity.Account{Username: "jo_"})
	if target.KindOf(err) != target.KindSkipped {
		t.Fatalf("create with an unmappable name: %v", err)
	}
}

func TestCommunityEdition(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{Community: true})
	c := ctx(t)
	if err := e.tg.Open(c); err != nil {
		t.Fatal(err)
	}
	if e.tg.Edition() != "community" {
		t.Fatalf("edition %q", e.tg.Edition())
	}
	a := identity.Account{Username: "carol", Role: "platform-user", Groups: []string{"ops"}}
	for act, want := range map[target.Action]string{
		target.ActSetGroups: "no user groups",
		target.ActSetRole:   "only roles are super-admin and admin",
		target.ActSuspend:   "",
	} {
		if got := e.tg.Gate(act, a); (want == "" && got != "") || !strings.Contains(got, want) {
			t.Errorf("gate %s: %q, want %q", act, got, want)
		}
	}
	// A create is refused by Create itself (see Gate's doc).
	if err := e.tg.Create(c, &identity.Account{Username: "carol", Role: "platform-user"}); target.KindOf(err) != target.KindSkipped || !strings.Contains(err.Error(), "creates every user as admin") {
		t.Fatalf("create on community: %v", err)
	}
	// Applied anyway: a skip, not an error, and nothing sent.
	before := len(e.srv.Calls())
	err := e.tg.SetGroups(c, identity.Account{}, &a)
	if target.KindOf(err) != target.KindSkipped {
		t.Fatalf("SetGroups on community: %v", err)
	}
	if len(e.srv.Calls()) != before {
		t.Fatal("a skipped action reached the server")
	}
	// An admin can be created.
	admin := &identity.Account{Username: "dave", Role: "admin"}
	if e.tg.Gate(target.ActCreate, *admin) != "" {
		t.Fatal("creating an admin on community is allowed")
	}
	if err := e.tg.Create(c, admin); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.srv.User("dave"); u.PlatformRoleID != "admin" {
		t.Fatalf("%+v", u)
	}
	// Without Open (plan-only run), discovery happens at the first action.
	e2 := newEnv(t, netmakerfake.Options{Community: true})
	err = e2.tg.SetRole(c, &identity.Account{Username: "dave", Role: "platform-user"})
	if target.KindOf(err) != target.KindSkipped {
		t.Fatalf("SetRole before Open on community: %v", err)
	}
}

func TestMasterKey(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	e.srv.AddUser(netmakerfake.User{Username: "erin"})
	tg := e.connect(t, e.srv.MasterKey())
	a := identity.Account{Username: "frank"}
	if why := tg.Gate(target.ActDelete, a); !strings.Contains(why, "master key") {
		t.Fatalf("gate delete with the master key: %q", why)
	}
	if err := tg.Create(ctx(t), &a); target.KindOf(err) != target.KindSkipped || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("create with the master key: %v", err)
	}
	if why := tg.Gate(target.ActSuspend, a); why != "" {
		t.Fatalf("suspend with the master key is possible: %q", why)
	}
	if err := tg.Suspend(ctx(t), &identity.Account{Username: "erin"}); err != nil {
		t.Fatal(err)
	}
	// Forced to treat it as a token, the server's answer is explained.
	tg = e.connect(t, e.srv.MasterKey(), func(s *netmaker.Settings) { s.TokenKind = "access_token" })
	err := tg.Create(ctx(t), &identity.Account{Username: "frank"})
	if target.KindOf(err) != target.KindPermanent || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("create with the master key: %v", err)
	}
	if strings.Contains(err.Error(), e.srv.MasterKey()) || strings.Contains(e.logs.String(), e.srv.MasterKey()) {
		t.Fatal("the master key leaked")
	}
}

// IdP (SSO) users are managed for status, role and groups, but never
// deleted or renamed: Netmaker refuses both.
func TestIdPUsers(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	e.srv.AddUser(netmakerfake.User{Username: "gina@example.test", AuthType: "oauth", PlatformRoleID: "platform-user"})
	c := ctx(t)
	list, err := e.tg.List(c)
	if err != nil {
		t.Fatal(err)
	}
	var gina identity.Account
	for _, a := range list {
		if a.Username == "gina@example.test" {
			gina = a
		}
	}
	if gina.Remote["auth_type"] != "oauth" || gina.Email != "gina@example.test" {
		t.Fatalf("listed %+v", gina)
	}
	for _, act := range []target.Action{target.ActDelete, target.ActUpdate} {
		if why := e.tg.Gate(act, gina); !strings.Contains(why, "IdP") {
			t.Fatalf("gate %s: %q", act, why)
		}
	}
	for _, act := range []target.Action{target.ActSuspend, target.ActUnsuspend, target.ActSetRole, target.ActSetGroups} {
		if why := e.tg.Gate(act, gina); why != "" {
			t.Fatalf("gate %s: %q", act, why)
		}
	}
	// Without the cache knowing: found on read, skipped, not sent.
	fresh := &identity.Account{Username: "gina@example.test", DisplayName: "Gina New"}
	if err := e.tg.Delete(c, fresh); target.KindOf(err) != target.KindSkipped {
		t.Fatalf("Delete on an IdP user: %v", err)
	}
	if err := e.tg.Update(c, identity.Account{}, fresh); target.KindOf(err) != target.KindSkipped {
		t.Fatalf("rename of an IdP user: %v", err)
	}
	for _, call := range e.srv.Calls() {
		if call.Method == http.MethodDelete || call.Method == http.MethodPut {
			t.Fatalf("sent %s %s", call.Method, call.Path)
		}
	}
	// Role and status are managed.
	role := &identity.Account{Username: "gina@example.test", Role: "auditor"}
	if err := e.tg.SetRole(c, role); err != nil {
		t.Fatal(err)
	}
	if err := e.tg.Suspend(c, role); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.srv.User("gina@example.test"); u.PlatformRoleID != "auditor" || !u.AccountDisabled {
		t.Fatalf("gina %+v", u)
	}
}

// The super-admin and the token's owner are never touched, with a PAT and
// with the master key: every action is refused at plan time (Gate) and
// again before sending, and nothing is sent.
func TestOwnersNeverTouched(t *testing.T) {
	for _, master := range []bool{false, true} {
		t.Run(fmt.Sprintf("master=%v", master), func(t *testing.T) {
			srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
			srv.AddUser(netmakerfake.User{Username: "dirsync-svc", PlatformRoleID: "admin"})
			tok := srv.AdminToken()
			if master {
				tok = srv.MasterKey()
			}
			tg, err := netmaker.New("netmaker", netmaker.Settings{BaseURL: url, Token: config.NewSecret(tok), Protected: []string{"dirsync-svc"}}, target.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			c := ctx(t)
			for _, name := range []string{"netmaker-admin", "dirsync-svc"} {
				for _, act := range []target.Action{target.ActSuspend, target.ActUnsuspend, target.ActSetRole, target.ActDelete, target.ActUpdate, target.ActSetGroups} {
					a := identity.Account{Username: name, Role: "admin"}
					if why := tg.Gate(act, a); why == "" || !strings.Contains(why, "never") {
						t.Fatalf("gate %s %s: %q", act, name, why)
					}
					if err := target.Do(c, tg, act, a, &a); target.KindOf(err) != target.KindSkipped {
						t.Fatalf("%s %s: %v", act, name, err)
					}
				}
			}
			for _, call := range srv.Calls() {
				if call.Method != http.MethodGet {
					t.Fatalf("sent %s %s", call.Method, call.Path)
				}
			}
			if u, _ := srv.User("netmaker-admin"); u.AccountDisabled || u.PlatformRoleID != "super-admin" {
				t.Fatalf("super-admin %+v", u)
			}
		})
	}
}

func TestListBothAPIs(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			e := newEnv(t, netmakerfake.Options{LegacyOnly: legacy})
			ops := e.srv.AddGroup("ops")
			manual := e.srv.AddGroup("hand-made")
			for i := range 250 {
				e.srv.AddUser(netmakerfake.User{Username: fmt.Sprintf("user%03d", i), AccountDisabled: i%10 == 0,
					UserGroups: map[string]struct{}{ops: {}, manual: {}}})
			}
			list, err := e.tg.List(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 251 {
				t.Fatalf("%d accounts, want 251", len(list))
			}
			for _, a := range list {
				if a.Username == "user010" && (!a.Suspended || !slices.Equal(a.Groups, []string{"ops"}) || !a.Exists || a.Remote["username"] != "user010") {
					t.Fatalf("user010 listed as %+v (only managed groups are reported)", a)
				}
			}
			var paths []string
			for _, c := range e.srv.Calls() {
				if strings.Contains(c.Path, "users") && !strings.Contains(c.Path, "/v1/") {
					paths = append(paths, fmt.Sprintf("%s?%s %d", c.Path, c.Query, c.Status))
				}
			}
			want := []string{"/api/v2/users?page=1&per_page=100 200", "/api/v2/users?page=2&per_page=100 200", "/api/v2/users?page=3&per_page=100 200"}
			if legacy {
				want = []string{"/api/v2/users?page=1&per_page=100 404", "/api/users? 200"}
			}
			if !slices.Equal(paths, want) {
				t.Fatalf("list calls %q, want %q", paths, want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	ops := e.srv.AddGroup("ops")
	e.srv.AddUser(netmakerfake.User{Username: "hank", DisplayName: "Hank", PlatformRoleID: "auditor", AccountDisabled: true, UserGroups: map[string]struct{}{ops: {}}})
	got, err := e.tg.Read(ctx(t), identity.Account{Key: "h", Username: "hank", Email: "hank@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != "h" || !got.Suspended || got.Role != "auditor" || !slices.Equal(got.Groups, []string{"ops"}) || got.Email != "hank@example.test" {
		t.Fatalf("read %+v", got)
	}
	_, err = e.tg.Read(ctx(t), identity.Account{Username: "nobody"})
	if target.KindOf(err) != target.KindNotFound {
		t.Fatalf("read a missing user: %v", err)
	}
}

func TestGroups(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	c := ctx(t)
	e.srv.AddUser(netmakerfake.User{Username: "ivan"})
	if err := e.tg.Open(c); err != nil {
		t.Fatal(err)
	}
	a := &identity.Account{Username: "ivan", Groups: []string{"brand-new"}}
	if why := e.tg.Gate(target.ActSetGroups, *a); !strings.Contains(why, "create_groups is false") {
		t.Fatalf("gate: %q", why)
	}
	if err := e.tg.SetGroups(c, identity.Account{}, a); target.KindOf(err) != target.KindSkipped {
		t.Fatalf("SetGroups with a missing group: %v", err)
	}
	// A group made in Netmaker after Open is found.
	e.srv.AddGroup("brand-new")
	if err := e.tg.SetGroups(c, identity.Account{}, a); err != nil {
		t.Fatal(err)
	}
	tg := e.connect(t, e.token, func(s *netmaker.Settings) { s.CreateGroups = true })
	b := &identity.Account{Username: "ivan", Groups: []string{"brand-new", "newer"}}
	if err := tg.SetGroups(c, *a, b); err != nil {
		t.Fatal(err)
	}
	u, _ := e.srv.User("ivan")
	if got := groupNames(e.srv, u); !slices.Equal(got, []string{"brand-new", "newer"}) {
		t.Fatalf("groups %v", got)
	}
}

func TestErrorsClassified(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{FaultOptions: fakekit.FaultOptions{RetryAfter: 7}})
	e.srv.AddUser(netmakerfake.User{Username: "judy"})
	c := ctx(t)
	if err := e.tg.Open(c); err != nil {
		t.Fatal(err)
	}
	var errs []error
	check := func(name string, err error, want target.Kind) {
		t.Helper()
		errs = append(errs, err)
		if k := target.KindOf(err); k != want {
			t.Errorf("%s: kind %v, want %v: %v", name, k, want, err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "netmaker: ") {
			t.Errorf("%s: error without the subject: %v", name, err)
		}
	}
	check("missing user", e.tg.Suspend(c, &identity.Account{Username: "nobody"}), target.KindNotFound)
	e.srv.SetFaults(1, fakekit.Fault429)
	err := e.tg.Suspend(c, &identity.Account{Username: "judy"})
	check("429", err, target.KindRateLimited)
	if target.RetryAfterOf(err) != 7*time.Second {
		t.Errorf("Retry-After %v", target.RetryAfterOf(err))
	}
	e.srv.SetFaults(1, fakekit.Fault500)
	check("500", e.tg.Suspend(c, &identity.Account{Username: "judy"}), target.KindRetryable)
	e.srv.SetFaults(1, fakekit.FaultDrop)
	check("dropped disable", e.tg.Suspend(c, &identity.Account{Username: "judy"}), target.KindRetryable)
	check("dropped create", e.tg.Create(c, &identity.Account{Username: "kate"}), target.KindUncertain)
	e.srv.SetFaults(0)
	bad := e.connect(t, e.srv.CreateToken("judy")+"x")
	check("bad token", bad.Suspend(c, &identity.Account{Username: "judy"}), target.KindPermanent)
	check("super-admin", e.tg.Create(c, &identity.Account{Username: "kate", Role: "super-admin"}), target.KindSkipped)
	check("unknown role", e.tg.SetRole(c, &identity.Account{Username: "judy", Role: "emperor"}), target.KindSkipped)
	// Nothing leaks the token or the master key.
	logs := e.logs.String()
	for _, err := range errs {
		for _, s := range []string{e.token, e.srv.MasterKey()} {
			if err != nil && strings.Contains(err.Error(), s) {
				t.Fatalf("secret in error: %v", err)
			}
			if strings.Contains(logs, s) {
				t.Fatal("secret in logs")
			}
		}
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	e.srv.AddUser(netmakerfake.User{Username: "liam"})
	c := ctx(t)
	if err := e.tg.Delete(c, &identity.Account{Username: "liam"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.srv.User("liam"); ok {
		t.Fatal("not deleted")
	}
	if err := e.tg.Delete(c, &identity.Account{Username: "liam"}); target.KindOf(err) != target.KindNotFound {
		t.Fatalf("delete again: %v", err)
	}
}

func TestUpdateDisplayName(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{})
	e.srv.AddUser(netmakerfake.User{Username: "mona", DisplayName: "Mona", IsMFAEnabled: true})
	c := ctx(t)
	a := &identity.Account{Username: "mona", DisplayName: "Mona Lisa", Remote: map[string]string{"username": "mona"}}
	if err := e.tg.Update(c, identity.Account{}, a); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.srv.User("mona"); u.DisplayName != "Mona Lisa" || !u.IsMFAEnabled {
		t.Fatalf("%+v", u)
	}
	// A renamed directory user keeps its Netmaker name.
	a.Username = "mona2"
	if err := e.tg.Update(c, identity.Account{}, a); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.srv.User("mona"); !ok {
		t.Fatal("renamed?")
	}
}

// A create whose answer was lost after it landed is uncertain; reading
// the account shows it landed (what the engine checks before retrying).
func TestUncertainCreateCanBeRead(t *testing.T) {
	e := newEnv(t, netmakerfake.Options{FaultOptions: fakekit.FaultOptions{FaultAfterApply: true}})
	c := ctx(t)
	if err := e.tg.Open(c); err != nil {
		t.Fatal(err)
	}
	e.srv.SetFaults(1, fakekit.FaultDrop)
	a := &identity.Account{Key: "s", Username: "sara", Role: "platform-user"}
	err := e.tg.Create(c, a)
	if target.KindOf(err) != target.KindUncertain {
		t.Fatalf("create with the answer lost: %v", err)
	}
	e.srv.SetFaults(0)
	if _, ok := e.srv.User("sara"); !ok {
		t.Fatal("the create did not land")
	}
	got, err := e.tg.Read(c, *a)
	if err != nil || !got.Exists || got.Remote["username"] != "sara" {
		t.Fatalf("read after an uncertain create: %+v, %v", got, err)
	}
}

// bodyRecorder keeps every request body the connector sends.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies []string
}

func (r *bodyRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

// The random password of a created user is sent once and appears in no
// log line and no error, even when the create fails.
func TestCreatedPasswordNeverLogged(t *testing.T) {
	srv, url := netmakerfake.NewTestServer(t, netmakerfake.Options{})
	rec := &bodyRecorder{}
	log, logs := debugLogger()
	tg, err := netmaker.New("netmaker", netmaker.Settings{BaseURL: url, Token: config.NewSecret(srv.AdminToken())},
		target.Deps{Logger: log, HTTPClient: &http.Client{Transport: rec}})
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	var errs []string
	for _, name := range []string{"tina", "tina", "ursula"} {
		if name == "ursula" {
			srv.SetFaults(1, fakekit.Fault500)
		}
		if err := tg.Create(c, &identity.Account{Username: name, Role: "platform-user"}); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) != 2 {
		t.Fatalf("errors %q", errs)
	}
	var passwords []string
	for _, b := range rec.bodies {
		var m map[string]any
		if json.Unmarshal([]byte(b), &m) == nil {
			if p, ok := m["password"].(string); ok {
				passwords = append(passwords, p)
			}
		}
	}
	if len(passwords) != 3 || passwords[0] == passwords[1] || len(passwords[0]) < 20 {
		t.Fatalf("passwords sent: %d (distinct and long?)", len(passwords))
	}
	for _, p := range passwords {
		for _, s := range append(errs, logs.String()) {
			if strings.Contains(s, p) {
				t.Fatalf("a generated password leaked: %s", s)
			}
		}
	}
	if !strings.Contains(logs.String(), "netmaker user created") {
		t.Fatal("no log line for the create")
	}
}
