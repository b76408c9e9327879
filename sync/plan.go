package sync

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

// Step is one planned action on one account. Before is the cached account
// when the plan was made, After the account as it should be once the action
// is confirmed. The executor applies a step to the record as it stands when
// the step runs (not to Before), so a step applied later — an approval, a
// plan file — never writes an old record over a newer one.
type Step struct {
	Target string           `json:"target"`
	Key    string           `json:"key"`
	User   string           `json:"user"`
	Action connector.Action `json:"action"`
	Reason string           `json:"reason"`
	Before identity.Account `json:"before"`
	After  identity.Account `json:"after"`
	// Removal marks a set_groups that removes a group, a set_role that
	// lowers the role, or a set_expiry that sets or brings forward an end
	// date on an account that had none or a later one: access removals,
	// counted by the guard. (A new account's first end date is part of
	// making it, not a removal.)
	Removal bool `json:"removal,omitempty"`
	// Role, on a create, is the role the person will get (set by its own
	// step after the create): some applications decide at create time
	// what an account can be (Netmaker's community edition makes every
	// user an admin).
	Role string `json:"role,omitempty"`
}

// Reduces reports whether the step takes access away: suspend, delete, a
// group removal or role downgrade, or an expiry set or brought forward.
// Such steps are never blocked by another step's failure, a skip,
// quarantine or a circuit breaker opened by other steps.
func (s Step) Reduces() bool {
	switch s.Action {
	case connector.ActSuspend, connector.ActDelete:
		return true
	case connector.ActSetRole, connector.ActSetGroups:
		return s.Removal
	case connector.ActSetExpiry:
		return s.After.Expires != nil && (s.Before.Expires == nil || s.After.Expires.Before(*s.Before.Expires))
	}
	return false
}

// Plan is what one target needs in one run.
type Plan struct {
	Target string `json:"target"`
	// Steps are grouped by account, in per-account order.
	Steps []Step `json:"steps"`
	// Skips are actions the target cannot or will not do, and conflicts:
	// they become skipped decisions. Nothing is recorded for them.
	Skips []Step `json:"skips,omitempty"`
	// Notes are bookkeeping changes made without any application call (a
	// must-change flag cleared, the start of a deprovisioning, profile
	// fields a target does not manage, an account a write-only application
	// manages itself). The executor folds them into the record as it stands
	// after the account's steps, never claiming an unconfirmed action.
	Notes []identity.Account `json:"notes,omitempty"`
	// Accounts is the number of accounts the target has or will have, the
	// guard's denominator.
	Accounts int `json:"accounts"`
	// Retire are cache records of people no source knows whose account a
	// known person holds now (same username or email): a takeover whose
	// old record could not be dropped. They are forgotten, never
	// deprovisioned — the account is in use again.
	Retire []string `json:"retire,omitempty"`
	// Takeovers map a person to the cache record (by key) of an account
	// they take over: a person who left every source and comes back under a
	// new identity (another source, a new record) has the same username or
	// email, and the application has one account for that name. The record
	// moves to the new person; no second account is made.
	Takeovers map[string]string `json:"takeovers,omitempty"`
}

// Capability is what the planner needs to know about a target.
type Capability struct {
	Supports func(connector.Action) bool
	// Gate may refuse an action for an account (a reason means skip).
	Gate   func(connector.Action, identity.Account) string
	Order  []connector.Action
	Lister bool
}

// CapabilityOf reads a connector's capabilities.
func CapabilityOf(t connector.Connector) Capability {
	c := Capability{
		Supports: func(a connector.Action) bool { return connector.Supports(t, a) },
		Order:    connector.DefaultOrder,
	}
	if g, ok := t.(connector.Gater); ok {
		c.Gate = g.Gate
	}
	if o, ok := t.(connector.Orderer); ok {
		c.Order = o.Order()
	}
	_, c.Lister = t.(connector.Lister)
	return c
}

