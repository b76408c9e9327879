package sync

// Stage "guard": a plan's skips are logged (once each), and its mass
// changes are held for `dirsync approve` past the configured thresholds. An
// approval or a plan file instead releases only its own steps that the
// fresh plan still wants (invariant 6).

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

// guard fills f.apply (and f.memo) and stores what it holds.
func (rc *runCtx) guard(ctx context.Context, f *flow) error {
	e := rc.e
	if ap := rc.ro.approval; ap != nil {
		f.apply = rc.released(f)
		if ap.guard && !rc.ro.AllowMassChange {
			var held []Step
			var why string
			f.apply, held, why = Guarded(Plan{Target: f.name, Steps: f.apply, Accounts: f.plan.Accounts}, e.o.Limits)
			if len(held) > 0 && !rc.ro.DryRun {
				e.hold(ctx, rc, f.name, f.plan.Accounts, held, why)
				f.held = true
			}
		}
		return nil
	}
	var noted map[string]string
	if !rc.ro.DryRun {
		noted = e.loadNoted(ctx, f.name)
	}
	f.memo = rc.memoFor(f.name, noted)
	rc.decideSkips(f.name, f.plan.Skips, f.memo)
	if rc.ro.DryRun {
		f.apply = f.plan.Steps // a dry run holds nothing: it shows every step
		return nil
	}
	apply, held, why := Guarded(f.plan, e.o.Limits)
	if rc.ro.AllowMassChange && len(held) > 0 {
		apply, held = f.plan.Steps, nil
	}
	heldID := ""
	if len(held) > 0 {
		heldID = e.hold(ctx, rc, f.name, f.plan.Accounts, held, why)
		f.held = true
	}
	if rc.ro.Keys == nil {
		// This run planned everyone for the target: stored plans it no
		// longer wants any step of resolve themselves.
		e.settleHeld(ctx, rc, f.name, f.plan.Steps, held, heldID)
	}
	f.apply = apply
	return nil
}

// released returns the steps an approval or plan file released that the
// fresh plan still wants (each as planned now); released steps it no
// longer wants become skipped decisions.
func (rc *runCtx) released(f *flow) []Step {
	name := f.name
	ap := rc.ro.approval
	want := ap.steps[name]
	var apply []Step
	seen := map[string]bool{}
	for _, s := range f.plan.Steps {
		id := stepID(s.Key, s.Action)
		if _, ok := want[id]; ok {
			apply = append(apply, s)
			seen[id] = true
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if seen[id] {
			continue
		}
		s := want[id]
		rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Outcome: OutcomeSkipped,
			Reason: s.Reason + "; not applied: no longer wanted when re-checked now (the sources or the account changed since " + ap.from + ")"})
	}
	ap.mu.Lock()
	ap.seen[name] = seen // evaluated: its released steps are done with
	ap.mu.Unlock()
	return apply
}

// hold stores the held steps of one target under "RUN/TARGET" and makes a
// held decision for each. When the newest held plan of this target holds
// exactly the same steps, no new one is stored: the decisions point at it.
func (e *Engine) hold(ctx context.Context, rc *runCtx, name string, accounts int, held []Step, why string) string {
	rc.mu.Lock()
	rc.res.Held = true
	rc.mu.Unlock()
	if e.discarded(ctx, name, held) {
		// An operator discarded a plan holding these very steps, and the
		// sources still say the same: the steps stay withheld and the plan
		// discarded (no new plan, no new decisions) until they change, or
		// a run with --allow-mass-change releases them.
		return ""
	}
	id := rc.res.RunID + "/" + name
	if prev := e.sameHeld(ctx, name, held); prev != "" {
		// Still held by the stored plan, whose held decisions were recorded
		// when it was made: one held decision per step per plan, however
		// many runs it waits through.
		return prev
	}
	hp := HeldPlan{RunID: rc.res.RunID, Target: name, Reason: why, Plans: []Plan{{Target: name, Steps: held, Accounts: accounts}},
		Created: e.o.Now().UTC(), Reconcile: rc.ro.Reconcile}
	b, _ := json.Marshal(hp)
	if err := e.o.Store.PutHeld(ctx, e.targetFence(name), id, b); err != nil {
		for _, s := range held {
			rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Outcome: OutcomeHeld,
				Reason: fmt.Sprintf("%s; held by the safety guard (%s)", s.Reason, why), Error: "storing the held plan failed: " + err.Error()})
		}
		return ""
	}
	if e.o.Metrics != nil {
		e.o.Metrics.HeldRuns.Inc()
	}
	e.forgetDiscarded(ctx, name)
	run := heldRunOf(id)
	for _, s := range held {
		rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Outcome: OutcomeHeld,
			Reason: fmt.Sprintf("%s; held by the safety guard (%s): run `dirsync approve %s`", s.Reason, why, run)})
	}
	return id
}

