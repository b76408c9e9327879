package sync

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
)

// Step is one planned action on one account. Before is the cached account,
// After the cache record to write once the application confirms it.
type Step struct {
	Target string           `json:"target"`
	Key    string           `json:"key"`
	User   string           `json:"user"`
	Action target.Action    `json:"action"`
	Reason string           `json:"reason"`
	Before identity.Account `json:"before"`
	After  identity.Account `json:"after"`
}

// Plan is what one target needs in one run.
type Plan struct {
	Target string `json:"target"`
	// Steps are grouped by account, in per-account order.
	Steps []Step `json:"steps"`
	// Skips are actions the target cannot or will not do; they become
	// skipped decisions and their After is recorded so they are not
	// re-logged every run.
	Skips []Step `json:"skips,omitempty"`
	// CacheOnly are cache records that change without any application call
	// (a flag cleared, a field the target does not keep).
	CacheOnly []identity.Account `json:"cache_only,omitempty"`
	// Accounts is the number of accounts the target has or will have, the
	// guard's denominator.
	Accounts int `json:"accounts"`
}

// Capability is what the planner needs to know about a target.
type Capability struct {
	Supports func(target.Action) bool
	// Gate may refuse an action for an account (a reason means skip).
	Gate   func(target.Action, identity.Account) string
	Order  []target.Action
	Lister bool
}

// CapabilityOf reads a connector's capabilities.
func CapabilityOf(t target.Target) Capability {
	c := Capability{
		Supports: func(a target.Action) bool { return target.Supports(t, a) },
		Order:    target.DefaultOrder,
	}
	if g, ok := t.(target.Gater); ok {
		c.Gate = g.Gate
	}
	if o, ok := t.(target.Orderer); ok {
		c.Order = o.Order()
	}
	_, c.Lister = t.(target.Lister)
	return c
}

// PlanInput is everything the planner reads.
type PlanInput struct {
	Target  string
	Cap     Capability
	Rules   Rules
	Desired map[string]Desired
	Cached  map[string]identity.Account
	// Known are all merged users of the target's sources, by key, to tell
	// "left the scope" from "left the directory" in reasons.
	Known map[string]identity.User
	Now   time.Time
	// Keys limits a targeted run to these accounts; nil means all.
	Keys             map[string]bool
	QuarantineAfter  int
	RetryQuarantined bool
}

// MakePlan diffs desired against cached accounts. It is a pure function of
// its input: same input, same plan.
func MakePlan(in PlanInput) Plan {
	p := Plan{Target: in.Target}
	keys := make(map[string]struct{}, len(in.Desired)+len(in.Cached))
	for k := range in.Desired {
		keys[k] = struct{}{}
	}
	existing := 0
	for k, c := range in.Cached {
		keys[k] = struct{}{}
		if c.Exists {
			existing++
		}
	}
	p.Accounts = max(existing, len(in.Desired))
	sorted := slices.Collect(maps.Keys(keys))
	sort.Strings(sorted)
	for _, k := range sorted {
		if in.Keys != nil && !in.Keys[k] {
			continue
		}
		d, hasD := in.Desired[k]
		c, hasC := in.Cached[k]
		if hasD {
			planPresent(&p, in, d, c, hasC)
		} else if hasC {
			planGone(&p, in, c)
		}
	}
	return p
}

type acc struct {
	p     *Plan
	in    PlanInput
	cur   identity.Account
	steps []Step
	dirty bool // cache-only change pending
}

func (a *acc) step(act target.Action, reason string, mutate func(*identity.Account)) {
	next := a.cur.Clone()
	mutate(&next)
	next.Skipped = ""
	s := Step{Target: a.in.Target, Key: next.Key, User: displayUser(next), Action: act, Reason: reason, Before: a.cur.Clone(), After: next}
	if !a.in.Cap.Supports(act) {
		a.silent(mutate)
		return
	}
	if a.in.Cap.Gate != nil {
		if why := a.in.Cap.Gate(act, next); why != "" {
			s.Reason = reason + "; skipped: " + why
			if act == target.ActCreate {
				s.After = identity.Account{Key: next.Key, Failures: next.Failures, Skipped: string(target.ActCreate)}
			}
			a.p.Skips = append(a.p.Skips, s)
			a.cur = s.After
			return
		}
	}
	a.steps = append(a.steps, s)
	a.cur = next
}

// skip records an action the target cannot do but that matters (suspend):
// it is logged, and recorded so it is not logged again next run.
func (a *acc) skip(act target.Action, reason string, mutate func(*identity.Account)) {
	next := a.cur.Clone()
	mutate(&next)
	a.p.Skips = append(a.p.Skips, Step{Target: a.in.Target, Key: next.Key, User: displayUser(next), Action: act, Reason: reason, Before: a.cur.Clone(), After: next})
	a.cur = next
}