// PlanInput is everything the planner reads.
type PlanInput struct {
	Target  string
	Cap     Capability
	Rules   Rules
	Desired map[string]Desired
	Cached  map[string]identity.Account
	// Known are all merged users of the target's sources, by person id, to
	// tell "left the scope" from "left the directory" in reasons.
	Known People
	Now   time.Time
	// Keys limits a targeted run to these accounts; nil means all.
	Keys             map[string]bool
	QuarantineAfter  int
	RetryQuarantined bool
	// SamePerson reports whether a person is the one a gone record (an
	// account of a person no source knows any more) belonged to: the link
	// table, or a source's immutable id. Only then may the person take that
	// account over, or its record be retired; an email or a username alone
	// never makes two people one (invariant 9). nil: nobody is.
	SamePerson func(person, gone string) bool
	// Fresh says every source was read in this run (a full run): only then
	// is a must-change flag that went false taken as cleared, so a stale
	// stored read can never make the one-shot fire twice for one event.
	Fresh bool
}

// MakePlan diffs desired against cached accounts. It is a pure function of
// its input: same input, same plan.
func MakePlan(in PlanInput) Plan {
	p := Plan{Target: in.Target}
	// The cached accounts no desired account has: only those can belong
	// to people no source knows.
	existing := 0
	var undesired []string
	for k, c := range in.Cached {
		if c.Exists {
			existing++
		}
		if _, ok := in.Desired[k]; !ok {
			undesired = append(undesired, k)
		}
	}
	// A desired account is a known person's; a cached one without a
	// desired account is known when the sources still have the person.
	unknown := make(map[string]bool, len(undesired))
	for _, k := range undesired {
		if !in.Known.Has(k) {
			unknown[k] = true
		}
	}
	p.Accounts = max(existing, len(in.Desired))
	taken := map[string]bool{}
	blocked := map[string]bool{} // people left alone: their name is a gone person's account
	// Accounts of people no source knows any more, by username and email.
	gone := map[string]string{}
	for k := range unknown {
		c := in.Cached[k]
		if !c.Exists {
			continue
		}
		for _, v := range []string{c.Username, c.Email} {
			if v != "" {
				gone[strings.ToLower(v)] = k
			}
		}
	}
	if len(gone) > 0 {
		// A known person's account already carries the name: the gone
		// record is a stale duplicate of it.
		for k, c := range in.Cached {
			if unknown[k] || !c.Exists {
				continue
			}
			for _, v := range []string{c.Username, c.Email} {
				if old := gone[strings.ToLower(v)]; v != "" && old != "" && !taken[old] && (in.Keys == nil || in.Keys[k] || in.Keys[old]) &&
					(sameAppID(c, in.Cached[old]) || in.same(k, old)) {
					taken[old] = true
					p.Retire = append(p.Retire, old)
				}
			}
		}
		slices.Sort(p.Retire)
		for _, k := range slices.Sorted(maps.Keys(in.Desired)) {
			d := in.Desired[k]
			if c, ok := in.Cached[k]; (ok && c.Exists) || (in.Keys != nil && !in.Keys[k]) {
				continue
			}
			old := gone[strings.ToLower(d.Account.Username)]
			if old == "" && d.Account.Email != "" {
				old = gone[strings.ToLower(d.Account.Email)]
			}
			if old == "" || taken[old] {
				continue
			}
			if !in.same(k, old) {
				if notTheSamePerson(&p, in, d, old) {
					blocked[k] = true
				}
				continue
			}
			taken[old] = true
			if p.Takeovers == nil {
				p.Takeovers = map[string]string{}
			}
			p.Takeovers[k] = old
			rec := in.Cached[old].Clone()
			rec.Key, rec.Pending = k, ""
			if in.Cached == nil {
				in.Cached = map[string]identity.Account{}
			}
			// Plan the person from the account they take over.
			cached := maps.Clone(in.Cached)
			cached[k] = rec
			in.Cached = cached
		}
	}
	if !in.Cap.Lister && !in.Cap.Supports(connector.ActCreate) {
		sharedUsernames(&p, in, taken, blocked)
	}
	// Each account is planned where the maps' order meets it (no sort and
	// no second lookup over a million keys); the few that produce
	// anything are put in key order afterwards.
	type chunk struct {
		key                 string
		steps, skips, notes [2]int
	}
	var chunks []chunk
	base := [3]int{len(p.Steps), len(p.Skips), len(p.Notes)}
	plan1 := func(k string, d Desired, hasD bool) {
		if taken[k] || blocked[k] {
			return // handed over to the person who took the username, or left alone
		}
		c, hasC := in.Cached[k]
		s0, k0, n0 := len(p.Steps), len(p.Skips), len(p.Notes)
		switch {
		case hasD:
			planPresent(&p, &in, d, c, hasC)
		case hasC:
			planGone(&p, &in, c)
		default:
			return
		}
		if len(p.Steps) > s0 || len(p.Skips) > k0 || len(p.Notes) > n0 {
			chunks = append(chunks, chunk{key: k, steps: [2]int{s0, len(p.Steps)}, skips: [2]int{k0, len(p.Skips)}, notes: [2]int{n0, len(p.Notes)}})
		}
	}
	if in.Keys != nil {
		for k := range in.Keys {
			d, hasD := in.Desired[k]
			plan1(k, d, hasD)
		}
	} else {
		for k, d := range in.Desired {
			plan1(k, d, true)
		}
		for _, k := range undesired {
			plan1(k, Desired{}, false)
		}
	}
	slices.SortFunc(chunks, func(a, b chunk) int { return strings.Compare(a.key, b.key) })
	steps := slices.Clone(p.Steps[:base[0]])
	skips := slices.Clone(p.Skips[:base[1]])
	notes := slices.Clone(p.Notes[:base[2]])
	for _, c := range chunks {
		steps = append(steps, p.Steps[c.steps[0]:c.steps[1]]...)
		skips = append(skips, p.Skips[c.skips[0]:c.skips[1]]...)
		notes = append(notes, p.Notes[c.notes[0]:c.notes[1]]...)
	}
	p.Steps, p.Skips, p.Notes = steps, skips, notes
	return p
}

