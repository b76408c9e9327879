package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

// Stage "read back": the target's cache is checked against the
// application before planning. Every run re-reads the accounts an
// interrupted call left uncertain and adopts accounts of people the cache
// has none for; a reconcile run reads every live account back.
//
// A reconcile run reads every live account back from each application that
// can list its accounts and never trusts the cache over what it just read:
//   - drift: a live account differs from what dirsync last confirmed. The
//     cache takes the live value, so the ordinary plan puts the account
//     back to what the sources say. Drift that adds access (re-enabled, role
//     raised, group added, expiry cleared or pushed back, an account of a
//     person out of scope) is always put back; other drift follows the
//     target's reconcile.drift (fix or report).
//   - orphan: a live account no source knows. reconcile.orphans says
//     whether it is reported, suspended or deleted; reconcile.allow lists
//     accounts never touched.
//   - missing: the cache has an account the application does not: the
//     cache is corrected, and the plan re-creates it where the person is in
//     scope.
// Every fix goes through the same plan, guard and apply path as any run.

// readBackStage fills f.cached (the cache as the application confirms it),
// f.keys (the accounts a targeted run is about) and f.orphans.
func (rc *runCtx) readBackStage(ctx context.Context, f *flow) error {
	e := rc.e
	cached, err := e.o.Store.Accounts(ctx, f.name)
	if err != nil {
		return fmt.Errorf("load cached accounts: %w", err)
	}
	// A renamed target takes over the history kept under its former name.
	if cached, err = rc.carryOver(ctx, f.spec, cached); err != nil {
		return err
	}
	f.cached = cached
	if !rc.ro.NoApply || rc.ro.Reconcile {
		if err := e.open(ctx, f.spec.Target); err != nil {
			return err
		}
	}
	if rc.ro.Keys != nil {
		f.keys = maps.Clone(rc.persons)
		rc.alsoTheirOldAccounts(f.keys, f.known, cached)
	}
	if rc.ro.Reconcile {
		if l, ok := f.spec.Target.(connector.Lister); ok {
			if f.orphans, err = rc.readBack(ctx, f, l); err != nil {
				return err
			}
		} else {
			rc.cannotReconcile(f.name)
		}
	}
	return rc.reconcile(ctx, f)
}

// ReconcileReport is what the last reconcile of a target found, kept for
// `dirsync report access`.
type ReconcileReport struct {
	Target string    `json:"target"`
	Time   time.Time `json:"time"`
	// Drift maps a person id to the fields found changed outside dirsync.
	Drift map[string][]string `json:"drift,omitempty"`
	// Orphans are live accounts no source knows.
	Orphans []identity.Account `json:"orphans,omitempty"`
	// Missing are person ids whose account the application no longer had.
	Missing []string `json:"missing,omitempty"`
}

const reconcileBucket = "reconcile"

// LastReconcile returns the stored report of a target's last reconcile.
func LastReconcile(ctx context.Context, st state.Store, tgt string) (*ReconcileReport, error) {
	raw, _, err := st.KVGet(ctx, reconcileBucket, tgt)
	if err != nil {
		return nil, err
	}
	var r ReconcileReport
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("reconcile report of %s: %w", tgt, err)
	}
	return &r, nil
}

// liveFields returns the fields a lister reports faithfully.
func liveFields(t connector.Connector) map[string]bool {
	out := map[string]bool{}
	if lf, ok := t.(connector.LiveFielder); ok {
		for _, f := range lf.LiveFields() {
			out[f] = true
		}
	} else {
		out[identity.FieldSuspended] = true
	}
	return out
}

// allowed reports whether an account is on the target's reconcile allow-list.
func allowed(pats []string, a identity.Account) bool {
	for _, p := range pats {
		for _, v := range []string{a.Username, a.Email} {
			if v == "" {
				continue
			}
			if ok, _ := path.Match(p, v); ok || strings.EqualFold(p, v) {
				return true
			}
		}
	}
	return false
}

