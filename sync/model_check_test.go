package sync_test

// The checks of the model-based test: every call judged against the
// reference model when it is made, the cache against the applications after
// every activity, leavers and the expiry timer after healthy full runs, and
// every account against the model at the end.

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
	p, dup, ok := personOf(a.Username)
	if !ok || dup {
		return // the duplicate record's own account is not judged
	}
	tm := targetModelOf(tgt)
	now := w.h.Clock.Now()
	cur, _ := w.targets[tgt].Find(a)
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
		if a.Role != "admin" {
			kind = "access removal" // a retry may find the downgrade already landed
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
	if allowed {
		return
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
	if c.short {
		short = fmt.Sprintf(" (during a short read: unjustified %s of %d people in this target, past the guard's %d)", kind, len(c.budget[budget]), guardLimit)
	}
	w.violate(code, "%s: %s %s (to %s) is not what any version of the sources known to the engine says: %s%s",
		tgt, act, a.Username, accountSummary(a), w.describe(tm, p, now), short)
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
func (w *world) checkLanded(tgt string, act connector.Action, name string) {
	if act != connector.ActCreate {
		return
	}
	if n := w.accountsNamed(tgt, name); n > 1 {
		w.violate("second account", "%s: a create left %s with %d accounts", tgt, name, n)
	}
}

// accountsNamed counts the application's accounts with username u.
func (w *world) accountsNamed(tgt, u string) int {
	list := w.targets[tgt].All()
	n := 0
	for _, a := range list {
		if a.Username == u {
			n++
		}
	}
	return n
}

// checkDecided checks that every call an application applied has its
// decision in the journal (a process that died may not have told).
func (w *world) checkDecided(c *activity, ds []state.Decision) {
	told := map[string]bool{}
	for _, d := range ds {
		told[d.Target+"/"+d.User+"/"+d.Action] = true
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
		recs, err := w.mem.Accounts(context.Background(), tm.name)
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
// checked for its people only, and may leave other people's expiries due.
func (w *world) checkAfterHealthyRun(res *dsync.Result, focus []int) {
	now := w.h.Clock.Now()
	refused := false // a source was refused, so targets were left alone
	for _, d := range w.h.DecisionsOf(res.RunID) {
		refused = refused || (d.User == "*" && d.Action == "run")
	}
	if w.ref.settled() {
		w.checkDue(now, !refused && focus == nil)
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
		people = make([]int, w.people)
		for p := range people {
			people[p] = p
		}
	}
	for _, tm := range modelTargets {
		accounts := w.accountsByName(tm)
		for _, p := range people {
			keeps := w.ref.justified(tm, p, now, func(x want) bool { return x.present && !x.suspended })
			if w.ref.dups[p] || keeps {
				continue
			}
			for _, a := range accounts[username(p)] {
				if !a.Suspended {
					w.violate(code, "%s: %s keeps an active account after a run without faults: %s", tm.name, username(p), w.describe(tm, p, now))
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

// accountsByName returns the application's accounts by username.
func (w *world) accountsByName(tm targetModel) map[string][]identity.Account {
	list := w.targets[tm.name].All()
	out := make(map[string][]identity.Account, len(list))
	for _, a := range list {
		out[a.Username] = append(out[a.Username], a)
	}
	return out
}

// finish stops the faults, runs once healthy, approves what is held (and
// what those approvals hold), and checks every account against the model.
func (w *world) finish() {
	w.step++
	w.next = faults{}
	w.activity("final run", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
		return en.Run(ctx, dsync.RunOptions{Trigger: "final", RetryQuarantined: true})
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
			w.activity("final approval", func(_ context.Context, en *dsync.Engine) (*dsync.Result, error) {
				return nil, approve(en, id)
			})
		}
	}
	now := w.h.Clock.Now()
	for _, tm := range modelTargets {
		accounts := w.accountsByName(tm)
		for p := range w.total {
			if w.ref.dups[p] {
				continue
			}
			x := w.ref.wantNow(tm, p, now)
			accts := accounts[username(p)]
			if len(accts) > 1 {
				w.violate("final mismatch", "%s: %s has %d accounts", tm.name, username(p), len(accts))
				continue
			}
			var got *identity.Account
			if len(accts) == 1 {
				got = &accts[0]
			}
			if why := mismatch(tm, x, got); why != "" {
				w.violate("final mismatch", "%s: %s %s; %s", tm.name, username(p), why, w.describe(tm, p, now))
			} else if x.present && got != nil && w.ref.merged(p).mustChange && !got.MustChangePassword {
				w.violate("lost one-shot", "%s: %s must change their password but the application was never told (invariant 4)", tm.name, username(p))
			}
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