// same reports whether person is the one whose record gone was.
func (in PlanInput) same(person, gone string) bool {
	return in.SamePerson != nil && in.SamePerson(person, gone)
}

// notTheSamePerson explains, as a skip, why a person whose username or
// email is on a gone person's account does not take it over: they are not
// the same person (a successor given a role mailbox, a recycled username).
// On a target that knows its accounts by username and can make none (a
// write-only application) the person shares the gone person's account
// itself: they are left alone (blocked is true) and the account stays
// deprovisioned. Elsewhere they get an account of their own.
func notTheSamePerson(p *Plan, in PlanInput, d Desired, gone string) (blocked bool) {
	oc := in.Cached[gone]
	writeOnly := !in.Cap.Lister && !in.Cap.Supports(connector.ActCreate)
	blocked = writeOnly && d.Account.Username != "" && strings.EqualFold(oc.Username, d.Account.Username)
	what := "email"
	if d.Account.Username != "" && strings.EqualFold(oc.Username, d.Account.Username) {
		what = "username"
	}
	reason := fmt.Sprintf("account %s belongs to %s, whom no source knows any more; %s has its %s but is not the same person (no link, no common source id): ",
		displayUser(oc), gone, d.Account.Key, what)
	if blocked {
		reason += "left alone, and the account stays deprovisioned (" + in.Target + " knows accounts by username: rename one of them)"
	} else {
		reason += "not taken over; the account stays deprovisioned and the person gets one of their own"
	}
	p.Skips = append(p.Skips, Step{Target: in.Target, Key: d.Account.Key, User: displayUser(d.Account), Action: "takeover", Reason: reason})
	return blocked
}