// silent applies a change to the cache record only.
func (a *acc) silent(mutate func(*identity.Account)) {
	next := a.cur.Clone()
	mutate(&next)
	a.cur = next
	a.dirty = true
}

func (a *acc) finish() {
	order := a.in.Cap.Order
	if len(order) == 0 {
		order = target.DefaultOrder
	}
	rank := func(x target.Action) int {
		if i := slices.Index(order, x); i >= 0 {
			return i
		}
		return len(order)
	}
	slices.SortStableFunc(a.steps, func(x, y Step) int { return rank(x.Action) - rank(y.Action) })
	// Re-chain Before/After in the final order.
	if len(a.steps) > 0 {
		cur := a.steps[0].Before
		for i := range a.steps {
			s := &a.steps[i]
			after := applyAction(cur, s.Action, s.After)
			s.Before, s.After = cur, after
			cur = after
		}
		// Fold cache-only changes into the last step's record.
		last := &a.steps[len(a.steps)-1]
		last.After = mergeSilent(last.After, a.cur)
		a.p.Steps = append(a.p.Steps, a.steps...)
		return
	}
	if a.dirty {
		a.p.CacheOnly = append(a.p.CacheOnly, a.cur)
	}
}

// applyAction returns cur with the fields that act changes taken from want.
func applyAction(cur identity.Account, act target.Action, want identity.Account) identity.Account {
	n := cur.Clone()
	w := want.Clone()
	switch act {
	case target.ActCreate:
		// A create carries the profile and the expiry (an ezeep invitation's
		// expire_date); role, groups and flags follow as their own steps.
		n = w
		n.Suspended, n.Role, n.Groups, n.MustChangePassword = false, "", nil, false
		n.Exists = true
	case target.ActUpdate:
		n.Username, n.Email, n.GivenName, n.FamilyName, n.DisplayName, n.Attributes = w.Username, w.Email, w.GivenName, w.FamilyName, w.DisplayName, w.Attributes
	case target.ActUnsuspend:
		n.Suspended, n.Deprovisioned, n.SuspendedAt = false, false, nil
	case target.ActSuspend:
		n.Suspended, n.Deprovisioned, n.SuspendedAt = true, w.Deprovisioned, w.SuspendedAt
	case target.ActSetRole:
		n.Role = w.Role
	case target.ActSetGroups:
		n.Groups = w.Groups
	case target.ActSetExpiry:
		n.Expires = w.Expires
	case target.ActForcePasswordChange:
		n.MustChangePassword = true
	case target.ActDelete:
		n.Exists, n.Suspended, n.Deprovisioned, n.SuspendedAt = false, false, false, nil
	}
	n.Skipped = ""
	return n
}

// mergeSilent copies cache-only fields (those changed without an action)
// from full into rec.
func mergeSilent(rec, full identity.Account) identity.Account {
	if !rec.Exists {
		return rec
	}
	rec.MustChangePassword = full.MustChangePassword
	if !identity.SameTime(rec.Expires, full.Expires) {
		rec.Expires = full.Expires
	}
	rec.Username, rec.Email, rec.GivenName, rec.FamilyName, rec.DisplayName = full.Username, full.Email, full.GivenName, full.FamilyName, full.DisplayName
	rec.Attributes = full.Attributes
	return rec
}

func displayUser(a identity.Account) string {
	if a.Username != "" {
		return a.Username
	}
	if a.Email != "" {
		return a.Email
	}
	return a.Key
}