// storedHeld returns the stored held plans of a target (not the refused
// sources' ones), newest first, with their step ids.
func (e *Engine) storedHeld(ctx context.Context, name string) ([]HeldPlan, []map[string]bool) {
	ids, err := e.o.Store.HeldRuns(ctx)
	if err != nil {
		return nil, nil
	}
	slices.Sort(ids)
	var hps []HeldPlan
	var steps []map[string]bool
	for _, id := range slices.Backward(ids) {
		hp, err := e.loadHeld(ctx, id)
		if err != nil || hp.Target != name || len(hp.Sources) > 0 {
			continue
		}
		got := map[string]bool{}
		for _, p := range hp.Plans {
			for _, s := range p.Steps {
				got[stepID(s.Key, s.Action)] = true
			}
		}
		hps, steps = append(hps, hp), append(steps, got)
	}
	return hps, steps
}

// sameHeld returns the id of the newest stored held plan of this target
// that holds every one of these steps (the run's held steps are the same,
// or fewer: some came back), or "".
func (e *Engine) sameHeld(ctx context.Context, name string, held []Step) string {
	hps, steps := e.storedHeld(ctx, name)
	for i, hp := range hps {
		all := true
		for _, s := range held {
			if !steps[i][stepID(s.Key, s.Action)] {
				all = false
				break
			}
		}
		if all {
			return hp.ID
		}
	}
	return ""
}

// settleHeld, after a run that planned every person of a target, drops the
// stored held plans of that target the run no longer wants any step of
// (resolved: the people came back, or the change was made another way)
// and those a newer plan of this run holds every step of (superseded),
// each with a decision; from the others it drops the steps it no longer
// wants. It also forgets a discarded plan once nothing is held: the
// sources changed.
func (e *Engine) settleHeld(ctx context.Context, rc *runCtx, name string, planned, held []Step, heldID string) {
	if len(held) == 0 {
		e.forgetDiscarded(ctx, name)
	}
	hps, steps := e.storedHeld(ctx, name)
	if len(hps) == 0 {
		return
	}
	want := map[string]bool{}
	for _, s := range planned {
		want[stepID(s.Key, s.Action)] = true
	}
	holdsNow := map[string]bool{}
	if heldID != "" {
		for _, s := range held {
			holdsNow[stepID(s.Key, s.Action)] = true
		}
	}
	for i, hp := range hps {
		if hp.ID == heldID {
			continue
		}
		wanted, covered := 0, true
		for id := range steps[i] {
			if want[id] {
				wanted++
			}
			if !holdsNow[id] {
				covered = false
			}
		}
		var why string
		switch {
		case wanted == 0:
			why = fmt.Sprintf("held plan of run %s resolved itself: a plan made now wants none of its %d step(s) any more (the people came back, or the change was made another way)", hp.RunID, len(steps[i]))
		case heldID != "" && covered:
			why = fmt.Sprintf("held plan of run %s superseded: the plan held in this run (%s) holds all of its %d step(s)", hp.RunID, heldRunOf(heldID), len(steps[i]))
		case wanted < len(steps[i]) && (!hp.Reconcile || rc.ro.Reconcile):
			// Some of its steps are no longer wanted by a plan of
			// everyone: they resolved themselves and leave the plan, so
			// that a later approval cannot release them on a read that
			// happens to want them again (a short read: invariants 1 and
			// 6). A reconcile hold keeps its steps but for a reconcile
			// run: only a read of the application can tell its drift fixes
			// are no longer wanted (invariant 10).
			e.pruneHeld(ctx, rc, name, hp, want)
			continue
		default:
			continue
		}
		if err := e.o.Store.DeleteHeld(ctx, e.heldFence(hp), hp.ID); err != nil {
			e.o.Logger.Warn("drop a settled held plan", zap.String("held", hp.ID), zap.Error(err))
			continue
		}
		rc.decide(state.Decision{Target: name, User: "*", Action: "held_plan", Outcome: OutcomeSkipped, Reason: why})
	}
}