// readBack lists the target's live accounts and folds them into cached (see
// the comment at the top of this file). It returns the orphan steps to add
// to the plan and the decisions that report what it found.
func (rc *runCtx) readBack(ctx context.Context, f *flow, l connector.Lister) ([]Step, error) {
	e := rc.e
	spec, desired, cached := f.spec, f.desired, f.cached
	name := spec.Target.Name()
	metrics := e.o.Metrics
	if rc.ro.NoApply {
		metrics = nil // a re-check reads, and counts nothing
	}
	pol := retryPolicy{attempts: 4, base: e.o.RetryBase, maxRetryAfter: e.o.MaxRetryAfter, sleep: e.o.Sleep}
	var live []identity.Account
	if r := pol.do(ctx, func() error {
		var err error
		live, err = l.List(ctx)
		return err
	}); r.err != nil {
		return nil, fmt.Errorf("reconcile: list accounts: %w", r.err)
	}
	pol2 := spec.Config.Reconcile
	fields := liveFields(spec.Target)
	rules := RulesFrom(spec.Config)
	rules.Before = loadRulesInEffect(ctx, e.o.Store, name)
	rep := ReconcileReport{Target: name, Time: e.o.Now().UTC(), Drift: map[string][]string{}}
	// Match live accounts to cached ones (invariant 9): a record whose
	// application id is known matches by that id alone (the Remote keys the
	// connector says are ids: a tag or a group list many accounts share is
	// none); only a record with no id on record matches by email, then
	// username, and only one live account.
	byID, byEmail, byName := map[string]string{}, map[string]string{}, map[string]string{}
	for k, c := range cached {
		if !c.Exists {
			continue
		}
		ids := f.own.ids(c)
		for _, id := range ids {
			byID[id] = k
		}
		if len(ids) > 0 {
			continue
		}
		if c.Email != "" {
			byEmail[fold(c.Email)] = k
		}
		if c.Username != "" {
			byName[fold(c.Username)] = k
		}
	}
	seen := map[string]bool{}
	var orphanSteps, protectedSkips []Step
	matched := make([]string, len(live))
	for i, a := range live {
		for _, id := range f.own.ids(a) {
			if k, ok := byID[id]; ok && !seen[k] {
				matched[i], seen[k] = k, true
				break
			}
		}
	}
	var unmatched []identity.Account
	for i, a := range live {
		k := matched[i]
		if k == "" {
			if k = byEmail[fold(a.Email)]; a.Email == "" || seen[k] {
				k = ""
			}
			if k == "" && a.Username != "" && !seen[byName[fold(a.Username)]] {
				k = byName[fold(a.Username)]
			}
			if k != "" && !f.own.mayMatchByName(a, k) {
				k = ""
			}
			if k == "" {
				unmatched = append(unmatched, a)
				continue
			}
			seen[k] = true
		}
		if cached[k].Orphan {
			// An orphan acted on before: still an orphan, under the policy
			// as it is now.
			a.Key = k
			unmatched = append(unmatched, a)
			continue
		}
		c := cached[k]
		if !f.known.Has(k) && strings.HasPrefix(k, orphanPrefix) && pol2.Orphans == "delete" && !allowed(pol2.Allow, a) {
			// An orphan suspended by an earlier reconcile, kept in the
			// cache: orphans: delete now deletes it.
			orphanSteps = append(orphanSteps, orphanDelete(name, k, a, "orphan: no source knows this account (suspended earlier)"))
		}
		next, drift := foldLive(c, a, fields, rules, pol2.Drift)
		if len(drift) == 0 {
			if len(f.own.ids(c)) == 0 && len(f.own.ids(a)) > 0 {
				cached[k] = next // learns the application's id
			}
			continue
		}
		var refused []Step
		drift, refused = rc.protectedDrift(f.own.gate, name, c, drift)
		protectedSkips = append(protectedSkips, refused...)
		if len(drift) == 0 {
			continue
		}
		if len(refused) > 0 {
			next, _ = foldLive(c, a, fieldsOf(drift), rules, pol2.Drift) // only what the plan may put back
		}
		cached[k] = next
		rep.Drift[k] = nil
		for _, d := range drift {
			rep.Drift[k] = append(rep.Drift[k], d.field)
			what := "reported only (reconcile.drift: report)"
			out := OutcomeSkipped
			if d.fix {
				what = "put back by the plan below"
				out = rc.fixOutcome()
			}
			rc.decide(state.Decision{Target: name, User: displayUser(c), Action: "drift", Outcome: out,
				Reason: fmt.Sprintf("%s changed outside dirsync: cached %s, live %s (%s); %s", d.field, d.cached, d.live, d.kind, what)})
			if metrics != nil {
				metrics.ReconcileDrift.WithLabelValues(name, d.field).Inc()
			}
		}
	}
	// Accounts of former people (leavers the cache has no record of: a
	// renamed target, lost records) are leavers, not orphans.
	unmatched, err := rc.formerAccounts(ctx, name, unmatched, cached, seen)
	if err != nil {
		return nil, err
	}
	_, canRead := spec.Target.(connector.Reader)
	for k, c := range cached {
		if !c.Exists || seen[k] {
			continue
		}
		if canRead && c.IsUnknown(identity.FieldExists) && len(f.own.ids(c)) == 0 {
			// An uncertain create whose answer (and so the account's id)
			// was lost: an unmatched live account may be the one it made,
			// left unmatched only because another claims its email or
			// username (a link conflict). Not missing on that evidence: the
			// re-read below (reconcile) asks the application for it by the
			// key the create sent (invariants 3 and 4).
			continue
		}
		rep.Missing = append(rep.Missing, k)
		cached[k] = identity.Account{Key: k, Failing: c.Failing}
		rc.decide(state.Decision{Target: name, User: displayUser(c), Action: "missing", Outcome: rc.fixOutcome(),
			Reason: "the account is no longer in the application: the cache is corrected (re-created where the person is in scope)"})
		if rc.writes() {
			if err := e.o.Store.PutAccount(ctx, e.targetFence(name), name, cached[k]); err != nil {
				return nil, fmt.Errorf("reconcile: correct %q: %w", c.Username, err)
			}
		}
	}
	// Accounts no cache record has: a person's (adopted), one nobody may
	// adopt (a skip naming the candidates), or an orphan.
	held := f.own.newHolders(cached)
	now := e.o.Now()
	for _, a := range unmatched {
		if allowed(pol2.Allow, a) {
			continue // never reported nor touched
		}
		pid, why := f.own.adopt(a, held)
		if why != "" {
			f.skips = append(f.skips, Step{Target: name, Key: liveKey(a), User: displayUser(a), Action: "adopt",
				Reason: "found in the application: " + why})
			continue
		}
		if pid != "" {
			if c, ok := cached[pid]; ok && c.Exists {
				f.skips = append(f.skips, Step{Target: name, Key: liveKey(a), User: displayUser(a), Action: "adopt",
					Reason: fmt.Sprintf("found in the application: not adopted: %s has another account here (%s): an account belongs to one person; left to an operator", pid, displayUser(c))})
				continue
			}
			a.Key, a.Exists, a.Failing = pid, true, cached[pid].Failing
			cached[pid] = a
			held.add(pid, a)
			why := "adopted"
			if _, in := desired[pid]; !in {
				why = "an account of a person out of scope, made outside dirsync: deprovisioned by the plan below"
				rep.Drift[pid] = append(rep.Drift[pid], "exists")
				if metrics != nil {
					metrics.ReconcileDrift.WithLabelValues(name, "exists").Inc()
				}
			}
			rc.decide(state.Decision{Target: name, User: displayUser(a), Action: "drift", Outcome: rc.fixOutcome(),
				Reason: "found in the application, linked to " + pid + ": " + why})
			if rc.writes() {
				if err := e.o.Store.PutAccount(ctx, e.targetFence(name), name, a); err != nil {
					return nil, fmt.Errorf("reconcile: adopt %q: %w", a.Username, err)
				}
			}
			continue
		}
		a.Exists, a.Orphan = true, true
		rep.Orphans = append(rep.Orphans, a)
		a.Key = liveKey(a)
		reason := "orphan: no source knows this account"
		switch pol2.Orphans {
		case "suspend":
			if !a.Suspended && connector.Supports(spec.Target, connector.ActSuspend) {
				after := a.Clone()
				after.Suspended, after.Deprovisioned, after.SuspendedAt = true, true, &now
				orphanSteps = append(orphanSteps, Step{Target: name, Key: a.Key, User: displayUser(a), Action: connector.ActSuspend,
					Reason: reason + "; reconcile.orphans: suspend", Before: a, After: after})
				continue
			}
		case "delete":
			if connector.Supports(spec.Target, connector.ActDelete) {
				orphanSteps = append(orphanSteps, orphanDelete(name, a.Key, a, reason))
				continue
			}
			if !a.Suspended && connector.Supports(spec.Target, connector.ActSuspend) {
				orphanSteps = append(orphanSteps, Step{Target: name, Key: a.Key, User: displayUser(a), Action: connector.ActSuspend,
					Reason: insteadWhy(reason+"; reconcile.orphans: delete", name+" cannot delete accounts"), Before: a, After: deprovisioned(a, now)})
				continue
			}
		}
		rc.decide(state.Decision{Target: name, User: displayUser(a), Action: "orphan", Outcome: OutcomeSkipped,
			Reason: reason + "; reported (reconcile.orphans: " + pol2.Orphans + ")"})
	}
	if metrics != nil {
		metrics.OrphanAccounts.WithLabelValues(name).Set(float64(len(rep.Orphans)))
		metrics.LastReconcile.WithLabelValues(name).Set(float64(rep.Time.Unix()))
	}
	if rc.writes() {
		b, _ := json.Marshal(rep)
		if _, err := e.o.Store.KVPut(ctx, reconcileBucket, name, b, -1); err != nil {
			e.o.Logger.Warn("store the reconcile report", zap.String("target", name), zap.Error(err))
		}
	}
	return append(orphanSteps, protectedSkips...), nil
}