// sharedUsernames keeps, on a target that knows its accounts by username
// and can make none (a write-only application: the username is the
// account's id), a person without a record off an account whose username
// another record holds, or that another new person has too: they would
// share one account. Each is left alone with a skip naming the others
// (invariant 9).
func sharedUsernames(p *Plan, in PlanInput, taken, blocked map[string]bool) {
	holder := map[string]string{}
	for k, c := range in.Cached {
		if c.Exists && c.Username != "" && !taken[k] {
			holder[strings.ToLower(c.Username)] = k
		}
	}
	fresh := map[string][]string{}
	for k, d := range in.Desired {
		if c, ok := in.Cached[k]; (ok && c.Exists) || blocked[k] || d.Account.Username == "" || (in.Keys != nil && !in.Keys[k]) {
			continue
		}
		u := strings.ToLower(d.Account.Username)
		fresh[u] = append(fresh[u], k)
	}
	for _, u := range slices.Sorted(maps.Keys(fresh)) {
		ks := fresh[u]
		h := holder[u]
		if h == "" && len(ks) == 1 {
			continue
		}
		slices.Sort(ks)
		for _, k := range ks {
			others := slices.DeleteFunc(slices.Clone(ks), func(o string) bool { return o == k })
			if h != "" {
				others = append([]string{h + " (whose record holds it)"}, others...)
			}
			blocked[k] = true
			d := in.Desired[k]
			p.Skips = append(p.Skips, Step{Target: in.Target, Key: k, User: displayUser(d.Account), Action: "takeover",
				Reason: fmt.Sprintf("account %s is also %s's: %s knows accounts by username, and an account belongs to one person; left alone until one of them is renamed",
					d.Account.Username, strings.Join(others, ", "), in.Target)})
		}
	}
}

// acc plans one account: cur is the account as it will be after the steps
// planned so far.
type acc struct {
	p     *Plan
	in    *PlanInput
	cur   identity.Account
	steps []Step
	note  bool // a bookkeeping change is pending
	fresh bool // the account is made by this plan (or first seen, write-only)
}

func (a *acc) step(act connector.Action, reason string, removal bool, mutate func(*identity.Account)) {
	a.stepAs(act, reason, removal, "", mutate)
}

// stepAs is step with, for a create, the role the person will get.
func (a *acc) stepAs(act connector.Action, reason string, removal bool, role string, mutate func(*identity.Account)) {
	next := a.cur.Clone()
	mutate(&next)
	s := Step{Target: a.in.Target, Key: next.Key, User: displayUser(next), Action: act, Reason: reason,
		Before: a.cur.Clone(), After: next, Removal: removal}
	if !a.in.Cap.Supports(act) {
		if act == connector.ActSuspend || act == connector.ActDelete {
			s.Reason = reason + "; skipped: " + a.in.Target + " cannot " + verb(act) + " accounts"
			a.p.Skips = append(a.p.Skips, s)
		}
		return
	}
	gated := next
	if act == connector.ActCreate {
		s.Role, gated.Role = role, role
	}
	if a.in.Cap.Gate != nil {
		if why := a.in.Cap.Gate(act, gated); why != "" {
			s.Reason = reason + "; skipped: " + why
			a.p.Skips = append(a.p.Skips, s)
			return
		}
	}
	if n := a.cur.Failing[string(act)]; !s.Reduces() && a.in.QuarantineAfter > 0 && n >= a.in.QuarantineAfter && !a.in.RetryQuarantined {
		s.Action, s.Reason = "quarantine", fmt.Sprintf("%s not retried: it failed in %d runs in a row (quarantined); fix the cause, then `dirsync sync --retry-quarantined`", act, n)
		a.p.Skips = append(a.p.Skips, s)
		return
	}
	a.steps = append(a.steps, s)
	a.cur = next
}

func verb(act connector.Action) string {
	if act == connector.ActDelete {
		return "delete"
	}
	return "suspend"
}

