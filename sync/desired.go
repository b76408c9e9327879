// Package sync is dirsync's engine: it builds each target's desired accounts
// from the merged source users (scope and mapping rules), diffs them against
// the last-applied accounts, plans ordered actions with reasons, guards
// against mass changes, applies through the connectors with rate limits and
// retries, and records every decision. The planner (Plan) is a pure function.
//
// The package name shadows the standard library's sync; files that need both
// import the standard one as stdsync.
package sync

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
)

// Desired is one desired account with the facts that explain it.
type Desired struct {
	Account identity.Account
	// User is the person behind the account: a pointer into the run's
	// people, not a copy (a million copies were most of a plan's memory).
	User *identity.User
	// Why is the scope reason ("member of vpn-users", "every user of corp-ad").
	Why string
	// RoleWhy says which rule gave the role.
	RoleWhy string
	// Expired is true when Expires has passed at planning time.
	Expired bool
}

// Rules are the target's mapping rules, from its config.
type Rules struct {
	Scope           []string
	IncludeInactive bool
	Roles           []config.RoleRule
	DefaultRole     string
	Groups          []config.GroupRule
	Username        string // username, email, attr:NAME
	Attributes      map[string]string
	Deprovision     config.Deprovision
	// RoleRank and PrivilegedRoles order roles by privilege (Privilege).
	RoleRank, PrivilegedRoles []string
	// Before are the rules in effect at the target's last full run that
	// applied without a hold (nil on its first run, or outside a run): a
	// config change is judged against them, not against itself.
	Before *RulesInEffect
}

// RulesFrom extracts the mapping rules from a target's config.
func RulesFrom(t config.TargetCommon) Rules {
	inc := true
	if t.IncludeInactive != nil {
		inc = *t.IncludeInactive
	}
	return Rules{Scope: t.Scope, IncludeInactive: inc, Roles: t.Roles, DefaultRole: t.DefaultRole,
		Groups: t.Groups, Username: t.Username, Attributes: t.Attributes, Deprovision: t.Deprovision,
		RoleRank: t.RoleRank, PrivilegedRoles: t.PrivilegedRoles}
}

// BuildDesired maps merged users to the target's desired accounts, by key.
// Users out of scope are absent. Disabled users in scope are present with
// Suspended set (unless the rules exclude inactive users).
//
// The desired accounts point into users, which must not change while they
// are in use.
func BuildDesired(users []identity.User, r Rules, now time.Time) map[string]Desired {
	out := make(map[string]Desired, len(users))
	w := newWhys(r)
	for i := range users {
		d, ok := desiredFor(&users[i], r, now, w)
		if ok {
			out[d.Account.Key] = d
		}
	}
	return out
}

// whys are the reasons BuildDesired gives, made once per rule or source and
// shared by every account they explain.
type whys struct {
	scope map[string]string // scope group → "member of G"
	every map[string]string // source → "every user of S"
	roles []string          // role rule → "member of G (roles[i])"
}

func newWhys(r Rules) *whys {
	w := &whys{scope: map[string]string{}, every: map[string]string{}}
	for _, g := range r.Scope {
		w.scope[g] = "member of " + g
	}
	for i, rr := range r.Roles {
		w.roles = append(w.roles, fmt.Sprintf("member of %s (roles[%d])", rr.Group, i))
	}
	return w
}

func desiredFor(u *identity.User, r Rules, now time.Time, w *whys) (Desired, bool) {
	why, ok := w.every[u.Source]
	if !ok {
		why = "every user of " + u.Source
		w.every[u.Source] = why
	}
	if len(r.Scope) > 0 {
		g := firstCommon(u.Groups, r.Scope)
		if g == "" {
			return Desired{}, false
		}
		why = w.scope[g]
	}
	expired := u.Expires != nil && !now.Before(*u.Expires)
	if !u.Active && !r.IncludeInactive {
		return Desired{}, false
	}
	a := identity.Account{
		Key:                u.Key,
		Username:           u.Username,
		Email:              u.Email,
		GivenName:          u.GivenName,
		FamilyName:         u.FamilyName,
		DisplayName:        u.DisplayName,
		Suspended:          !u.Active || expired,
		Expires:            u.Expires,
		MustChangePassword: u.MustChangePassword,
		Exists:             true,
	}
	switch {
	case r.Username == "email":
		a.Username = u.Email
	case strings.HasPrefix(r.Username, "attr:"):
		a.Username = u.Attributes[strings.TrimPrefix(r.Username, "attr:")]
	}
	roleWhy := ""
	for i, rr := range r.Roles {
		if slices.Contains(u.Groups, rr.Group) {
			a.Role = rr.Role
			roleWhy = w.roles[i]
			break
		}
	}
	if a.Role == "" && r.DefaultRole != "" {
		a.Role = r.DefaultRole
		roleWhy = "default_role"
	}
	if len(r.Groups) > 0 {
		var gs []string
		for _, gr := range r.Groups {
			if slices.Contains(u.Groups, gr.Group) {
				name := gr.As
				if name == "" {
					name = gr.Group
				}
				gs = append(gs, name)
			}
		}
		a.Groups = identity.SortedSet(gs)
	}
	if len(r.Attributes) > 0 {
		a.Attributes = make(map[string]string, len(r.Attributes))
		for k, src := range r.Attributes {
			if v, ok := u.Attributes[src]; ok {
				a.Attributes[k] = v
			}
		}
	}
	return Desired{Account: a, User: u, Why: why, RoleWhy: roleWhy, Expired: expired}, true
}

func firstCommon(have, want []string) string {
	for _, w := range want {
		if slices.Contains(have, w) {
			return w
		}
	}
	return ""
}

// NextExpiry returns the earliest expiry after now among accounts that are
// not yet suspended, and the keys expiring then; ok is false when none.
func NextExpiry(desired map[string]Desired, now time.Time) (at time.Time, keys []string, ok bool) {
	for k, d := range desired {
		e := d.Account.Expires
		if e == nil || !e.After(now) || d.Account.Suspended {
			continue
		}
		switch {
		case !ok || e.Before(at):
			at, keys, ok = *e, []string{k}, true
		case e.Equal(at):
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return at, keys, ok
}