// orphanPrefix starts the cache key of an orphan account dirsync acted on.
const orphanPrefix = "orphan:"

// orphanDelete is the step deleting an orphan (reconcile.orphans: delete).
func orphanDelete(tgt, key string, a identity.Account, reason string) Step {
	a.Key, a.Exists = key, true
	return Step{Target: tgt, Key: key, User: displayUser(a), Action: connector.ActDelete,
		Reason: reason + "; reconcile.orphans: delete", Before: a, After: identity.Account{Key: key}}
}

// protectedDrift splits drift the plan would put back on an account the
// plan's gate refuses to change (a protected or allow-listed account, the
// super-admin, the token's owner) from the rest: that drift is not folded
// into the cache and comes back as one skip for the account (Action
// "drift"), logged once while it stays the same, saying it is left as it
// is.
func (rc *runCtx) protectedDrift(gate func(connector.Action, identity.Account) string, tgt string, c identity.Account, ds []drift) ([]drift, []Step) {
	var keep []drift
	var refused []string
	for _, d := range ds {
		if d.fix {
			if why := gate(fixAction(d.field, c), c); why != "" {
				refused = append(refused, fmt.Sprintf("%s changed outside dirsync: cached %s, live %s (%s); not put back: %s", d.field, d.cached, d.live, d.kind, why))
				continue
			}
		}
		keep = append(keep, d)
	}
	if len(refused) == 0 {
		return keep, nil
	}
	return keep, []Step{{Target: tgt, Key: c.Key, User: displayUser(c), Action: "drift", Before: c, Reason: strings.Join(refused, "; ")}}
}