func (a *acc) finish() {
	order := a.in.Cap.Order
	if len(order) == 0 {
		order = connector.DefaultOrder
	}
	rank := func(x connector.Action) int {
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
			after := ApplyAction(cur, s.Action, s.After)
			s.Before, s.After = cur, after
			cur = after
		}
		a.p.Steps = append(a.p.Steps, a.steps...)
	}
	if a.note {
		a.p.Notes = append(a.p.Notes, a.cur.Clone())
	}
}

// ApplyAction returns cur with the fields that act changes taken from want:
// the record once the application confirmed act. Pending is cleared, the
// field is no longer unknown and the action's failure count is reset.
func ApplyAction(cur identity.Account, act connector.Action, want identity.Account) identity.Account {
	n := cur.Clone()
	w := want.Clone()
	switch act {
	case connector.ActCreate:
		// A create carries the profile and the expiry (an ezeep invitation's
		// expire_date); role, groups and flags follow as their own steps.
		failing := n.Failing
		n = w
		n.Suspended, n.Role, n.Groups, n.MustChangePassword = false, "", nil, false
		n.Deprovisioned, n.SuspendedAt, n.Unknown, n.Failing = false, nil, nil, failing
		n.Exists = true
	case connector.ActUpdate:
		n.Username, n.Email, n.GivenName, n.FamilyName, n.DisplayName, n.Attributes = w.Username, w.Email, w.GivenName, w.FamilyName, w.DisplayName, w.Attributes
	case connector.ActUnsuspend:
		n.Suspended, n.Deprovisioned, n.SuspendedAt = false, false, nil
	case connector.ActSuspend:
		n.Suspended, n.Deprovisioned, n.SuspendedAt = true, w.Deprovisioned, w.SuspendedAt
	case connector.ActSetRole:
		n.Role = w.Role
	case connector.ActSetGroups:
		n.Groups = w.Groups
	case connector.ActSetExpiry:
		n.Expires = w.Expires
	case connector.ActForcePasswordChange:
		n.MustChangePassword = true
	case connector.ActDelete:
		n = identity.Account{Key: cur.Key, Failing: n.Failing}
	}
	if act == connector.ActCreate || act == connector.ActDelete {
		n.Unknown = n.WithoutUnknown(identity.FieldExists)
	}
	if f := fieldOf(act); f != "" {
		n.Unknown = n.WithoutUnknown(f)
	}
	if len(n.Unknown) == 0 {
		n.Unknown = nil
	}
	if n.Failing != nil {
		delete(n.Failing, string(act))
		if len(n.Failing) == 0 {
			n.Failing = nil
		}
	}
	n.Pending = ""
	if w.Remote != nil && act != connector.ActDelete {
		n.Remote = mergeRemote(n.Remote, w.Remote)
	}
	return n
}

// fieldOf names the account field an action sets, for Unknown.
func fieldOf(act connector.Action) string {
	switch act {
	case connector.ActSuspend, connector.ActUnsuspend:
		return identity.FieldSuspended
	case connector.ActSetRole:
		return identity.FieldRole
	case connector.ActSetGroups:
		return identity.FieldGroups
	case connector.ActSetExpiry:
		return identity.FieldExpires
	case connector.ActUpdate:
		return identity.FieldProfile
	}
	return ""
}