// pruneHeld drops from a stored held plan the steps a run that planned
// every person of the target no longer wants (want), with a decision; the
// steps it still wants stay held.
func (e *Engine) pruneHeld(ctx context.Context, rc *runCtx, name string, hp HeldPlan, want map[string]bool) {
	var keep []Plan
	var gone []string
	for _, p := range hp.Plans {
		var rest []Step
		for _, s := range p.Steps {
			if want[stepID(s.Key, s.Action)] {
				rest = append(rest, s)
			} else {
				gone = append(gone, s.User+" "+string(s.Action))
			}
		}
		if len(rest) > 0 {
			p.Steps = rest
			keep = append(keep, p)
		}
	}
	hp.Plans = keep
	b, _ := json.Marshal(hp)
	if err := e.o.Store.PutHeld(ctx, e.heldFence(hp), hp.ID, b); err != nil {
		e.o.Logger.Warn("prune a held plan", zap.String("held", hp.ID), zap.Error(err))
		return
	}
	slices.Sort(gone)
	rc.decide(state.Decision{Target: name, User: "*", Action: "held_plan", Outcome: OutcomeSkipped,
		Reason: fmt.Sprintf("held plan of run %s: %d of its steps resolved themselves: a plan made now no longer wants them (%s); the rest stay held", hp.RunID, len(gone), strings.Join(gone, ", "))})
}

// discardedBucket keeps, per target, the step ids of the held plans an
// operator discarded: the same steps are not held again (nor announced)
// until the sources change.
const discardedBucket = "discarded_held"

func (e *Engine) discarded(ctx context.Context, name string, held []Step) bool {
	raw, _, err := e.o.Store.KVGet(ctx, discardedBucket, name)
	if err != nil {
		return false
	}
	var ids map[string]bool
	if json.Unmarshal(raw, &ids) != nil {
		return false
	}
	for _, s := range held {
		if !ids[stepID(s.Key, s.Action)] {
			return false
		}
	}
	return true
}

func (e *Engine) forgetDiscarded(ctx context.Context, name string) {
	if err := e.o.Store.KVDelete(ctx, discardedBucket, name, -1); err != nil {
		e.o.Logger.Warn("forget a discarded plan", zap.String("target", name), zap.Error(err))
	}
}

// rememberDiscarded adds a discarded plan's steps to its target's record.
func (e *Engine) rememberDiscarded(ctx context.Context, name string, steps []Step) error {
	ids := map[string]bool{}
	if raw, _, err := e.o.Store.KVGet(ctx, discardedBucket, name); err == nil {
		_ = json.Unmarshal(raw, &ids)
	}
	for _, s := range steps {
		ids[stepID(s.Key, s.Action)] = true
	}
	b, _ := json.Marshal(ids)
	_, err := e.o.Store.KVPut(ctx, discardedBucket, name, b, -1)
	return err
}

// Guarded splits a plan's steps into those to apply and those held by the
// safety guard, with the reason; held is empty when within limits. Per
// target, suspensions, deletions and access removals (a group removed, a
// role lowered, an end date set or brought forward) are each held when
// they exceed their absolute limit or their share of the target's
// accounts; a single one is never held by the percentage alone (on a small target one leaver is a large share, not a
// mass change). Only the kinds over their limit are held.
func Guarded(p Plan, l config.Limits) (apply, held []Step, why string) {
	kind := func(s Step) string {
		switch {
		case s.Action == connector.ActSuspend:
			return "suspensions"
		case s.Action == connector.ActDelete:
			return "deletions"
		case s.Removal && (s.Action == connector.ActSetGroups || s.Action == connector.ActSetRole || s.Action == connector.ActSetExpiry):
			// An end date set or brought forward, past or future, takes
			// access away too (Ezeelogin and ezeep enforce it themselves).
			return "access removals"
		}
		return ""
	}
	count := map[string]int{}
	for _, s := range p.Steps {
		if k := kind(s); k != "" {
			count[k]++
		}
	}
	n := float64(max(p.Accounts, 1))
	over := func(count, abs int, pct float64, what string) string {
		switch {
		case count == 0:
			return ""
		case abs > 0 && count > abs:
			return fmt.Sprintf("%d %s > max %d", count, what, abs)
		case pct > 0 && count > 1 && float64(count)*100/n > pct:
			return fmt.Sprintf("%d %s = %.1f%% of %d accounts > max %.1f%%", count, what, float64(count)*100/n, p.Accounts, pct)
		}
		return ""
	}
	var reasons []string
	hold := map[string]bool{}
	for _, k := range []struct {
		what string
		abs  int
		pct  float64
	}{
		{"suspensions", l.MaxSuspend, l.MaxSuspendPercent},
		{"deletions", l.MaxDelete, l.MaxDeletePercent},
		{"access removals", l.MaxAccessRemoval, l.MaxAccessRemovalPercent},
	} {
		if r := over(count[k.what], k.abs, k.pct, k.what); r != "" {
			reasons = append(reasons, r)
			hold[k.what] = true
		}
	}
	if len(reasons) == 0 {
		return p.Steps, nil, ""
	}
	for _, s := range p.Steps {
		if hold[kind(s)] {
			held = append(held, s)
		} else {
			apply = append(apply, s)
		}
	}
	return apply, held, strings.Join(reasons, "; ")
}
