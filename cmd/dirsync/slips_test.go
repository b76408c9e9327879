package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state/backends"
)

// Operator slips (issue 19), run the way an IT team makes them: the CLI on
// a file source of 40 people, a memory target, embedded state and the
// default safety limits — unless the slip needs something else.

// TestSlipTwoDeploymentsOneApplicationWarned: two daemons on one Redis with
// different key_prefix each hold their own leader lock, so both lead and
// both apply to the same application. Each registers the application's
// endpoint in the shared registry: /readyz and `dirsync validate` name the
// other deployment.
func TestSlipTwoDeploymentsOneApplicationWarned(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{})
	dir := t.TempDir()
	hr := filepath.Join(dir, "hr.json")
	os.WriteFile(hr, []byte(`{"users":[{"id":"e1","username":"ann","email":"ann@example.test","active":true}]}`), 0o600)
	app := filepath.Join(dir, "app.json")
	cfgFor := func(prefix string) string {
		return fmt.Sprintf(`state: {backend: redis, redis: {addrs: ["%s"], key_prefix: "%s"}, lock_ttl: 3s}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@daily"}
sources: [{name: hr, type: file, path: %s}]
targets: [{name: app-%s, type: memory, path: %s}]
`, srv.Addr(), prefix, hr, strings.TrimSuffix(prefix, ":"), app)
	}
	_, addrA, _ := startTestDaemon(t, filepath.Join(dir, "a"), cfgFor("a:"))
	_, addrB, _ := startTestDaemon(t, filepath.Join(dir, "b"), cfgFor("b:"))
	readyz := func(addr string) string {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, c := range []struct{ addr, other string }{{addrA, `key_prefix "b:"`}, {addrB, `key_prefix "a:"`}} {
		deadline := time.Now().Add(15 * time.Second)
		body := readyz(c.addr)
		for !strings.Contains(body, "WARNING") && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			body = readyz(c.addr)
		}
		if !strings.Contains(body, "WARNING") || !strings.Contains(body, c.other) || !strings.Contains(body, "memory "+app) {
			t.Fatalf("/readyz does not warn about the other deployment:\n%s", body)
		}
	}
	cfgPath := filepath.Join(dir, "a", "dirsync.yaml")
	var out, errb strings.Builder
	code := runMain(context.Background(), []string{"validate", "--config", cfgPath}, &out, &errb)
	if code != exitOK || !strings.Contains(errb.String(), `warning: target app-a: another dirsync deployment (key_prefix "b:", its target app-b) also writes to memory `+app) {
		t.Fatalf("validate: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// TestSlipTwoTargetsOneApplicationWarned: validate warns when two targets of
// one configuration write to the same application.
func TestSlipTwoTargetsOneApplicationWarned(t *testing.T) {
	e := newEnv(t, 40, "")
	e.appendConfig(fmt.Sprintf("  - {name: app2, type: memory, path: %s}\n", filepath.Join(e.dir, "app.json")))
	code, _, errb := e.run("validate")
	if code != exitOK || !strings.Contains(errb, "warning: targets app, app2 all write to memory "+filepath.Join(e.dir, "app.json")) {
		t.Fatalf("validate: exit %d\n%s", code, errb)
	}
}

// appendConfig adds lines at the end of the config file (under targets:).
func (e *env) appendConfig(lines string) {
	e.t.Helper()
	b, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(e.config, append(b, lines...), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// writeHR writes n users (user000…, all active staff) after edit changes
// each one; an edit that clears the id leaves the user out.
func (e *env) writeHR(n int, edit func(i int, u *hrUser)) {
	e.t.Helper()
	var us []hrUser
	for i := range n {
		u := hrUser{ID: fmt.Sprintf("e%03d", i), Username: fmt.Sprintf("user%03d", i), Email: fmt.Sprintf("user%03d@example.test", i),
			Active: true, Groups: []string{"staff"}}
		if edit != nil {
			edit(i, &u)
		}
		if u.ID != "" {
			us = append(us, u)
		}
	}
	b, _ := json.Marshal(map[string]any{"users": us})
	if err := os.WriteFile(e.hr, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// setConfig replaces old with new in the config file (a config change).
func (e *env) setConfig(old, new string) {
	e.t.Helper()
	b, err := os.ReadFile(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		e.t.Fatalf("config lacks %q", old)
	}
	if err := os.WriteFile(e.config, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// appAccounts reads the memory application's accounts by username.
func (e *env) appAccounts() map[string]identity.Account {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "app.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var byKey map[string]identity.Account
	if err := json.Unmarshal(b, &byKey); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]identity.Account{}
	for _, a := range byKey {
		out[a.Username] = a
	}
	return out
}

// editApp changes one account in the application by hand.
func (e *env) editApp(username string, edit func(a *identity.Account)) {
	e.t.Helper()
	p := filepath.Join(e.dir, "app.json")
	b, _ := os.ReadFile(p)
	var byKey map[string]identity.Account
	if err := json.Unmarshal(b, &byKey); err != nil {
		e.t.Fatal(err)
	}
	for k, a := range byKey {
		if a.Username == username {
			edit(&a)
			byKey[k] = a
		}
	}
	b, _ = json.Marshal(byKey)
	os.WriteFile(p, b, 0o600)
}

var heldRun = regexp.MustCompile(`approve ([0-9]{8}T[0-9]{6}Z-[0-9a-f]{6})`)

func roleCount(accts map[string]identity.Account, role string) int {
	n := 0
	for _, a := range accts {
		if a.Role == role {
			n++
		}
	}
	return n
}

// TestSlipRoleRuleAddedAtTopIsHeld (finding 1): adding
// `- {group: staff, role: user}` at the top of roles: demotes the 15 admins
// (every admin is also staff). The engine used to rank roles by their
// position in the new rules, so the demotion counted as a promotion and was
// applied. It is 15 access removals: held.
func TestSlipRoleRuleAddedAtTopIsHeld(t *testing.T) {
	e := newEnv(t, 40, "    roles:\n      - {group: admins, role: admin}\n    default_role: user\n")
	e.writeHR(40, func(i int, u *hrUser) {
		if i < 15 {
			u.Groups = append(u.Groups, "admins")
		}
	})
	if code, out, errb := e.run("sync"); code != exitOK {
		t.Fatalf("first sync: exit %d\n%s%s", code, out, errb)
	}
	if n := roleCount(e.appAccounts(), "admin"); n != 15 {
		t.Fatalf("%d admins after the first sync, want 15", n)
	}
	e.setConfig("      - {group: admins, role: admin}\n", "      - {group: staff, role: user}\n      - {group: admins, role: admin}\n")
	code, out, errb := e.run("sync")
	if code != exitHeld || !strings.Contains(errb, "15 access removals") {
		t.Fatalf("sync after the rule was added: exit %d, want %d (held)\n%s%s", code, exitHeld, out, errb)
	}
	if n := roleCount(e.appAccounts(), "admin"); n != 15 {
		t.Fatalf("%d admins left after the held run, want 15", n)
	}
	// Approved, the demotion applies; the next run is quiet and the new
	// rules are in effect.
	run := heldRun.FindStringSubmatch(errb)
	if run == nil {
		t.Fatalf("no held run in %s", errb)
	}
	if code, out, errb := e.run("approve", run[1]); code != exitOK || roleCount(e.appAccounts(), "admin") != 0 {
		t.Fatalf("approve: exit %d\n%s%s", code, out, errb)
	}
	if code, out, _ := e.run("sync"); code != exitOK || !strings.Contains(out, "nothing to do") {
		t.Fatalf("sync after the approval: exit %d\n%s", code, out)
	}
}

// TestSlipRoleRulesSwappedIsHeld (finding 1): swapping two role rules moves
// the 5 people in both groups from admin to lead. The order of the rules
// says which wins, not which role is higher: 5 downgrades, held (5 > 5% of
// 40 accounts).
func TestSlipRoleRulesSwappedIsHeld(t *testing.T) {
	e := newEnv(t, 40, "    roles:\n      - {group: admins, role: admin}\n      - {group: leads, role: lead}\n    default_role: user\n")
	e.writeHR(40, func(i int, u *hrUser) {
		switch {
		case i < 5:
			u.Groups = append(u.Groups, "admins", "leads")
		case i < 10:
			u.Groups = append(u.Groups, "leads")
		}
	})
	if code, out, errb := e.run("sync"); code != exitOK {
		t.Fatalf("first sync: exit %d\n%s%s", code, out, errb)
	}
	e.setConfig("      - {group: admins, role: admin}\n      - {group: leads, role: lead}\n", "      - {group: leads, role: lead}\n      - {group: admins, role: admin}\n")
	code, out, errb := e.run("sync")
	if code != exitHeld || !strings.Contains(errb, "5 access removals") {
		t.Fatalf("sync after the swap: exit %d, want %d (held)\n%s%s", code, exitHeld, out, errb)
	}
	if n := roleCount(e.appAccounts(), "admin"); n != 5 {
		t.Fatalf("%d admins left after the held run, want 5", n)
	}
}

// TestSlipRoleRankDecidesNotRuleOrder: with role_rank configured, a role
// change is judged by it: the same swap of two non-admin roles is held.
func TestSlipRoleRankDecidesNotRuleOrder(t *testing.T) {
	e := newEnv(t, 40, "    role_rank: [editor, viewer]\n    roles:\n      - {group: editors, role: editor}\n      - {group: viewers, role: viewer}\n")
	e.writeHR(40, func(i int, u *hrUser) {
		if i < 4 {
			u.Groups = append(u.Groups, "editors", "viewers")
		}
	})
	e.run("sync")
	e.setConfig("      - {group: editors, role: editor}\n      - {group: viewers, role: viewer}\n", "      - {group: viewers, role: viewer}\n      - {group: editors, role: editor}\n")
	if code, out, errb := e.run("sync"); code != exitHeld || !strings.Contains(errb, "4 access removals") {
		t.Fatalf("sync after the swap: exit %d, want %d (held)\n%s%s", code, exitHeld, out, errb)
	}
}

// TestSlipEveryGroupRuleRemovedIsGuarded (smaller finding): removing every
// groups: rule used to freeze membership with no decision. The groups the
// rules gave are access dirsync granted: they are taken away as access
// removals, through the guard (40 > max_access_removal: held).
func TestSlipEveryGroupRuleRemovedIsGuarded(t *testing.T) {
	e := newEnv(t, 40, "    groups:\n      - {group: staff, as: everyone}\n")
	if code, out, errb := e.run("sync"); code != exitOK {
		t.Fatalf("first sync: exit %d\n%s%s", code, out, errb)
	}
	e.setConfig("    groups:\n      - {group: staff, as: everyone}\n", "")
	code, out, errb := e.run("sync")
	if code != exitHeld || !strings.Contains(errb, "40 access removals") || !strings.Contains(errb, "groups: rule") {
		t.Fatalf("sync with every group rule removed: exit %d, want %d (held)\n%s%s", code, exitHeld, out, errb)
	}
	if a := e.appAccounts()["user001"]; len(a.Groups) != 1 {
		t.Fatalf("groups changed by a held run: %v", a.Groups)
	}
}

// TestSlipSourceApprovalAcceptsOnlyTheReviewedRead (finding 2): a source
// hold said "hr: 30 users, down from 40". A scope typo landed before the
// approval: approving must not accept it (it used to apply 36 suspensions).
// The approval is refused with a decision naming what changed, and the new
// read is held for review. Approving an unchanged read accepts it, but the
// other limits still apply: its 10 suspensions are held again.
func TestSlipSourceApprovalAcceptsOnlyTheReviewedRead(t *testing.T) {
	e := newEnv(t, 40, "")
	e.run("sync")
	gone := func(i int, u *hrUser) {
		if i >= 30 {
			u.ID = ""
		}
	}
	e.writeHR(40, gone)
	code, _, errb := e.run("sync")
	run := heldRun.FindStringSubmatch(errb)
	if code == exitOK || run == nil || !strings.Contains(errb, "30 users, down from 40") {
		t.Fatalf("shrunk source: exit %d\n%s", code, errb)
	}
	if _, out, _ := e.run("approve"); !strings.Contains(out, "approving accepts this read (30 users, 30 active") {
		t.Fatalf("the held list does not say which read an approval accepts:\n%s", out)
	}
	// The typo: everyone leaves the scope group.
	e.writeHR(40, func(i int, u *hrUser) { gone(i, u); u.Groups = []string{"stuff"} })
	code, out, errb := e.run("approve", run[1])
	if code == exitOK || !strings.Contains(errb, "changed since") {
		t.Fatalf("approve after the source changed: exit %d\n%s%s", code, out, errb)
	}
	for n, a := range e.appAccounts() {
		if a.Suspended {
			t.Fatalf("%s suspended by an approval of a read nobody reviewed", n)
		}
	}
	_, out, _ = e.run("decisions", "--output", "json")
	if !strings.Contains(out, "held read: 30 users (30 active)") {
		t.Fatalf("no decision says what changed:\n%s", out)
	}
	// The reviewed read again, held again, approved: accepted, and its 10
	// suspensions pass the guard like any run's — held for their own review.
	e.writeHR(40, gone)
	_, _, errb = e.run("sync")
	run = heldRun.FindStringSubmatch(errb)
	if run == nil {
		t.Fatalf("no source hold: %s", errb)
	}
	code, out, errb = e.run("approve", run[1])
	if code != exitHeld || !strings.Contains(errb, "10 suspensions") {
		t.Fatalf("approve of the reviewed read: exit %d, want %d (its suspensions held)\n%s%s", code, exitHeld, out, errb)
	}
	run = heldRun.FindStringSubmatch(errb)
	if code, out, errb := e.run("approve", run[1]); code != exitOK || !strings.Contains(out, "10 applied") {
		t.Fatalf("approve the suspensions: exit %d\n%s%s", code, out, errb)
	}
}

// TestSlipRenamedTargetKeepsItsLeavers (finding 3): a target renamed in the
// config (with renamed_from, and without it: the same application) keeps
// its leavers: a leaver re-enabled by hand is suspended again by a
// reconcile, and the pending delete_after deletion keeps its clock.
func TestSlipRenamedTargetKeepsItsLeavers(t *testing.T) {
	for _, tc := range []struct{ name, rename string }{
		{"renamed_from", "  - name: vpn\n    renamed_from: [app]\n"},
		{"same application", "  - name: vpn\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 40, "    deprovision: {action: suspend, delete_after: 30d}\n")
			e.run("sync")
			e.writeHR(40, func(i int, u *hrUser) {
				if i >= 38 {
					u.ID = ""
				}
			})
			if code, out, errb := e.run("sync"); code != exitOK || !strings.Contains(out, "2 applied") {
				t.Fatalf("leavers: exit %d\n%s%s", code, out, errb)
			}
			suspendedAt := e.storedAccount("app", "user038").SuspendedAt
			e.setConfig("  - name: app\n", tc.rename)
			if code, out, errb := e.run("sync"); code != exitOK {
				t.Fatalf("sync after the rename: exit %d\n%s%s", code, out, errb)
			}
			_, out, _ := e.run("decisions", "--target", "vpn", "--output", "json")
			if !strings.Contains(out, "target renamed from app") || !strings.Contains(out, "2 leavers still deprovisioned, 2 with a pending delete_after deletion") {
				t.Fatalf("no rename decision:\n%s", out)
			}
			if got := e.storedAccount("vpn", "user038").SuspendedAt; got == nil || !got.Equal(*suspendedAt) {
				t.Fatalf("the pending deletion's clock: %v, want %v", got, suspendedAt)
			}
			e.editApp("user038", func(a *identity.Account) { a.Suspended = false })
			if code, out, errb := e.run("reconcile"); code != exitOK || !e.appAccounts()["user038"].Suspended {
				t.Fatalf("reconcile after a leaver was re-enabled by hand: exit %d, suspended %v\n%s%s", code, e.appAccounts()["user038"].Suspended, out, errb)
			}
		})
	}
}

// storedAccount reads a target's last-applied record of a user from the
// embedded state (no command may be running).
func (e *env) storedAccount(target, username string) identity.Account {
	e.t.Helper()
	cfg, err := loadConfig(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := backends.Open(context.Background(), cfg.State, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	accts, err := st.Accounts(context.Background(), target)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range accts {
		if a.Username == username {
			return a
		}
	}
	e.t.Fatalf("no record of %s in %s", username, target)
	return identity.Account{}
}

// TestSlipStateLossAdoptsWithoutDuplicates: a lost state file is a fresh
// start: every account a current person matches is adopted, nothing is
// created twice and nobody is suspended (README: renamed targets and lost
// state).
func TestSlipStateLossAdoptsWithoutDuplicates(t *testing.T) {
	e := newEnv(t, 40, "")
	e.run("sync")
	if err := os.Remove(filepath.Join(e.dir, "state.db")); err != nil {
		t.Fatal(err)
	}
	code, out, errb := e.run("sync")
	if code != exitOK {
		t.Fatalf("sync after the state was lost: exit %d\n%s%s", code, out, errb)
	}
	accts := e.appAccounts()
	if len(accts) != 40 {
		t.Fatalf("%d accounts after the state was lost, want 40", len(accts))
	}
	for n, a := range accts {
		if a.Suspended {
			t.Fatalf("%s suspended after the state was lost", n)
		}
	}
	if _, out, _ := e.run("decisions", "--output", "json"); strings.Contains(out, `"action":"create"`) {
		t.Fatalf("accounts created again after the state was lost:\n%s", out)
	}
}