// Settle folds a bookkeeping note into the record as it stands after the
// account's steps ran. It only ever claims what needs no confirmation: a
// must-change flag cleared, a deprovisioning started on an account that is
// already suspended, profile fields the target does not manage, and the
// account a write-only application manages itself. ok is false when the
// record does not change.
func Settle(rec, note identity.Account, manageProfile, writeOnly bool) (identity.Account, bool) {
	n := rec.Clone()
	if !n.Exists {
		if !writeOnly || !note.Exists {
			return rec, false
		}
		n = identity.Account{Key: note.Key, Username: note.Username, Email: note.Email, GivenName: note.GivenName,
			FamilyName: note.FamilyName, DisplayName: note.DisplayName, Attributes: note.Clone().Attributes,
			Exists: true, Failing: n.Failing}
	}
	if n.MustChangePassword && !note.MustChangePassword {
		n.MustChangePassword = false
	}
	if note.Deprovisioned && n.Suspended && !n.Deprovisioned {
		n.Deprovisioned, n.SuspendedAt = true, note.SuspendedAt
	}
	if !manageProfile {
		n.Username, n.Email, n.GivenName, n.FamilyName, n.DisplayName = note.Username, note.Email, note.GivenName, note.FamilyName, note.DisplayName
		n.Attributes = note.Clone().Attributes
	}
	n.Pending = ""
	if sameRecord(n, rec) {
		return rec, false
	}
	return n, true
}

