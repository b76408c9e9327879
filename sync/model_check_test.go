package sync_test

// The checks of the model-based test: every call judged against the
// reference model when it is made, the cache against the applications after
// every activity, leavers and the expiry timer after healthy full runs, and
// every account against the model at the end.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
)

// judge checks one call, before it lands, against what the sources say
// (any version the engine may know): no reduction of access the sources do
// not call for, no grant they do not call for, one-shot actions once.
func (w *world) judge(c *activity, tgt string, act connector.Action, a identity.Account) {
	tm := w.tm(tgt)
	cur, exists := w.targets[tgt].Find(a)
	if exists && tgt == "app" {
		if _, ok := w.strangers[cur.Username]; ok {
			switch {
			case cur.Username == "svc-p01":
				w.violate("protected account touched", "%s: %s sent to the protected account %s (for %s) (invariant 9)", tgt, act, cur.Username, a.Username)
			case cur.Username == "ext-p02":
				w.violate("allow-listed account touched", "%s: %s sent to the allow-listed account %s (for %s) (invariant 9)", tgt, act, cur.Username, a.Username)
			case act == connector.ActSuspend && w.conf.orphans != "report", act == connector.ActDelete && w.conf.orphans == "delete":
			default:
				w.violate("orphan touched", "%s: %s sent to the orphan %s (reconcile.orphans: %s; for %s)", tgt, act, cur.Username, w.conf.orphans, a.Username)
			}
			return
		}
	}
	p, dup, ok := personOfAccount(a)
	if !ok {
		p, dup, ok = personOfAccount(cur)
	}
	if !ok || dup {
		return // the duplicate record's own account is not judged
	}
	if q, _, qok := personOfAccount(cur); exists && qok && q != p && act != connector.ActCreate && !tm.byUsername {
		w.violate("account changes hands", "%s: %s for %s sent to the account of %s (%s) (invariant 9: a successor never gets a leaver's account)",
			tgt, act, familyName(p), familyName(q), cur.Username)
		return
	}
	if w.ref.shared[p] || (tm.byUsername && w.ref.recycled[p]) {
		return // which of the people sharing an identifier an account serves is not the model's to say
	}
	conflicted := w.ref.conflicted[p] || w.ref.sharedWith[p]
	now := w.h.Clock.Now()
	j := func(ok func(want) bool) bool { return w.ref.justified(tm, p, now, ok) }
	kind, allowed := "", true
	switch act {
	case connector.ActCreate:
		w.creates[tgt][p]++
		allowed = j(func(x want) bool { return x.present && !x.suspended })
	case connector.ActUnsuspend:
		allowed = j(func(x want) bool { return x.present && !x.suspended })
	case connector.ActSuspend:
		kind, allowed = "suspend", j(func(x want) bool { return !x.present || x.suspended })
	case connector.ActDelete:
		kind, allowed = "delete", j(func(x want) bool { return !x.present })
	case connector.ActSetRole:
		// A retry may find the downgrade already landed, so the role the
		// account has does not decide. But an account with no role yet (made
		// by this run: create, then set_role) has no access to lose: its
		// first role is part of making it, not a removal (as the engine's
		// Step.Removal says), and a short read that gives the new account
		// less than the truth takes nothing away (invariant 1 is about
		// access a person keeps). Seed 4187278326877157641: a successor made
		// a new account during a short read of admins was judged a 4th
		// downgrade.
		if privilege(a.Role) < 3 && cur.Role != "" {
			kind = "access removal"
		}
		allowed = j(func(x want) bool { return x.present && x.role == a.Role })
	case connector.ActSetGroups:
		for _, g := range cur.Groups {
			if !slices.Contains(a.Groups, g) {
				kind = "access removal"
				allowed = allowed && j(func(x want) bool { return !slices.Contains(x.groups, g) })
			}
		}
		for _, g := range a.Groups {
			if !slices.Contains(cur.Groups, g) {
				allowed = allowed && j(func(x want) bool { return x.present && slices.Contains(x.groups, g) })
			}
		}
	case connector.ActSetExpiry:
		if a.Expires != nil && (cur.Expires == nil || a.Expires.Before(*cur.Expires)) {
			kind = "expiry"
		}
		allowed = j(func(x want) bool { return x.present && identity.SameTime(x.expires, a.Expires) })
	case connector.ActForcePasswordChange:
		w.pwdCalls[tgt][p]++
		if n, allowance := w.pwdCalls[tgt][p], w.ref.pwdEvents[p]+w.creates[tgt][p]+w.pwdUnsure[tgt][p]; n > allowance {
			w.violate("one-shot repeated", "%s: force_password_change for %s sent %d times for %d password event(s), %d account creation(s) and %d sends whose landing the engine could not learn",
				tgt, a.Username, n, w.ref.pwdEvents[p], w.creates[tgt][p], w.pwdUnsure[tgt][p])
		}
	}
	// What the guard counts (sync.Guarded): suspensions, deletions, access
	// removals (a role lowered, a group removed) and, by invariant 8, an
	// earlier end date.
	guardKind := map[string]string{"suspend": "suspensions", "delete": "deletions", "access removal": "access removals"}[kind]
	if act == connector.ActSetRole && privilege(a.Role) >= privilege(cur.Role) {
		guardKind = ""
	}
	if kind == "expiry" && w.mech.on("massend") {
		guardKind = "access removals"
	}
	if guardKind != "" {
		id := tgt + "/" + guardKind
		if c.reduced[id] == nil {
			c.reduced[id] = map[int]bool{}
		}
		c.reduced[id][p] = true
	}
	if allowed || (conflicted && kind == "") {
		return // a conflicted person's grants are not judged: only what reduces their access
	}
	if c.short && kind == "" && c.shortRead != nil {
		// A change that gives no less access than the short read says (an
		// end date moved later again) is what the engine read: the guard
		// judges reductions, and the next good read puts it right.
		if w.ref.justifiedByRead(tm, p, now, c.shortRead, func(x want) bool { return sameAccess(act, x, a) }) {
			return
		}
	}
	budget := tgt + "/" + kind
	if kind != "" && c.short {
		if c.budget[budget] == nil {
			c.budget[budget] = map[string]bool{}
		}
		c.budget[budget][a.Username] = true
		if len(c.budget[budget]) <= guardLimit {
			return // within what the guard lets through: a short read cannot be told from the truth
		}
	}
	code := "unjustified " + string(act)
	if kind != "" {
		code = "collateral " + string(act)
	}
	short := ""
	if c.short && kind != "" {
		short = fmt.Sprintf(" (during a short read: unjustified %s of %d people in this target, past the guard's %d)", kind, len(c.budget[budget]), guardLimit)
	}
	w.violate(code, "%s: %s %s (to %s) is not what any version of the sources known to the engine says: %s%s",
		tgt, act, a.Username, accountSummary(a), w.describe(tm, p, now), short)
}