func planPresent(p *Plan, in PlanInput, d Desired, c identity.Account, hasC bool) {
	want := d.Account
	src := d.User.Source
	if hasC && in.QuarantineAfter > 0 && c.Failures >= in.QuarantineAfter && !in.RetryQuarantined {
		p.Skips = append(p.Skips, Step{Target: in.Target, Key: c.Key, User: displayUser(want), Action: "quarantine",
			Reason: fmt.Sprintf("quarantined: actions failed in %d runs in a row; run `dirsync sync --retry-quarantined` after fixing the cause", c.Failures), Before: c, After: c})
		return
	}
	a := &acc{p: p, in: in}
	if hasC && c.Exists {
		a.cur = c.Clone()
		a.cur.Pending = ""
	} else {
		if hasC && c.Skipped == string(target.ActCreate) {
			return // already told: this target cannot create it
		}
		switch {
		case in.Cap.Supports(target.ActCreate):
			if want.Suspended {
				return // never create an account only to suspend it
			}
			a.cur = identity.Account{Key: want.Key, Failures: c.Failures}
			a.step(target.ActCreate, fmt.Sprintf("in scope (%s, %s)", d.Why, src), func(n *identity.Account) {
				f := n.Failures
				*n = applyAction(identity.Account{}, target.ActCreate, want)
				n.Failures = f
			})
			if len(a.steps) == 0 {
				// The create was refused (a gate): nothing else can be done to
				// an account that does not exist.
				return
			}
			a.finish()
			// The remaining fields are diffed against the created account.
			created := applyAction(identity.Account{}, target.ActCreate, want)
			created.Failures = c.Failures
			b := &acc{p: p, in: in, cur: created}
			diffExisting(b, d, src)
			b.finish()
			return
		case in.Cap.Lister:
			p.Skips = append(p.Skips, Step{Target: in.Target, Key: want.Key, User: displayUser(want), Action: target.ActCreate,
				Reason: fmt.Sprintf("in scope (%s, %s) but no such account in %s, and it cannot create accounts", d.Why, src, in.Target),
				After:  identity.Account{Key: want.Key, Skipped: string(target.ActCreate)}})
			return
		default:
			// A write-only target (Ezeelogin) manages its own accounts: assume
			// the account exists, active, with nothing set by us yet.
			a.cur = identity.Account{Key: want.Key, Username: want.Username, Email: want.Email, GivenName: want.GivenName,
				FamilyName: want.FamilyName, DisplayName: want.DisplayName, Attributes: want.Attributes, Exists: true, Failures: c.Failures}
			a.dirty = true
		}
	}
	diffExisting(a, d, src)
	a.finish()
}

func fact(u identity.User, name, fallback string) string {
	f := u.Facts[name]
	if f == "" {
		f = fallback
	}
	if strings.Contains(f, ": ") && strings.HasPrefix(f, u.Source+":") {
		return f
	}
	return u.Source + ": " + f
}

func diffExisting(a *acc, d Desired, src string) {
	want := d.Account
	u := d.User
	cur := a.cur
	if cur.Suspended && !want.Suspended {
		why := fact(u, identity.FactActive, "active")
		if cur.Deprovisioned {
			why = fmt.Sprintf("back in scope (%s, %s)", d.Why, src)
		}
		a.step(target.ActUnsuspend, why, func(n *identity.Account) { n.Suspended, n.Deprovisioned, n.SuspendedAt = false, false, nil })
	}
	if ch := profileChanges(cur, want); len(ch) > 0 {
		a.step(target.ActUpdate, src+": profile changed: "+strings.Join(ch, ", "), func(n *identity.Account) {
			n.Username, n.Email, n.GivenName, n.FamilyName, n.DisplayName, n.Attributes = want.Username, want.Email, want.GivenName, want.FamilyName, want.DisplayName, want.Clone().Attributes
		})
	}
	if want.Role != "" && want.Role != cur.Role {
		from := cur.Role
		if from == "" {
			from = "(none)"
		}
		a.step(target.ActSetRole, fmt.Sprintf("role %s → %s: %s", from, want.Role, d.RoleWhy), func(n *identity.Account) { n.Role = want.Role })
	}
	if len(a.in.Rules.Groups) > 0 && !slices.Equal(identity.SortedSet(cur.Groups), identity.SortedSet(want.Groups)) {
		a.step(target.ActSetGroups, "groups "+groupDelta(cur.Groups, want.Groups)+" ("+src+" membership)", func(n *identity.Account) { n.Groups = slices.Clone(want.Groups) })
	}
	if !identity.SameTime(cur.Expires, want.Expires) {
		what := "cleared"
		if want.Expires != nil {
			what = want.Expires.UTC().Format(time.RFC3339)
		}
		a.step(target.ActSetExpiry, fact(u, identity.FactExpires, "expiry")+" → expiry "+what, func(n *identity.Account) { n.Expires = want.Expires })
	}
	switch {
	case want.MustChangePassword && !cur.MustChangePassword:
		a.step(target.ActForcePasswordChange, fact(u, identity.FactMustChangePassword, "must change password"), func(n *identity.Account) { n.MustChangePassword = true })
	case !want.MustChangePassword && cur.MustChangePassword:
		a.silent(func(n *identity.Account) { n.MustChangePassword = false })
	}
	if !cur.Suspended && want.Suspended {
		why := fact(u, identity.FactActive, "inactive")
		if u.Active && d.Expired {
			why = fmt.Sprintf("%s → expired at %s", fact(u, identity.FactExpires, "expiry"), want.Expires.UTC().Format(time.RFC3339))
		}
		mut := func(n *identity.Account) { n.Suspended = true }
		if a.in.Cap.Supports(target.ActSuspend) {
			a.step(target.ActSuspend, why, mut)
		} else {
			a.skip(target.ActSuspend, why+"; skipped: "+a.in.Target+" cannot suspend accounts", mut)
		}
	}
}

