package sync

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

// A target's history — its last-applied accounts (leavers still suspended,
// pending delete_after deletions), the rules in effect, the skips already
// logged, the last reconcile — is kept under its name. Two things keep it
// across a rename: an explicit renamed_from in the target's config, and the
// application's endpoint (a target of the same type last run against the
// same URL under a name no longer configured). A reconcile also recognises
// accounts of people who left before, from what the state still knows.

// targetsBucket registers, per target name, the application it wrote to at
// its last full run (KV, key: target name).
const targetsBucket = "targets"

type targetEntry struct {
	Type     string    `json:"type"`
	Endpoint string    `json:"endpoint,omitempty"`
	Last     time.Time `json:"last"`
}

// registerTarget records which application the target writes to.
func (rc *runCtx) registerTarget(ctx context.Context, spec TargetSpec) {
	b, _ := json.Marshal(targetEntry{Type: spec.Target.Type(), Endpoint: spec.Endpoint, Last: rc.now.UTC()})
	if _, err := rc.e.o.Store.KVPut(ctx, targetsBucket, spec.Target.Name(), b, -1); err != nil {
		rc.e.o.Logger.Warn("register the target's application", zap.String("target", spec.Target.Name()), zap.Error(err))
	}
}

// formerNames returns the names this target's history may be under: its
// renamed_from names, then unconfigured targets of the same type last run
// against the same endpoint.
func (rc *runCtx) formerNames(ctx context.Context, spec TargetSpec) []string {
	name := spec.Target.Name()
	out := slices.Clone(spec.Config.RenamedFrom)
	if spec.Endpoint == "" {
		return out
	}
	reg, err := rc.e.o.Store.KVList(ctx, targetsBucket)
	if err != nil {
		return out
	}
	for _, old := range slices.Sorted(maps.Keys(reg)) {
		var te targetEntry
		if old == name || slices.Contains(out, old) || json.Unmarshal(reg[old], &te) != nil {
			continue
		}
		if _, configured := rc.e.spec(old); !configured && te.Type == spec.Target.Type() && te.Endpoint == spec.Endpoint {
			out = append(out, old)
		}
	}
	return out
}

// historyBuckets are the per-target KV records that move with a rename.
var historyBuckets = []string{rulesBucket, notedBucket, reconcileBucket}

// carryOver gives a target with no history the history of the name it had
// before, if any: the records move to the new name (unless the run writes
// nothing) and a decision says so. It returns the accounts to plan from.
func (rc *runCtx) carryOver(ctx context.Context, spec TargetSpec, cached map[string]identity.Account) (map[string]identity.Account, error) {
	if len(cached) > 0 {
		return cached, nil
	}
	e, name := rc.e, spec.Target.Name()
	for _, old := range rc.formerNames(ctx, spec) {
		accts, err := e.o.Store.Accounts(ctx, old)
		if err != nil {
			return nil, fmt.Errorf("load the history of %s (former name of %s): %w", old, name, err)
		}
		if len(accts) == 0 {
			continue
		}
		leavers, pending := 0, 0
		for _, a := range accts {
			if a.Exists && a.Deprovisioned {
				leavers++
				if a.SuspendedAt != nil && spec.Config.Deprovision.DeleteAfter > 0 {
					pending++
				}
			}
		}
		why := "renamed_from"
		if !slices.Contains(spec.Config.RenamedFrom, old) {
			why = "the same application, " + spec.Endpoint
		}
		reason := fmt.Sprintf("target renamed from %s (%s): its history is carried over — %d account records, %d leavers still deprovisioned, %d with a pending delete_after deletion",
			old, why, len(accts), leavers, pending)
		if rc.ro.DryRun || rc.ro.NoApply {
			rc.decide(state.Decision{Target: name, User: "*", Action: "rename", Outcome: OutcomeDryRun, Reason: reason})
			return accts, nil
		}
		fence := e.o.Fence()
		// New records first, old ones after: a crash in between leaves the
		// history under both names, never under neither.
		for _, a := range accts {
			if err := e.o.Store.PutAccount(ctx, fence, name, a); err != nil {
				return nil, fmt.Errorf("carry %s's history over to %s: %w", old, name, err)
			}
		}
		for _, b := range historyBuckets {
			if v, _, err := e.o.Store.KVGet(ctx, b, old); err == nil {
				if _, err := e.o.Store.KVPut(ctx, b, name, v, -1); err == nil {
					_ = e.o.Store.KVDelete(ctx, b, old, -1)
				}
			}
		}
		for k := range accts {
			if err := e.o.Store.DeleteAccount(ctx, fence, old, k); err != nil {
				e.o.Logger.Warn("forget the history under the former name", zap.String("target", old), zap.Error(err))
				break
			}
		}
		_ = e.o.Store.KVDelete(ctx, targetsBucket, old, -1)
		rc.renameHeld(ctx, old, name)
		rc.decide(state.Decision{Target: name, User: "*", Action: "rename", Outcome: OutcomeApplied, Reason: reason})
		return accts, nil
	}
	return cached, nil
}