func sameRecord(a, b identity.Account) bool {
	return a.Exists == b.Exists && a.MustChangePassword == b.MustChangePassword && a.Deprovisioned == b.Deprovisioned &&
		identity.SameTime(a.SuspendedAt, b.SuspendedAt) && a.Username == b.Username && a.Email == b.Email &&
		a.GivenName == b.GivenName && a.FamilyName == b.FamilyName && a.DisplayName == b.DisplayName &&
		maps.Equal(a.Attributes, b.Attributes) && a.Pending == b.Pending
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

func planPresent(p *Plan, in *PlanInput, d Desired, c identity.Account, hasC bool) {
	want := d.Account
	src := d.User.Source
	a := &acc{p: p, in: in, fresh: !hasC || !c.Exists}
	if hasC && c.Exists {
		// A shallow copy: every step works on a clone of it, and nothing
		// here changes a slice or map of it in place.
		a.cur = c
		a.cur.Pending = ""
	} else {
		switch {
		case in.Cap.Supports(connector.ActCreate):
			if want.Suspended {
				return // never create an account only to suspend it
			}
			a.cur = identity.Account{Key: want.Key, Failing: c.Failing}
			a.stepAs(connector.ActCreate, fmt.Sprintf("in scope (%s, %s)", d.Why, src), false, want.Role, func(n *identity.Account) {
				*n = ApplyAction(*n, connector.ActCreate, want)
			})
			if len(a.steps) == 0 {
				return // the create was refused: nothing else can be done yet
			}
		case in.Cap.Lister:
			p.Skips = append(p.Skips, Step{Target: in.Target, Key: want.Key, User: displayUser(want), Action: connector.ActCreate,
				Reason: fmt.Sprintf("in scope (%s, %s) but no such account in %s, and it cannot create accounts", d.Why, src, in.Target)})
			return
		default:
			// A write-only application (Ezeelogin) manages its own accounts:
			// assume the account exists, active, with nothing set by us yet.
			a.cur = identity.Account{Key: want.Key, Username: want.Username, Email: want.Email, GivenName: want.GivenName,
				FamilyName: want.FamilyName, DisplayName: want.DisplayName, Attributes: want.Clone().Attributes, Exists: true, Failing: c.Failing}
			a.note = true
		}
	}
	diffExisting(a, d, src)
	a.finish()
}

func fact(u *identity.User, name, fallback string) string {
	f := u.Facts[name]
	if f == "" {
		f = fallback
	}
	if strings.Contains(f, ": ") && strings.HasPrefix(f, u.Source+":") {
		return f
	}
	return u.Source + ": " + f
}

const unknownWhy = "; the last call was interrupted and the application could not be read back: sent again"

// privilege is the rules' role order: a role change is judged against the
// rules in effect before the run (without them, the current ones), never by
// the position of the rules in a changed config (a rule added at the top
// of roles: must not make a demotion look like a promotion).
func (r Rules) privilege() Privilege {
	return Privilege{Rank: r.RoleRank, Privileged: r.PrivilegedRoles, Before: r.Before}.orCurrent(r)
}

// withoutRuleGroups returns groups without those the rules gave.
func withoutRuleGroups(groups []string, rules []config.GroupRule) []string {
	var out []string
	for _, g := range groups {
		if !slices.ContainsFunc(rules, func(r config.GroupRule) bool { return g == r.As || (r.As == "" && g == r.Group) }) {
			out = append(out, g)
		}
	}
	return out
}

func diffExisting(a *acc, d Desired, src string) {
	want := d.Account
	u := d.User
	cur := a.cur
	unknown := func(f string) string {
		if cur.IsUnknown(f) {
			return unknownWhy
		}
		return ""
	}
	if !want.Suspended && (cur.Suspended || cur.IsUnknown(identity.FieldSuspended)) {
		why := fact(u, identity.FactActive, "active")
		if cur.Deprovisioned {
			why = fmt.Sprintf("back in scope (%s, %s)", d.Why, src)
		}
		a.step(connector.ActUnsuspend, why+unknown(identity.FieldSuspended), false, func(n *identity.Account) { n.Suspended, n.Deprovisioned, n.SuspendedAt = false, false, nil })
	}
	if ch := profileChanges(cur, want); len(ch) > 0 || cur.IsUnknown(identity.FieldProfile) {
		if a.in.Cap.Supports(connector.ActUpdate) {
			a.step(connector.ActUpdate, src+": profile changed: "+strings.Join(ch, ", ")+unknown(identity.FieldProfile), false, func(n *identity.Account) {
				n.Username, n.Email, n.GivenName, n.FamilyName, n.DisplayName, n.Attributes = want.Username, want.Email, want.GivenName, want.FamilyName, want.DisplayName, want.Clone().Attributes
			})
		} else if len(ch) > 0 {
			// Not managed by dirsync here: the record mirrors the source.
			a.cur.Username, a.cur.Email, a.cur.GivenName, a.cur.FamilyName, a.cur.DisplayName = want.Username, want.Email, want.GivenName, want.FamilyName, want.DisplayName
			a.cur.Attributes = want.Clone().Attributes
			a.note = true
		}
	}
	if want.Role != "" && (want.Role != cur.Role || cur.IsUnknown(identity.FieldRole)) {
		from := cur.Role
		if from == "" {
			from = "(none)"
		}
		down := a.in.Rules.privilege().Lowers(cur.Role, want.Role)
		a.step(connector.ActSetRole, fmt.Sprintf("role %s → %s: %s", from, want.Role, d.RoleWhy)+unknown(identity.FieldRole), down, func(n *identity.Account) { n.Role = want.Role })
	}
	why := " (" + src + " membership)"
	managed := len(a.in.Rules.Groups) > 0
	if before := a.in.Rules.Before; !managed && before != nil && len(before.Groups) > 0 {
		// Every groups: rule was removed since the last applied run: the
		// groups they gave are taken away (access removals, guarded), the
		// rest of the account's groups are left alone.
		managed, want.Groups = true, withoutRuleGroups(cur.Groups, before.Groups)
		why = " (groups: rule removed from the config since the last applied run)"
	}
	if managed && (!slices.Equal(identity.SortedSet(cur.Groups), identity.SortedSet(want.Groups)) || cur.IsUnknown(identity.FieldGroups)) {
		removal := false
		for _, g := range cur.Groups {
			if !slices.Contains(want.Groups, g) {
				removal = true
			}
		}
		a.step(connector.ActSetGroups, strings.TrimSpace("groups "+groupDelta(cur.Groups, want.Groups))+why+unknown(identity.FieldGroups), removal,
			func(n *identity.Account) { n.Groups = slices.Clone(want.Groups) })
	}
	if !identity.SameTime(cur.Expires, want.Expires) || cur.IsUnknown(identity.FieldExpires) {
		what := "cleared"
		if want.Expires != nil {
			what = want.Expires.UTC().Format(time.RFC3339)
		}
		earlier := want.Expires != nil && (cur.Expires == nil || want.Expires.Before(*cur.Expires))
		a.step(connector.ActSetExpiry, fact(u, identity.FactExpires, "expiry")+" → expiry "+what+unknown(identity.FieldExpires), earlier && !a.fresh,
			func(n *identity.Account) { n.Expires = want.Expires })
	}
	switch {
	case want.MustChangePassword && !cur.MustChangePassword && want.Suspended && cur.Suspended && !cur.IsUnknown(identity.FieldSuspended):
		// An account suspended and staying so is not asked: the one-shot
		// is sent when it is unsuspended (a forced change whose landing was
		// unknown is not re-sent to an account deprovisioned since).
	case want.MustChangePassword && !cur.MustChangePassword:
		a.step(connector.ActForcePasswordChange, fact(u, identity.FactMustChangePassword, "must change password"), false, func(n *identity.Account) { n.MustChangePassword = true })
	case !want.MustChangePassword && cur.MustChangePassword && a.in.Fresh:
		a.cur.MustChangePassword = false
		a.note = true
	}
	if want.Suspended && (!cur.Suspended || cur.IsUnknown(identity.FieldSuspended)) {
		why := fact(u, identity.FactActive, "inactive")
		if u.Active && d.Expired {
			why = fmt.Sprintf("%s → expired at %s", fact(u, identity.FactExpires, "expiry"), want.Expires.UTC().Format(time.RFC3339))
		}
		a.step(connector.ActSuspend, why+unknown(identity.FieldSuspended), false, func(n *identity.Account) { n.Suspended = true })
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

func planGone(p *Plan, in *PlanInput, c identity.Account) {
	if !c.Exists || c.Orphan {
		return // an orphan's record follows reconcile.orphans alone
	}
	why := "no longer in any source"
	if u, ok := in.Known.Get(c.Key); ok {
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
		a.deleteOrSuspend(why + "; deprovision: delete")
	default: // suspend, then maybe delete after a delay
		switch {
		case !c.Suspended || c.IsUnknown(identity.FieldSuspended):
			now := in.Now
			reason := why + "; deprovision: suspend"
			if c.IsUnknown(identity.FieldSuspended) && c.Suspended {
				reason += unknownWhy
			}
			a.step(connector.ActSuspend, reason, false, func(n *identity.Account) { n.Suspended, n.Deprovisioned, n.SuspendedAt = true, true, &now })
		case !c.Deprovisioned:
			now := in.Now
			a.cur.Deprovisioned, a.cur.SuspendedAt = true, &now
			a.note = true
		case dp.DeleteAfter > 0 && c.SuspendedAt != nil && !in.Now.Before(c.SuspendedAt.Add(dp.DeleteAfter.D())):
			reason := fmt.Sprintf("%s; suspended since %s and delete_after %s elapsed", why, c.SuspendedAt.UTC().Format(time.RFC3339), dp.DeleteAfter.D())
			if in.Cap.Supports(connector.ActDelete) {
				a.step(connector.ActDelete, reason, false, func(n *identity.Account) { n.Exists = false })
			}
		}
	}
	a.finish()
}

// NextDeletion returns the earliest time after now that a suspended,
// deprovisioned account becomes due for deletion under the rules. A
// deletion already due is left to the runs (it may be held by the guard):
// it must not re-arm the timer again and again.
func NextDeletion(cached map[string]identity.Account, r Rules, now time.Time) (time.Time, bool) {
	var at time.Time
	ok := false
	if r.Deprovision.Action != "suspend" || r.Deprovision.DeleteAfter <= 0 {
		return at, false
	}
	for _, c := range cached {
		if c.Exists && c.Deprovisioned && c.SuspendedAt != nil {
			t := c.SuspendedAt.Add(r.Deprovision.DeleteAfter.D())
			if t.After(now) && (!ok || t.Before(at)) {
				at, ok = t, true
			}
		}
	}
	return at, ok
}
