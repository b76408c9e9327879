package sync

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// everything supports every action; writeOnly plays Ezeelogin.
func capAll() Capability {
	return Capability{Supports: func(connector.Action) bool { return true }, Order: connector.DefaultOrder, Lister: true}
}

func capWriteOnly() Capability {
	return Capability{Supports: func(a connector.Action) bool {
		return a == connector.ActSuspend || a == connector.ActUnsuspend || a == connector.ActSetExpiry || a == connector.ActForcePasswordChange
	}, Order: []connector.Action{connector.ActUnsuspend, connector.ActSetExpiry, connector.ActForcePasswordChange, connector.ActSuspend}}
}

func user(key string, mods ...func(*identity.User)) identity.User {
	u := identity.User{Key: key, Source: "hr", Username: key, Email: key + "@x", Active: true, Groups: []string{"staff"}}
	for _, m := range mods {
		m(&u)
	}
	return identity.Normalize(u)
}

func cachedAccount(key string, mods ...func(*identity.Account)) identity.Account {
	a := identity.Account{Key: key, Username: key, Email: key + "@x", Exists: true, Role: "user"}
	for _, m := range mods {
		m(&a)
	}
	return a
}

var rules = Rules{IncludeInactive: true, Roles: []config.RoleRule{{Group: "admins", Role: "admin"}}, DefaultRole: "user",
	Groups: []config.GroupRule{{Group: "vpn"}, {Group: "ops"}}, Username: "username", Deprovision: config.Deprovision{Action: "suspend"}}

// render writes a plan as one line per step or skip: golden reasons.
func render(p Plan) []string {
	var out []string
	for _, s := range p.Steps {
		r := ""
		if s.Reduces() {
			r = " [reduces]"
		}
		out = append(out, fmt.Sprintf("%s %s: %s%s", s.Key, s.Action, s.Reason, r))
	}
	for _, s := range p.Skips {
		out = append(out, fmt.Sprintf("skip %s %s: %s", s.Key, s.Action, s.Reason))
	}
	for _, n := range p.Notes {
		out = append(out, "note "+n.Key)
	}
	return out
}

