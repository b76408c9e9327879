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
	if len(held) > 0 {
		e.hold(ctx, rc, f.name, f.plan.Accounts, held, why)
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
func (e *Engine) hold(ctx context.Context, rc *runCtx, name string, accounts int, held []Step, why string) {
	rc.mu.Lock()
	rc.res.Held = true
	rc.mu.Unlock()
	id := rc.res.RunID + "/" + name
	if prev := e.sameHeld(ctx, name, held); prev != "" {
		id = prev
	} else {
		hp := HeldPlan{RunID: rc.res.RunID, Target: name, Reason: why, Plans: []Plan{{Target: name, Steps: held, Accounts: accounts}}, Created: e.o.Now().UTC()}
		b, _ := json.Marshal(hp)
		if err := e.o.Store.PutHeld(ctx, e.o.Fence(), id, b); err != nil {
			for _, s := range held {
				rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Outcome: OutcomeHeld,
					Reason: fmt.Sprintf("%s; held by the safety guard (%s)", s.Reason, why), Error: "storing the held plan failed: " + err.Error()})
			}
			return
		}
		if e.o.Metrics != nil {
			e.o.Metrics.HeldRuns.Inc()
		}
	}
	run := heldRunOf(id)
	for _, s := range held {
		rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Outcome: OutcomeHeld,
			Reason: fmt.Sprintf("%s; held by the safety guard (%s): run `dirsync approve %s`", s.Reason, why, run)})
	}
}

// sameHeld returns the id of a stored held plan of this target holding
// exactly these steps, or "".
func (e *Engine) sameHeld(ctx context.Context, name string, held []Step) string {
	ids, err := e.o.Store.HeldRuns(ctx)
	if err != nil {
		return ""
	}
	want := map[string]bool{}
	for _, s := range held {
		want[stepID(s.Key, s.Action)] = true
	}
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
		if maps.Equal(got, want) {
			return id
		}
	}
	return ""
}

// Guarded splits a plan's steps into those to apply and those held by the
// safety guard, with the reason; held is empty when within limits. Per
// target, suspensions, deletions and access removals (a group removed, a
// role lowered) are each held when they exceed their absolute limit or
// their share of the target's accounts; a single one is never held by the
// percentage alone (on a small target one leaver is a large share, not a
// mass change). Only the kinds over their limit are held.
func Guarded(p Plan, l config.Limits) (apply, held []Step, why string) {
	kind := func(s Step) string {
		switch {
		case s.Action == connector.ActSuspend:
			return "suspensions"
		case s.Action == connector.ActDelete:
			return "deletions"
		case s.Removal && (s.Action == connector.ActSetGroups || s.Action == connector.ActSetRole):
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