// checkGuard checks that an activity applied no more reductions of a kind
// in a target than the guard lets through: guardLimit, or for an approval
// what the approved run held (allow).
func (w *world) checkGuard(c *activity, allow map[string]int) {
	// A final run after a discard carries --allow-mass-change: discarded
	// steps stay withheld until a run releases them that way.
	if c.name == "mass run" || c.name == "change log" || (c.name == "final run" && w.discarded) || (allow == nil && !w.mech.on("guard")) || (allow != nil && !w.mech.on("approvesrc")) {
		return
	}
	for _, id := range slices.Sorted(maps.Keys(c.reduced)) {
		n := len(c.reduced[id])
		if n > max(guardLimit, allow[id]) {
			held := ""
			if allow != nil {
				held = fmt.Sprintf(" (the approved run held %d)", allow[id])
			}
			code := "guard let through"
			if allow != nil {
				code = "approval let through"
			}
			w.violate(code, "%s: %s applied %d %s, past the guard's %d%s", c.name, strings.Split(id, "/")[0], n, strings.Split(id, "/")[1], guardLimit, held)
		}
	}
}

// heldAllowance counts the steps a held run holds per target and guard kind.
func (w *world) heldAllowance(id string) map[string]int {
	out := map[string]int{}
	raw, err := w.mem.GetHeld(context.Background(), id)
	if err != nil {
		return out
	}
	var hp dsync.HeldPlan
	if json.Unmarshal(raw, &hp) != nil {
		return out
	}
	for _, p := range hp.Plans {
		people := map[string]map[string]bool{}
		for _, st := range p.Steps {
			k := ""
			switch {
			case st.Action == connector.ActSuspend:
				k = "suspensions"
			case st.Action == connector.ActDelete:
				k = "deletions"
			case st.Removal && (st.Action == connector.ActSetGroups || st.Action == connector.ActSetRole || st.Action == connector.ActSetExpiry):
				k = "access removals"
			}
			if k != "" {
				if people[k] == nil {
					people[k] = map[string]bool{}
				}
				people[k][st.Key] = true
			}
		}
		for k, ps := range people {
			out[w.modelName(p.Target)+"/"+k] += len(ps)
		}
	}
	return out
}