func TestMakePlanTable(t *testing.T) {
	exp := t0.Add(48 * time.Hour)
	past := t0.Add(-time.Hour)
	for _, tc := range []struct {
		name   string
		cap    Capability
		users  []identity.User
		cached []identity.Account
		quar   int
		want   []string
	}{
		{name: "new hire is created, then role and groups", cap: capAll(),
			users: []identity.User{user("a", func(u *identity.User) { u.Groups = []string{"staff", "vpn"} })},
			want: []string{
				"a create: in scope (every user of hr, hr)",
				"a set_role: role (none) → user: default_role",
				"a set_groups: groups +vpn (hr membership)",
			}},
		{name: "disabled new hire is never created", cap: capAll(),
			users: []identity.User{user("a", func(u *identity.User) { u.Active = false })}},
		{name: "disable suspends, naming the fact", cap: capAll(),
			users: []identity.User{user("a", func(u *identity.User) {
				u.Active = false
				u.Facts = map[string]string{"active": "userAccountControl ACCOUNTDISABLE set"}
			})},
			cached: []identity.Account{cachedAccount("a")},
			want:   []string{"a suspend: hr: userAccountControl ACCOUNTDISABLE set [reduces]"}},
		{name: "admin leaves admins: role downgrade is a removal", cap: capAll(),
			users:  []identity.User{user("a")},
			cached: []identity.Account{cachedAccount("a", func(a *identity.Account) { a.Role = "admin" })},
			want:   []string{"a set_role: role admin → user: default_role [reduces]"}},
		{name: "group removed is a removal", cap: capAll(),
			users:  []identity.User{user("a", func(u *identity.User) { u.Groups = []string{"staff", "vpn"} })},
			cached: []identity.Account{cachedAccount("a", func(a *identity.Account) { a.Groups = []string{"ops", "vpn"} })},
			want:   []string{"a set_groups: groups -ops (hr membership) [reduces]"}},
		{name: "expiry set and passed: expiry before suspend", cap: capWriteOnly(),
			users:  []identity.User{user("a", func(u *identity.User) { u.Expires = &past; u.Facts = map[string]string{"expires": "accountExpires"} })},
			cached: []identity.Account{cachedAccount("a", func(a *identity.Account) { a.Role = "" })},
			want: []string{
				"a set_expiry: hr: accountExpires → expiry 2026-11-23T09:00:00Z [reduces]",
				"a suspend: hr: accountExpires → expired at 2026-11-23T09:00:00Z [reduces]",
			}},
		{name: "write-only new account is a note, not a call", cap: capWriteOnly(),
			users: []identity.User{user("a")},
			want:  []string{"note a"}},
		{name: "unknown suspension is re-sent toward the desired value", cap: capWriteOnly(),
			users:  []identity.User{user("a", func(u *identity.User) { u.Active = false })},
			cached: []identity.Account{cachedAccount("a", func(a *identity.Account) { a.Role = ""; a.Unknown = []string{"suspended"} })},
			want:   []string{"a suspend: hr: inactive; the last call was interrupted and the application could not be read back: sent again [reduces]"}},
		{name: "quarantine skips the failing step, never the suspension", cap: capAll(), quar: 5,
			users: []identity.User{user("a", func(u *identity.User) { u.Active = false; u.GivenName = "New" })},
			cached: []identity.Account{cachedAccount("a", func(a *identity.Account) {
				a.Failing = map[string]int{"update": 5, "suspend": 9}
			})},
			want: []string{
				"a suspend: hr: inactive [reduces]",
				"skip a quarantine: update not retried: it failed in 5 runs in a row (quarantined); fix the cause, then `dirsync sync --retry-quarantined`",
			}},
		{name: "left the directory: deprovision suspend", cap: capAll(),
			cached: []identity.Account{cachedAccount("gone")},
			want:   []string{"gone suspend: no longer in any source; deprovision: suspend [reduces]"}},
		{name: "must-change cleared is a note; set fires once", cap: capAll(),
			users:  []identity.User{user("a"), user("b", func(u *identity.User) { u.MustChangePassword = true })},
			cached: []identity.Account{cachedAccount("a", func(a *identity.Account) { a.MustChangePassword = true }), cachedAccount("b")},
			want:   []string{"b force_password_change: hr: must change password", "note a"}},
		{name: "cannot create on a lister: a skip, nothing recorded", cap: Capability{Supports: func(a connector.Action) bool { return a != connector.ActCreate }, Lister: true},
			users: []identity.User{user("a")},
			want:  []string{"skip a create: in scope (every user of hr, hr) but no such account in app, and it cannot create accounts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cached := map[string]identity.Account{}
			for _, c := range tc.cached {
				cached[c.Key] = c
			}
			known := NewPeople(tc.users)
			in := PlanInput{Target: "app", Cap: tc.cap, Rules: rules, Desired: BuildDesired(tc.users, rules, t0), Cached: cached,
				Known: known, Now: t0, QuarantineAfter: tc.quar, Fresh: true}
			got := render(MakePlan(in))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("plan:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if again := render(MakePlan(in)); !slices.Equal(again, got) {
				t.Fatal("MakePlan is not a pure function of its input")
			}
		})
	}
	_ = exp
}

func TestGuardedTable(t *testing.T) {
	l := config.Safety{}.Limits()
	steps := func(act connector.Action, n int, removal bool) []Step {
		var out []Step
		for i := range n {
			out = append(out, Step{Key: fmt.Sprintf("k%03d", i), Action: act, Removal: removal})
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		steps    []Step
		accounts int
		held     int
		why      string
	}{
		{"10 suspensions of 1000 pass", steps(connector.ActSuspend, 10, false), 1000, 0, ""},
		{"11 suspensions are held", steps(connector.ActSuspend, 11, false), 1000, 11, "11 suspensions > max 10"},
		{"one suspension on a tiny target passes", steps(connector.ActSuspend, 1, false), 1, 0, ""},
		{"6% suspensions are held", steps(connector.ActSuspend, 6, false), 100, 6, "6 suspensions = 6.0% of 100 accounts > max 5.0%"},
		{"100 group removals are held", steps(connector.ActSetGroups, 100, true), 100, 100, "100 access removals > max 10"},
		{"100 group additions pass", steps(connector.ActSetGroups, 100, false), 100, 0, ""},
		{"only the kind over its limit is held", append(steps(connector.ActDelete, 11, false), steps(connector.ActSuspend, 2, false)...), 1000, 11, "11 deletions > max 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apply, held, why := Guarded(Plan{Steps: tc.steps, Accounts: tc.accounts}, l)
			if len(held) != tc.held || why != tc.why || len(apply)+len(held) != len(tc.steps) {
				t.Fatalf("held %d (%q), apply %d; want held %d (%q)", len(held), why, len(apply), tc.held, tc.why)
			}
		})
	}
}
