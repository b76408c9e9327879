package sync

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state"
)

// RulesInEffect are a target's role and group rules as they were at its last
// full run that applied without a hold. The guard judges what a
// configuration change causes against them: a role order or a group
// mapping that changed in the config is compared with what was applied,
// not with itself.
type RulesInEffect struct {
	Roles       []config.RoleRule  `json:"roles,omitempty"`
	DefaultRole string             `json:"default_role,omitempty"`
	Groups      []config.GroupRule `json:"groups,omitempty"`
}

// rulesBucket keeps each target's RulesInEffect (KV, key: target name).
const rulesBucket = "rules_in_effect"

// rulesOf returns the rules of r that RulesInEffect keeps.
func rulesOf(r Rules) RulesInEffect {
	return RulesInEffect{Roles: slices.Clone(r.Roles), DefaultRole: r.DefaultRole, Groups: slices.Clone(r.Groups)}
}

// loadRulesInEffect returns the target's stored rules, or nil when none
// were stored (its first run) or they cannot be read.
func loadRulesInEffect(ctx context.Context, st state.Store, tgt string) *RulesInEffect {
	raw, _, err := st.KVGet(ctx, rulesBucket, tgt)
	if err != nil {
		return nil
	}
	var r RulesInEffect
	if json.Unmarshal(raw, &r) != nil {
		return nil
	}
	return &r
}

// putRulesInEffect stores the rules a full run applied without a hold.
func putRulesInEffect(ctx context.Context, st state.Store, tgt string, r RulesInEffect) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = st.KVPut(ctx, rulesBucket, tgt, b, -1)
	return err
}

// Privilege orders a target's roles by privilege for the guard and for
// reconcile: a stable notion, never the position of the rules in the
// current config (that order only says which rule wins).
type Privilege struct {
	// Rank is the target's role_rank, most privileged first.
	Rank []string
	// Privileged is the target's privileged_roles (nil: admin-like names).
	Privileged []string
	// Before are the rules in effect before this run (nil: the current ones).
	Before *RulesInEffect
}

// PrivilegeOf builds the target's privilege order from its config and the
// rules in effect before this run (nil on its first run).
func PrivilegeOf(t config.TargetCommon, before *RulesInEffect) Privilege {
	return Privilege{Rank: t.RoleRank, Privileged: t.PrivilegedRoles, Before: before}.orCurrent(RulesFrom(t))
}

// orCurrent fills in the current rules when none were in effect before.
func (p Privilege) orCurrent(r Rules) Privilege {
	if p.Before == nil {
		now := rulesOf(r)
		p.Before = &now
	}
	return p
}

// compare says whether moving from role from to role to lowers (-1) or
// raises (+1) privilege, or 0 when it cannot be told (or from == to):
//   - role_rank, when configured, decides; a role it does not list counts
//     as the most privileged;
//   - otherwise a privileged role (privileged_roles, or admin-like names)
//     ranks above one that is not;
//   - otherwise the rules in effect before the run decide: the first role
//     rule ranks highest, the default role lowest; a role they did not
//     give is, as the role an account has, the most privileged (set by
//     hand, or by an older config), and as the role it gets, of unknown
//     rank (a new rule's role).
//
// No role at all ranks below every role.
func (p Privilege) compare(from, to string) int {
	switch {
	case from == to:
		return 0
	case from == "":
		return 1
	case to == "":
		return -1
	}
	if len(p.Rank) > 0 {
		return byIndex(slices.Index(p.Rank, from), slices.Index(p.Rank, to))
	}
	pf, pt := config.IsPrivilegedRole(p.Privileged, from), config.IsPrivilegedRole(p.Privileged, to)
	switch {
	case pf && !pt:
		return -1
	case pt && !pf:
		return 1
	}
	var r RulesInEffect
	if p.Before != nil {
		r = *p.Before
	}
	pos := func(role string) int {
		for i, rr := range r.Roles {
			if rr.Role == role {
				return i
			}
		}
		if role == r.DefaultRole {
			return len(r.Roles)
		}
		return -1
	}
	f, t := pos(from), pos(to)
	if t == -1 && f != -1 {
		return 0 // a role the rules before did not give: its rank is unknown
	}
	return byIndex(f, t)
}

// byIndex compares two positions in a most-privileged-first list where -1
// means "not listed: most privileged"; two unlisted roles cannot be told
// apart (0).
func byIndex(from, to int) int {
	switch {
	case from == -1 && to == -1:
		return 0
	case to == -1:
		return 1
	case from == -1:
		return -1
	case to > from:
		return -1
	case to < from:
		return 1
	}
	return 0
}

// Lowers reports whether a role change takes privilege away. A change whose
// direction cannot be told counts as lowering: the guard counts it.
func (p Privilege) Lowers(from, to string) bool { return from != to && p.compare(from, to) <= 0 }

// Raises reports whether a role change found in an application adds
// privilege. A change whose direction cannot be told counts as raising:
// reconcile always puts it back.
func (p Privilege) Raises(from, to string) bool { return from != to && p.compare(from, to) >= 0 }