// sameAccess reports whether call act sends what x says for its field.
func sameAccess(act connector.Action, x want, a identity.Account) bool {
	switch act {
	case connector.ActSetExpiry:
		return x.present && identity.SameTime(x.expires, a.Expires)
	case connector.ActSetRole:
		return x.present && x.role == a.Role
	case connector.ActSetGroups:
		return x.present && slices.Equal(x.groups, identity.SortedSet(a.Groups))
	case connector.ActUnsuspend, connector.ActCreate:
		return x.present && !x.suspended
	}
	return false
}

// describe shows what the truth says about p in tm, for violation reports.
func (w *world) describe(tm targetModel, p int, now time.Time) string {
	x := w.ref.wantNow(tm, p, now)
	if !x.present {
		return "truth: no account"
	}
	return fmt.Sprintf("truth: suspended=%v role=%q groups=%v expires=%s", x.suspended, x.role, x.groups, fmtTime(x.expires))
}

// accountSummary shows the access fields of an account.
func accountSummary(a identity.Account) string {
	return fmt.Sprintf("suspended=%v role=%q groups=%v expires=%s", a.Suspended, a.Role, a.Groups, fmtTime(a.Expires))
}

// targetModelOf returns the model of the target named name.
func targetModelOf(name string) targetModel {
	for _, tm := range modelTargets {
		if tm.name == name {
			return tm
		}
	}
	panic("model: no target " + name)
}

// checkLanded checks a call the application applied: a create must not
// leave a person with two accounts.
func (w *world) checkLanded(tgt string, act connector.Action, a identity.Account) {
	if act != connector.ActCreate {
		return
	}
	p, dup, ok := personOfAccount(a)
	if !ok || dup {
		return
	}
	if n := len(w.accountsByPerson(w.tm(tgt))[p]); n > 1 {
		w.violate("second account", "%s: a create left %s (%s) with %d accounts", tgt, a.Username, familyName(p), n)
	}
}

// checkDecided checks that every call an application applied has its
// decision in the journal (a process that died may not have told).
func (w *world) checkDecided(c *activity, ds []state.Decision) {
	told := map[string]bool{}
	for _, d := range ds {
		told[w.modelName(d.Target)+"/"+d.User+"/"+d.Action] = true
	}
	for _, call := range c.landed {
		if !told[call] {
			w.violate("call without decision", "%s landed in %s but no decision names it", call, c.name)
		}
	}
}

