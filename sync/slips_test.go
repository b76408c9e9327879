package sync_test

import (
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// TestSlipFormerPeopleRecognisedByReconcile (issue 19, finding 3): a target
// renamed with nothing to carry its history over (no renamed_from, no
// endpoint) has no records of its leavers. A reconcile recognises their
// accounts — by the application's own id for the account, which the link
// table knows as a person no source carries any more, or by the journal,
// which shows dirsync managed the account — and deprovisions them as
// leavers: one re-enabled by hand is suspended again, not reported as an
// orphan. An account no source or journal ever knew stays an orphan.
func TestSlipFormerPeopleRecognisedByReconcile(t *testing.T) {
	h, mt := setup(t)
	h.Source.Set(people(40)...)
	h.Run(dsync.RunOptions{})
	h.Source.Set(people(38)...) // u038 and u039 leave
	h.Run(dsync.RunOptions{})
	renamed := memtarget.New("app2")
	for _, a := range mt.All() {
		switch a.Username {
		case "u039":
			a.Suspended = false // re-enabled by hand
		case "u038":
			a.Key = "nm-4711" // the application's own id: no person id
			a.Suspended = false
		}
		renamed.Seed(a)
	}
	renamed.Seed(identity.Account{Key: "hand-made", Username: "old.employee", Email: "old@example.test"})
	e2 := h.NewEngine(func(o *dsync.Options) { o.Targets = []dsync.TargetSpec{synctest.Spec(renamed, synctest.Common())} })
	res, err := e2.Run(t.Context(), dsync.RunOptions{Reconcile: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"u039", "nm-4711"} {
		if a, _ := renamed.Get(k); !a.Suspended {
			t.Fatalf("former person's account %s left active", k)
		}
	}
	var former, orphans []string
	for _, d := range h.DecisionsOf(res.RunID) {
		switch {
		case strings.Contains(d.Reason, "the account of a former person"):
			former = append(former, d.User)
		case d.Action == "orphan":
			orphans = append(orphans, d.User)
		}
	}
	if len(former) != 2 || len(orphans) != 1 || orphans[0] != "old.employee" {
		t.Fatalf("former %v, orphans %v", former, orphans)
	}
}

// TestSlipPrivilegeIsNotRuleOrder: the privilege order judges role
// changes by role_rank, then privileged_roles (admin-like names), then the
// rules in effect before the change — never by the new rules' order.
func TestSlipPrivilegeIsNotRuleOrder(t *testing.T) {
	before := &dsync.RulesInEffect{Roles: []config.RoleRule{{Group: "a", Role: "editor"}, {Group: "b", Role: "viewer"}}, DefaultRole: "guest"}
	p := dsync.PrivilegeOf(config.TargetCommon{Roles: []config.RoleRule{{Group: "s", Role: "guest"}, {Group: "b", Role: "viewer"}}}, before)
	for _, c := range []struct {
		from, to string
		lowers   bool
	}{
		{"admin", "user", true},     // privileged → not
		{"user", "admin", false},    // not → privileged
		{"editor", "viewer", true},  // by the rules in effect before
		{"viewer", "editor", false}, //
		{"editor", "guest", true},   // the default role ranks lowest
		{"custom", "viewer", true},  // a role no rule gave counts as the highest
		{"viewer", "newrole", true}, // direction unknown: counted
		{"", "viewer", false},       // no role → a role
	} {
		if got := p.Lowers(c.from, c.to); got != c.lowers {
			t.Errorf("%s → %s lowers = %v, want %v", c.from, c.to, got, c.lowers)
		}
	}
	ranked := dsync.PrivilegeOf(config.TargetCommon{RoleRank: []string{"owner", "member"}}, nil)
	if !ranked.Lowers("owner", "member") || ranked.Lowers("member", "owner") || !ranked.Raises("member", "root") {
		t.Fatal("role_rank does not decide")
	}
}