// formerIndex tells an account of a person who left apart from an orphan
// that no source ever knew: the person ids of the link table, and the
// accounts the journal shows dirsync managed (in any target, under any
// name).
type formerIndex struct {
	persons map[string]bool
	users   map[string]bool
	// current are the usernames and emails of people a source carries now:
	// their accounts are adopted, never taken for a former person's.
	current map[string]bool
}

// managedActions are the decisions that show dirsync managed an account.
var managedActions = []string{"create", "update", "suspend", "unsuspend", "set_role", "set_groups", "set_expiry", "force_password_change", "drift"}

// former builds the index: people of the link table that no source of
// this run carries any more, and accounts the journal shows dirsync managed.
func (rc *runCtx) former(ctx context.Context) formerIndex {
	rc.mu.Lock()
	links, linked, done := rc.links, rc.linked, rc.formerIdx
	rc.mu.Unlock()
	if done != nil {
		return *done
	}
	f := formerIndex{persons: map[string]bool{}, users: map[string]bool{}, current: map[string]bool{}}
	defer func() {
		rc.mu.Lock()
		rc.formerIdx = &f
		rc.mu.Unlock()
	}()
	current := make(map[string]bool, len(linked.Users))
	for _, u := range linked.Users {
		current[u.Key] = true
		for _, v := range []string{u.Username, u.Email} {
			if v != "" {
				f.current[strings.ToLower(v)] = true
			}
		}
	}
	for _, pid := range links {
		if !current[pid] {
			f.persons[pid] = true
		}
	}
	ds, err := rc.e.o.Store.Decisions(ctx, state.DecisionQuery{})
	if err != nil {
		return f
	}
	for _, d := range ds {
		if d.Outcome == OutcomeApplied && d.User != "*" && d.User != "" && slices.Contains(managedActions, d.Action) && !strings.HasPrefix(d.Reason, "orphan:") {
			f.users[strings.ToLower(d.User)] = true
		}
	}
	return f
}

// of returns the cache key for a live account of a former person and how
// it was recognised, or "" when it is an orphan.
func (f formerIndex) of(a identity.Account) (key, how string) {
	if f.current[strings.ToLower(a.Username)] || (a.Email != "" && f.current[strings.ToLower(a.Email)]) {
		return "", ""
	}
	if a.Key != "" && f.persons[a.Key] {
		return a.Key, "the link table knows the application's id for it (" + a.Key + ") as a person no source carries any more"
	}
	for _, v := range []string{a.Username, a.Email} {
		if v != "" && f.users[strings.ToLower(v)] {
			k := a.Key
			if k == "" {
				k = "former:" + strings.ToLower(v)
			}
			return k, "the decision journal shows dirsync managed " + v
		}
	}
	return "", ""
}

// renameHeld moves the held plans of a target's former name to its new
// name, so they can still be approved.
func (rc *runCtx) renameHeld(ctx context.Context, old, name string) {
	hps, err := rc.e.HeldPlans(ctx)
	if err != nil {
		return
	}
	for _, hp := range hps {
		if hp.Target != old {
			continue
		}
		hp.Target = name
		for i := range hp.Plans {
			hp.Plans[i].Target = name
			for j := range hp.Plans[i].Steps {
				hp.Plans[i].Steps[j].Target = name
			}
		}
		b, _ := json.Marshal(hp)
		if err := rc.e.o.Store.PutHeld(ctx, rc.e.o.Fence(), hp.ID, b); err != nil {
			rc.e.o.Logger.Warn("move a held plan to the target's new name", zap.String("held", hp.ID), zap.Error(err))
		}
	}
}

// formerAccounts records, in cached (and seen), the live accounts no cache
// record matched that belong to former people, with a decision each: the
// plan deprovisions them as leavers. It returns the accounts left, for
// adoption or the orphan policy. An account whose username or email a
// current person has is left to adoption.
func (rc *runCtx) formerAccounts(ctx context.Context, name string, unmatched []identity.Account, cached map[string]identity.Account, seen map[string]bool) ([]identity.Account, error) {
	if len(unmatched) == 0 {
		return unmatched, nil
	}
	f := rc.former(ctx)
	var rest []identity.Account
	for _, a := range unmatched {
		k, how := f.of(a)
		if c, ok := cached[k]; k == "" || (ok && c.Exists) || seen[k] {
			rest = append(rest, a)
			continue
		}
		a.Key, a.Exists, a.Failing = k, true, cached[k].Failing
		cached[k], seen[k] = a, true
		rc.decide(state.Decision{Target: name, User: displayUser(a), Action: "drift", Outcome: rc.fixOutcome(),
			Reason: "found in the application: the account of a former person (" + how + "): deprovisioned as a leaver by the plan below"})
		if rc.writes() {
			if err := rc.e.o.Store.PutAccount(ctx, rc.e.o.Fence(), name, a); err != nil {
				return nil, fmt.Errorf("reconcile: record former person %q: %w", a.Username, err)
			}
		}
	}
	return rest, nil
}