// checkCache checks that no cache record claims what its application did
// not confirm: for every record without a pending intent, each access field
// not marked unknown equals the application's. (A lost answer must leave
// an intent, a re-read value or an unknown field, never the old value.)
func (w *world) checkCache() {
	for _, tm := range modelTargets {
		recs, err := w.mem.Accounts(context.Background(), w.engineName(tm.name))
		if err != nil {
			continue
		}
		mt := w.targets[tm.name]
		owner := map[string]string{} // application id → the record that holds the account
		for k, rec := range recs {
			if id := rec.Remote["id"]; rec.Exists && id != "" {
				owner[id] = k
			}
		}
		for _, k := range slices.Sorted(maps.Keys(recs)) {
			rec := recs[k]
			if rec.Pending != "" {
				continue
			}
			key := rec.Key
			if tm.byUsername {
				key = rec.Username
			}
			probe := rec
			probe.Key = key
			got, ok := mt.Find(probe) // by key, or by the application's own id (an account a returning person took over)
			if _, stranger := w.strangers[got.Username]; ok && stranger && got.Username != "orphan-x" && rec.Exists {
				w.violate("protected account adopted", "%s: cache record %s (%s) holds the account %s, which is protected or allow-listed (invariant 9)",
					tm.name, k, rec.Username, got.Username)
			}
			if _, stranger := w.strangers[got.Username]; ok && stranger {
				continue // judged by the protected and orphan checks
			}
			if o := owner[got.Remote["id"]]; ok && !rec.Exists && o != "" && o != k {
				ok = false // the account is another record's now (the memory app keeps its first key)
			}
			both := rec.Exists && ok
			claims := func(f string) bool { return both && !rec.IsUnknown(f) } // an unknown field claims nothing
			diff := ""
			switch {
			case rec.Exists != ok && !tm.byUsername && !rec.IsUnknown(identity.FieldExists):
				diff = fmt.Sprintf("exists=%v, application: %v", rec.Exists, ok)
			case claims(identity.FieldSuspended) && rec.Suspended != got.Suspended:
				diff = fmt.Sprintf("suspended=%v, application: %v", rec.Suspended, got.Suspended)
			case claims(identity.FieldRole) && rec.Role != got.Role:
				diff = fmt.Sprintf("role=%q, application: %q", rec.Role, got.Role)
			case claims(identity.FieldGroups) && !slices.Equal(identity.SortedSet(rec.Groups), identity.SortedSet(got.Groups)):
				diff = fmt.Sprintf("groups=%v, application: %v", rec.Groups, got.Groups)
			case claims(identity.FieldExpires) && !identity.SameTime(rec.Expires, got.Expires):
				diff = fmt.Sprintf("expires=%s, application: %s", fmtTime(rec.Expires), fmtTime(got.Expires))
			}
			if p, _, pok := personOfAccount(rec); pok && w.handDirty[tm.name][p] {
				if diff == "" {
					delete(w.handDirty[tm.name], p) // the cache equals the application again
				}
				continue // changed by hand: the cache says what was confirmed before
			}
			if diff != "" {
				code := "cache claims unconfirmed"
				if tm.byUsername {
					code += " (write-only target)"
				}
				w.violate(code, "%s: cache record %s (%s) says %s", tm.name, k, rec.Username, diff)
			}
		}
	}
}

// checkAfterHealthyRun checks what a run without faults must leave: no
// leaver with access (unless the guard held the run), and an expiry timer
// armed for the next expiry, never in the past. A targeted run (focus) is
// checked for its people only, and may leave other people's expiries due,
// but never forget them (invariant 8). An account changed by hand is
// checked only after a reconcile run, the only one that reads it.
func (w *world) checkAfterHealthyRun(res *dsync.Result, focus []int, reconciled bool) {
	now := w.h.Clock.Now()
	refused := false // a source was refused, so targets were left alone
	for _, d := range w.h.DecisionsOf(res.RunID) {
		refused = refused || (d.User == "*" && d.Action == "run")
	}
	if w.ref.settled() {
		w.checkDue(now, !refused && focus == nil)
	}
	if focus != nil && !refused && w.mech.on("clock") {
		w.checkExpiredStayDue(now)
	}
	if res.Held {
		return
	}
	code := "missed leaver"
	if refused {
		code = "missed leaver while another source is refused"
	}
	people := focus
	if people == nil {
		people = w.changing()
	}
	for _, tm := range modelTargets {
		tm = w.tm(tm.name)
		accounts := w.accountsByPerson(tm)
		for _, p := range people {
			keeps := w.ref.justified(tm, p, now, func(x want) bool { return x.present && !x.suspended })
			if w.ref.dups[p] || w.ref.shared[p] || w.ref.conflicted[p] || w.ref.sharedWith[p] || (tm.byUsername && w.ref.recycled[p]) || keeps || (w.handDirty[tm.name][p] && !reconciled) {
				continue
			}
			for _, a := range accounts[p] {
				if !a.Suspended {
					code := code
					if w.ssoUser(tm.name, p) {
						code = "leaver kept access: delete refused" // invariant 12
					}
					w.violate(code, "%s: %s keeps an active account after a run without faults: %s", tm.name, username(p), w.describe(tm, p, now))
				}
			}
		}
	}
}