func profileChanges(cur, want identity.Account) []string {
	var ch []string
	if cur.Username != want.Username {
		ch = append(ch, "username")
	}
	if !strings.EqualFold(cur.Email, want.Email) {
		ch = append(ch, "email")
	}
	if cur.GivenName != want.GivenName {
		ch = append(ch, "given_name")
	}
	if cur.FamilyName != want.FamilyName {
		ch = append(ch, "family_name")
	}
	if cur.DisplayName != want.DisplayName {
		ch = append(ch, "display_name")
	}
	if !maps.Equal(cur.Attributes, want.Attributes) && (len(cur.Attributes) > 0 || len(want.Attributes) > 0) {
		for _, k := range slices.Sorted(maps.Keys(want.Attributes)) {
			if cur.Attributes[k] != want.Attributes[k] {
				ch = append(ch, "attributes."+k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(cur.Attributes)) {
			if _, ok := want.Attributes[k]; !ok {
				ch = append(ch, "attributes."+k)
			}
		}
	}
	return ch
}

func groupDelta(from, to []string) string {
	var parts []string
	for _, g := range to {
		if !slices.Contains(from, g) {
			parts = append(parts, "+"+g)
		}
	}
	for _, g := range from {
		if !slices.Contains(to, g) {
			parts = append(parts, "-"+g)
		}
	}
	return strings.Join(parts, " ")
}

func planGone(p *Plan, in PlanInput, c identity.Account) {
	if !c.Exists {
		return
	}
	why := "no longer in any source"
	if u, ok := in.Known[c.Key]; ok {
		why = fmt.Sprintf("%s: no longer in scope (not a member of %s)", u.Source, strings.Join(in.Rules.Scope, ", "))
		if len(in.Rules.Scope) == 0 {
			why = fmt.Sprintf("%s: disabled and include_inactive is false", u.Source)
		}
	}
	a := &acc{p: p, in: in, cur: c.Clone()}
	a.cur.Pending = ""
	dp := in.Rules.Deprovision
	switch dp.Action {
	case "none":
		return
	case "delete":
		if in.Cap.Supports(target.ActDelete) {
			a.step(target.ActDelete, why+"; deprovision: delete", func(n *identity.Account) { n.Exists = false })
		} else {
			a.skip(target.ActDelete, why+"; skipped: "+in.Target+" cannot delete accounts", func(n *identity.Account) { n.Exists = false })
		}
	default: // suspend, then maybe delete after a delay
		switch {
		case !c.Suspended:
			now := in.Now
			mut := func(n *identity.Account) { n.Suspended, n.Deprovisioned, n.SuspendedAt = true, true, &now }
			if in.Cap.Supports(target.ActSuspend) {
				a.step(target.ActSuspend, why+"; deprovision: suspend", mut)
			} else {
				a.skip(target.ActSuspend, why+"; skipped: "+in.Target+" cannot suspend accounts", mut)
			}
		case !c.Deprovisioned:
			now := in.Now
			a.silent(func(n *identity.Account) { n.Deprovisioned, n.SuspendedAt = true, &now })
		case dp.DeleteAfter > 0 && c.SuspendedAt != nil && !in.Now.Before(c.SuspendedAt.Add(dp.DeleteAfter.D())):
			reason := fmt.Sprintf("%s; suspended since %s and delete_after %s elapsed", why, c.SuspendedAt.UTC().Format(time.RFC3339), dp.DeleteAfter.D())
			if in.Cap.Supports(target.ActDelete) {
				a.step(target.ActDelete, reason, func(n *identity.Account) { n.Exists = false })
			}
		}
	}
	a.finish()
}

// NextDeletion returns the earliest time a suspended, deprovisioned account
// becomes due for deletion under the rules.
func NextDeletion(cached map[string]identity.Account, r Rules) (time.Time, bool) {
	var at time.Time
	ok := false
	if r.Deprovision.Action != "suspend" || r.Deprovision.DeleteAfter <= 0 {
		return at, false
	}
	for _, c := range cached {
		if c.Exists && c.Deprovisioned && c.SuspendedAt != nil {
			t := c.SuspendedAt.Add(r.Deprovision.DeleteAfter.D())
			if !ok || t.Before(at) {
				at, ok = t, true
			}
		}
	}
	return at, ok
}