// fieldsOf are the fields of ds, to fold only those.
func fieldsOf(ds []drift) map[string]bool {
	out := map[string]bool{}
	for _, d := range ds {
		out[d.field] = true
	}
	return out
}

// liveKey is the key of a live account no cache record holds: the
// connector's own, else "orphan:" and the application's id.
func liveKey(a identity.Account) string {
	if a.Key != "" {
		return a.Key
	}
	id := a.Username
	for _, rk := range []string{"uuid", "id", "user_id", "email_id", "username"} {
		if v := a.Remote[rk]; v != "" {
			id = v
			break
		}
	}
	return orphanPrefix + id
}

type drift struct {
	field, cached, live, kind string
	fix                       bool
}

// foldLive compares a cached account with its live one on the fields the
// target reports, and returns the record to plan from and the drift found.
func foldLive(c, a identity.Account, fields map[string]bool, r Rules, policy string) (identity.Account, []drift) {
	n := c.Clone()
	var out []drift
	add := func(field, cached, live string, adds bool, apply func()) {
		fix := adds || policy != "report"
		kind := "removes access"
		if adds {
			kind = "adds access"
		} else if field == identity.FieldProfile {
			kind = "profile"
		}
		out = append(out, drift{field: field, cached: cached, live: live, kind: kind, fix: fix})
		if fix {
			apply()
		}
	}
	if fields[identity.FieldSuspended] && c.Suspended != a.Suspended && !c.IsUnknown(identity.FieldSuspended) {
		add(identity.FieldSuspended, fmt.Sprint(c.Suspended), fmt.Sprint(a.Suspended), c.Suspended && !a.Suspended, func() { n.Suspended = a.Suspended })
	}
	if fields[identity.FieldRole] && c.Role != a.Role && c.Role != "" && !c.IsUnknown(identity.FieldRole) {
		add(identity.FieldRole, c.Role, orNone(a.Role), r.privilege().Raises(c.Role, a.Role), func() { n.Role = a.Role })
	}
	if fields[identity.FieldGroups] && !slices.Equal(identity.SortedSet(c.Groups), identity.SortedSet(a.Groups)) && !c.IsUnknown(identity.FieldGroups) {
		added := false
		for _, g := range a.Groups {
			if !slices.Contains(c.Groups, g) {
				added = true
			}
		}
		add(identity.FieldGroups, orNone(strings.Join(c.Groups, ",")), orNone(strings.Join(a.Groups, ",")), added, func() { n.Groups = slices.Clone(a.Groups) })
	}
	if fields[identity.FieldExpires] && !identity.SameTime(c.Expires, a.Expires) && !c.IsUnknown(identity.FieldExpires) {
		later := a.Expires == nil || (c.Expires != nil && a.Expires.After(*c.Expires))
		add(identity.FieldExpires, timeOr(c.Expires), timeOr(a.Expires), later, func() { n.Expires = a.Expires })
	}
	if fields[identity.FieldProfile] && (c.DisplayName != a.DisplayName || !strings.EqualFold(c.Email, a.Email) && a.Email != "") {
		add(identity.FieldProfile, c.DisplayName+" <"+c.Email+">", a.DisplayName+" <"+a.Email+">", false, func() {
			n.DisplayName = a.DisplayName
			if a.Email != "" {
				n.Email = a.Email
			}
		})
	}
	if a.Remote != nil {
		n.Remote = mergeRemote(n.Remote, a.Remote)
	}
	return n, out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func timeOr(t *time.Time) string {
	if t == nil {
		return "(none)"
	}
	return t.UTC().Format(time.RFC3339)
}

// cannotReconcile reports a target that cannot be read back.
func (rc *runCtx) cannotReconcile(name string) {
	rc.decide(state.Decision{Target: name, User: "*", Action: "reconcile", Outcome: OutcomeSkipped,
		Reason: name + " cannot list its accounts: its cache cannot be verified against the application (drift and orphans are not seen)"})
}

// reconcile fixes the cache before planning: accounts with an action in
// flight at a crash, or a field left unknown by an uncertain answer, are
// re-read from the application where it can be read; and accounts that
// exist in the application but not in the cache are adopted for the people
// the run is about who have none (accounts.go says when one may be).
func (rc *runCtx) reconcile(ctx context.Context, f *flow) error {
	t, desired, cached, keys := f.spec.Target, f.desired, f.cached, f.keys
	r, canRead := t.(connector.Reader)
	for k, c := range cached {
		if (c.Pending == "" && (len(c.Unknown) == 0 || !canRead)) || (keys != nil && !keys[k]) {
			continue
		}
		if !canRead {
			// A write-only application cannot be asked: an interrupted call
			// leaves its field unknown, so the plan sends the desired value
			// whichever way it points; a one-shot action is sent again.
			cached[k] = assumeUncertain(withoutPending(c), connector.Action(c.Pending), c)
			continue
		}
		var got identity.Account
		pol := retryPolicy{attempts: 4, base: rc.e.o.RetryBase, maxRetryAfter: rc.e.o.MaxRetryAfter, sleep: rc.e.o.Sleep}
		err := pol.do(ctx, func() error {
			var rerr error
			got, rerr = r.Read(ctx, c)
			return rerr
		}).err
		if err == nil && !f.own.isTheAccount(c, got) {
			err = connector.NotFound(fmt.Errorf("%s answered with another account (%s)", t.Name(), displayUser(got)))
		}
		switch {
		case connector.KindOf(err) == connector.KindNotFound:
			cached[k] = identity.Account{Key: k, Failing: c.Failing}
		case connector.CauseOf(err) == connector.CauseUnreadable:
			cached[k] = rc.unreadable(t.Name(), c, err)
			continue
		case err != nil:
			// One account that cannot be read back blocks no other step
			// (invariant 2): like a write-only application's, its fields
			// are taken as unknown, so the plan sends the desired values;
			// the stored record keeps its intent and is read again next run.
			what := c.Pending
			if what == "" {
				what = "uncertain answer"
			}
			rc.decide(state.Decision{Target: t.Name(), User: displayUser(c), Action: "re-read", Outcome: OutcomeFailed,
				Reason: fmt.Sprintf("re-read after an interrupted %s failed: the desired values are sent again", what), Error: err.Error()})
			cached[k] = assumeUncertain(withoutPending(c), connector.Action(c.Pending), c)
			if wait := connector.RetryAfterOf(err); wait > 0 && wait <= rc.e.o.MaxRetryAfter {
				// The application asked for a pause: the account's steps
				// come after it (the last attempt's Retry-After was not
				// waited by the retries).
				if serr := rc.e.o.Sleep(ctx, wait); serr != nil {
					return fmt.Errorf("re-read %q: %w", c.Username, serr)
				}
			}
			continue
		default:
			cached[k] = rebase(c, got)
		}
		// What was read is confirmed by the application: record it, so the
		// account is not read again next run.
		if !rc.ro.DryRun && !rc.ro.NoApply {
			if err := rc.e.o.Store.PutAccount(ctx, rc.e.targetFence(t.Name()), t.Name(), cached[k]); err != nil {
				return fmt.Errorf("record %q as re-read: %w", c.Username, err)
			}
		}
	}
	l, ok := t.(connector.Lister)
	if !ok || rc.ro.Reconcile {
		return nil // a reconcile run has read every account already
	}
	missing := 0
	for k, d := range desired {
		if keys != nil && !keys[k] {
			continue // a targeted run looks only for its people's accounts
		}
		if c, ok := cached[k]; !ok || !c.Exists {
			// A person no account can exist for (a name the application
			// cannot take) is no reason to read the whole list every run;
			// one the target only refuses to create is (see fallback.go).
			if cannotHold(t, d.Account) {
				continue
			}
			missing++
		}
	}
	if missing == 0 {
		return nil
	}
	var list []identity.Account
	pol := retryPolicy{attempts: 4, base: rc.e.o.RetryBase, maxRetryAfter: rc.e.o.MaxRetryAfter, sleep: rc.e.o.Sleep}
	res := pol.do(ctx, func() error {
		var err error
		list, err = l.List(ctx)
		return err
	})
	if res.err != nil {
		return fmt.Errorf("list accounts: %w", res.err)
	}
	// Adopt what exactly one person missing an account claims: the same
	// rules as a reconcile's (accounts.go).
	held := f.own.newHolders(cached)
	missingOne := func(pid string) bool {
		_, in := desired[pid]
		return in && !cached[pid].Exists && (keys == nil || keys[pid])
	}
	for _, a := range list {
		if !slices.ContainsFunc(f.own.claimants(a), missingOne) {
			continue // nobody this run could give it to
		}
		pid, why := f.own.adopt(a, held)
		switch {
		case why != "":
			f.skips = append(f.skips, Step{Target: t.Name(), Key: liveKey(a), User: displayUser(a), Action: "adopt",
				Reason: "found in the application: " + why})
			continue
		case pid == "" || !missingOne(pid):
			continue
		}
		a.Key, a.Exists = pid, true
		a.Failing = cached[pid].Failing
		cached[pid] = a
		held.add(pid, a)
		if rc.writes() {
			if err := rc.e.o.Store.PutAccount(ctx, rc.e.targetFence(t.Name()), t.Name(), a); err != nil {
				return fmt.Errorf("adopt %q: %w", a.Username, err)
			}
		}
	}
	return nil
}

func withoutPending(c identity.Account) identity.Account {
	c = c.Clone()
	c.Pending = ""
	return c
}

// rebase takes from the application's account the fields an interrupted
// or uncertain action may have changed, so the plan repeats it only if it
// did not land. The application was read: nothing stays unknown.
func rebase(c, got identity.Account) identity.Account {
	n := c.Clone()
	act := connector.Action(c.Pending)
	n.Pending = ""
	fields := map[string]bool{}
	for _, f := range c.Unknown {
		fields[f] = true
	}
	if f := fieldOf(act); f != "" {
		fields[f] = true
	}
	// An uncertain create's answer (and the id in it) was lost too
	// (assumeUncertain leaves its existence unknown, with no intent): the
	// account read is the one it made, so its id is learned as well.
	if act == connector.ActCreate || act == connector.ActDelete || !n.Exists || fields[identity.FieldExists] {
		n.Exists = true
		if got.Remote != nil {
			n.Remote = mergeRemote(n.Remote, got.Remote)
		}
		if act == connector.ActCreate {
			n.Email, n.Username, n.GivenName, n.FamilyName, n.DisplayName = got.Email, got.Username, got.GivenName, got.FamilyName, got.DisplayName
			fields[identity.FieldSuspended], fields[identity.FieldRole], fields[identity.FieldGroups] = true, true, true
		}
	}
	if fields[identity.FieldSuspended] {
		n.Suspended = got.Suspended
	}
	if fields[identity.FieldRole] {
		n.Role = got.Role
	}
	if fields[identity.FieldGroups] {
		n.Groups = got.Groups
	}
	if fields[identity.FieldExpires] {
		n.Expires = got.Expires
	}
	if fields[identity.FieldProfile] {
		n.Email, n.GivenName, n.FamilyName, n.DisplayName = got.Email, got.GivenName, got.FamilyName, got.DisplayName
	}
	if act == connector.ActForcePasswordChange {
		// What the application says: not set (or not reported) means the
		// interrupted call may never have been sent, so it is sent again.
		n.MustChangePassword = got.MustChangePassword
	}
	n.Unknown = nil
	return n
}