// changing returns the people who change: the first w.people and the
// successors.
func (w *world) changing() []int {
	var out []int
	for p := range w.total {
		if p < w.people || p >= w.total-modelSuccessors {
			out = append(out, p)
		}
	}
	return out
}

// checkExpiredStayDue checks, after a targeted run, that an expiry that has
// passed and whose account is still active keeps the timer due.
func (w *world) checkExpiredStayDue(now time.Time) {
	at, _ := w.reps[w.leader].engine.Due()
	if !at.IsZero() && !at.After(now) {
		return
	}
	for _, tm := range modelTargets {
		tm = w.tm(tm.name)
		accounts := w.accountsByPerson(tm)
		for _, p := range w.changing() {
			x := w.ref.wantNow(tm, p, now)
			if !x.present || x.expires == nil || now.Before(*x.expires) || w.ref.dups[p] || w.ref.shared[p] || w.ref.conflicted[p] || w.ref.sharedWith[p] || (tm.byUsername && w.ref.recycled[p]) || w.handDirty[tm.name][p] {
				continue
			}
			if w.ref.justified(tm, p, now, func(y want) bool { return y.present && !y.suspended }) {
				continue
			}
			// Invariant 8 is about expiries the engine knows. A targeted
			// run reads the stored snapshots, so an expiry set in a source
			// since it was last stored (a directory change not yet read)
			// is not known to the engine: judge by the versions the engine
			// may know, not by the truth. Only when every one of them
			// gives an expiry that has passed must the timer stay due.
			if w.ref.justified(tm, p, now, func(y want) bool { return !y.present || y.expires == nil || now.Before(*y.expires) }) {
				continue
			}
			for _, a := range accounts[p] {
				if !a.Suspended {
					w.violate("expiry forgotten", "%s: %s expired at %s and is still active, but after a targeted run Due() = %s (invariant 8)",
						tm.name, username(p), fmtTime(x.expires), fmtTime(&at))
					return
				}
			}
		}
	}
}

// checkDue checks the expiry timer after a run, when the engine stored the
// truth: armed no later than the next expiry, and (when the run reached
// every target) not in the past.
func (w *world) checkDue(now time.Time, reachedAll bool) {
	at, _ := w.reps[w.leader].engine.Due()
	if reachedAll && !at.IsZero() && !at.After(now) {
		w.violate("due in the past", "after a run Due() = %s, not after now %s: the timer would fire again at once", fmtTime(&at), fmtTime(&now))
	}
	var next *time.Time
	for p := range w.total {
		for _, tm := range modelTargets {
			x := w.ref.wantNow(tm, p, now)
			if x.present && !x.suspended && x.expires != nil && x.expires.After(now) && (next == nil || x.expires.Before(*next)) {
				next = x.expires
			}
		}
	}
	if next != nil && (at.IsZero() || at.After(*next)) {
		w.violate("due not armed", "after a run Due() = %s, but the next expiry is %s", fmtTime(&at), fmtTime(next))
	}
}

// accountsByPerson returns the application's accounts by person (the
// directory's second records and accounts no person has are left out).
func (w *world) accountsByPerson(tm targetModel) map[int][]identity.Account {
	list := w.targets[tm.name].All()
	out := make(map[int][]identity.Account, len(list))
	for _, a := range list {
		if p, dup, ok := personOfAccount(a); ok && !dup {
			out[p] = append(out[p], a)
		}
	}
	return out
}

// finish stops the faults, runs once healthy, approves what is held (and
// what those approvals hold), and checks every account against the model.
func (w *world) finish() {
	w.step++
	w.next = faults{}
	reconcile := w.mech.on("handedits") || w.mech.on("reconcile")
	if reconcile && w.conf.drift != "fix" {
		w.conf.drift = "fix" // the operator puts every hand edit back
		w.reconfigure()
	}
	w.activity("final run", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
		return en.Run(ctx, dsync.RunOptions{Trigger: "final", RetryQuarantined: true, AllowMassChange: w.discarded, Reconcile: reconcile})
	})
	// An approval may itself be held (an accepted source brings more than
	// the guard lets through): approve until nothing new is held.
	approved := map[string]bool{}
	for range 3 {
		for _, id := range w.heldRuns() {
			if approved[id] {
				continue
			}
			approved[id] = true
			w.approving = w.heldAllowance(id)
			w.activity("final approval", func(_ context.Context, en *dsync.Engine) (*dsync.Result, error) {
				return nil, approve(en, id)
			})
		}
	}
	now := w.h.Clock.Now()
	w.checkStrangers()
	for _, tm := range modelTargets {
		tm = w.tm(tm.name)
		accounts := w.accountsByPerson(tm)
		for p := range w.total {
			if w.ref.dups[p] || w.ref.shared[p] || w.ref.conflicted[p] || w.ref.sharedWith[p] || (tm.byUsername && w.ref.recycled[p]) {
				continue
			}
			x := w.ref.wantNow(tm, p, now)
			accts := accounts[p]
			if len(accts) > 1 {
				w.violate("final mismatch", "%s: %s has %d accounts", tm.name, username(p), len(accts))
				continue
			}
			var got *identity.Account
			if len(accts) == 1 {
				got = &accts[0]
			}
			if got == nil && w.ref.sharedWith[p] {
				continue // left out as a conflict with a newcomer sharing their email or username
			}
			if w.ssoUser(tm.name, p) && !x.present && got != nil {
				if !got.Suspended {
					w.violate("leaver kept access: delete refused", "%s: %s's account cannot be deleted and is still active (invariant 12: suspend instead); %s", tm.name, username(p), w.describe(tm, p, now))
				}
				continue
			}
			if why := mismatch(tm, x, got); why != "" {
				w.violate("final mismatch", "%s: %s %s; %s", tm.name, username(p), why, w.describe(tm, p, now))
			} else if x.present && !x.suspended && got != nil && w.ref.merged(p).mustChange && !got.MustChangePassword {
				w.violate("lost one-shot", "%s: %s must change their password but the application was never told (invariant 4)", tm.name, username(p))
			}
		}
	}
}

// checkStrangers checks app's accounts no person has at the end: the
// protected and allow-listed ones as seeded, the orphan as the last
// orphans policy leaves it after the final reconcile.
func (w *world) checkStrangers() {
	if len(w.strangers) == 0 {
		return
	}
	now := map[string]identity.Account{}
	for _, a := range w.targets["app"].All() {
		now[a.Username] = a
	}
	for _, n := range slices.Sorted(maps.Keys(w.strangers)) {
		was := w.strangers[n]
		got, ok := now[n]
		switch {
		case n == "orphan-x" && w.conf.orphans == "delete" && ok:
			w.violate("orphan kept", "app: orphan %s still exists under reconcile.orphans: delete: %s", n, accountSummary(got))
		case n == "orphan-x" && w.conf.orphans == "suspend" && ok && !got.Suspended:
			w.violate("orphan kept", "app: orphan %s still active under reconcile.orphans: suspend", n)
		case n == "orphan-x":
		case !ok:
			w.violate("protected account touched", "app: %s was deleted (invariant 9)", n)
		case got.Suspended != was.Suspended || got.Role != was.Role || !slices.Equal(got.Groups, was.Groups) || got.FamilyName != was.FamilyName:
			w.violate("protected account touched", "app: %s changed: %s, was %s (invariant 9)", n, accountSummary(got), accountSummary(was))
		}
	}
}

// mismatch says how an application account differs from the model's.
func mismatch(tm targetModel, x want, got *identity.Account) string {
	switch {
	case !x.present && got != nil && (tm.deleteGone || !got.Suspended):
		return "still has an account: " + accountSummary(*got)
	case !x.present:
		return ""
	case got == nil && x.suspended:
		return "" // never created, or deleted: no access either way
	case got == nil:
		return "has no account"
	case got.Suspended != x.suspended || got.Role != x.role || !slices.Equal(identity.SortedSet(got.Groups), x.groups) ||
		!identity.SameTime(got.Expires, x.expires):
		return "account is " + accountSummary(*got)
	}
	return ""
}
