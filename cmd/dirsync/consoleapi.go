package main

// The console's adapter to the engine: the only file that knows both
// console.Backend and the engine's API. It is kept thin so that switching
// to the engine's re-validated approve (ApproveRequest{RunID, Only, By},
// Recheck, Discard, HeldPlans) changes this file alone.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/console"
	"github.com/dirsync/dirsync/monitor"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/target"
)

// consoleAPI implements console.Backend on the app's engine and store.
type consoleAPI struct {
	a *app
	// leader describes this replica's role; leading says whether it may
	// apply (approve, discard).
	leader  func() string
	leading func() bool
}

var _ console.Backend = (*consoleAPI)(nil)

func (c *consoleAPI) Runs(ctx context.Context, limit int) ([]state.Run, error) {
	return c.a.store.Runs(ctx, limit)
}

func (c *consoleAPI) Run(ctx context.Context, id string) (state.Run, error) {
	return c.a.store.GetRun(ctx, id)
}

func (c *consoleAPI) Decisions(ctx context.Context, q state.DecisionQuery) ([]state.Decision, error) {
	return c.a.store.Decisions(ctx, q)
}

func (c *consoleAPI) heldPlan(ctx context.Context, runID string) (dsync.HeldPlan, error) {
	var hp dsync.HeldPlan
	raw, err := c.a.store.GetHeld(ctx, runID)
	if errors.Is(err, state.ErrNotFound) {
		return hp, fmt.Errorf("no held plan for run %s (approved or discarded already?)", runID)
	}
	if err != nil {
		return hp, err
	}
	if err := json.Unmarshal(raw, &hp); err != nil {
		return hp, fmt.Errorf("held plan %s: %w", runID, err)
	}
	return hp, nil
}

func heldView(hp dsync.HeldPlan) console.Held {
	h := console.Held{RunID: hp.RunID, Reason: hp.Reason, Created: hp.Created}
	for _, p := range hp.Plans {
		h.Targets = append(h.Targets, p.Target)
		for _, s := range p.Steps {
			h.Steps = append(h.Steps, console.Step{Target: s.Target, User: s.User, Action: string(s.Action), Reason: s.Reason})
		}
	}
	return h
}

// heldInfo is what the monitor needs of a held plan.
func (c *consoleAPI) heldInfo(ctx context.Context, runID string) (monitor.HeldInfo, error) {
	hp, err := c.heldPlan(ctx, runID)
	if err != nil {
		return monitor.HeldInfo{}, err
	}
	h := heldView(hp)
	return monitor.HeldInfo{RunID: runID, Created: hp.Created, Targets: h.Targets}, nil
}

func (c *consoleAPI) HeldPlans(ctx context.Context) ([]console.Held, error) {
	ids, err := c.a.store.HeldRuns(ctx)
	if err != nil {
		return nil, err
	}
	var out []console.Held
	for _, id := range ids {
		hp, err := c.heldPlan(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, heldView(hp))
	}
	slices.SortFunc(out, func(a, b console.Held) int { return b.Created.Compare(a.Created) })
	return out, nil
}

type stepKey struct{ target, key, action string }

// wantedNow plans (nothing applied or recorded) the held plan's targets from
// the current sources and cache and returns the steps that plan wants.
// Engine API to switch to: Engine.Recheck(ctx, runID).
func (c *consoleAPI) wantedNow(ctx context.Context, hp dsync.HeldPlan) (map[stepKey]bool, error) {
	var targets []string
	for _, p := range hp.Plans {
		targets = append(targets, p.Target)
	}
	pf, err := c.a.engine.MakePlanFile(ctx, dsync.RunOptions{Targets: targets, Trigger: "recheck:" + hp.RunID})
	if err != nil {
		return nil, fmt.Errorf("re-check %s: %w", hp.RunID, err)
	}
	want := map[stepKey]bool{}
	for _, p := range pf.Plans {
		for _, s := range p.Steps {
			want[stepKey{p.Target, s.Key, string(s.Action)}] = true
		}
	}
	return want, nil
}

func (c *consoleAPI) Recheck(ctx context.Context, runID string) (console.Held, error) {
	hp, err := c.heldPlan(ctx, runID)
	if err != nil {
		return console.Held{}, err
	}
	want, err := c.wantedNow(ctx, hp)
	if err != nil {
		return console.Held{}, err
	}
	h := heldView(hp)
	h.Rechecked = true
	i := 0
	for _, p := range hp.Plans {
		for _, s := range p.Steps {
			h.Steps[i].Wanted = want[stepKey{p.Target, s.Key, string(s.Action)}]
			i++
		}
	}
	return h, nil
}

// Approve re-checks the held plan, drops the selected steps a fresh plan no
// longer wants (each a skipped decision), then releases the rest through the
// engine, and records who approved it. Engine API to switch to:
// Engine.Approve(ctx, sync.ApproveRequest{RunID, Only, By}), which does the
// re-check itself, atomically with the apply.
func (c *consoleAPI) Approve(ctx context.Context, runID string, only []string, by string) (console.ApproveResult, error) {
	if !c.leading() {
		return console.ApproveResult{}, fmt.Errorf("this replica is not the leader (%s): approve on the leader", c.leader())
	}
	var acts []target.Action
	for _, o := range only {
		acts = append(acts, target.Action(o))
	}
	hp, err := c.heldPlan(ctx, runID)
	if err != nil {
		return console.ApproveResult{}, err
	}
	want, err := c.wantedNow(ctx, hp)
	if err != nil {
		return console.ApproveResult{}, err
	}
	var dropped []dsync.Step
	for i, p := range hp.Plans {
		var keep []dsync.Step
		for _, s := range p.Steps {
			selected := len(acts) == 0 || slices.Contains(acts, s.Action)
			if selected && !want[stepKey{p.Target, s.Key, string(s.Action)}] {
				dropped = append(dropped, s)
				continue
			}
			keep = append(keep, s)
		}
		hp.Plans[i].Steps = keep
	}
	if len(dropped) > 0 {
		b, _ := json.Marshal(hp)
		if err := c.a.store.PutHeld(ctx, c.a.fence(), runID, b); err != nil {
			return console.ApproveResult{}, fmt.Errorf("approve %s: %w", runID, err)
		}
	}
	trigger := "approve:" + runID
	for _, s := range dropped {
		c.a.rec.Record(state.Decision{RunID: runID, Trigger: trigger, Target: s.Target, User: s.User, Action: string(s.Action), Outcome: dsync.OutcomeSkipped,
			Reason: s.Reason + "; not applied on approval by " + by + ": a plan made now no longer wants it"})
	}
	res, err := c.a.engine.Approve(ctx, runID, acts)
	if err != nil {
		return console.ApproveResult{}, err
	}
	what := "all held steps"
	if len(only) > 0 {
		what = "held " + strings.Join(only, ", ") + " steps"
	}
	c.a.rec.Record(state.Decision{RunID: res.RunID, Trigger: trigger, Target: "*", User: "*", Action: "approve", Outcome: dsync.OutcomeApplied,
		Reason: fmt.Sprintf("%s of run %s approved by %s in the console (%d no longer wanted, skipped)", what, runID, by, len(dropped))})
	_ = c.a.rec.Flush(ctx)
	return console.ApproveResult{RunID: res.RunID, Status: res.Status, Counts: res.Counts}, nil
}

// Discard drops a held plan. Engine API to switch to: Engine.Discard(ctx, runID, by).
func (c *consoleAPI) Discard(ctx context.Context, runID, by string) error {
	if !c.leading() {
		return fmt.Errorf("this replica is not the leader (%s): discard on the leader", c.leader())
	}
	if _, err := c.heldPlan(ctx, runID); err != nil {
		return err
	}
	if err := c.a.store.DeleteHeld(ctx, c.a.fence(), runID); err != nil {
		return fmt.Errorf("discard %s: %w", runID, err)
	}
	c.a.rec.Record(state.Decision{RunID: runID, Trigger: "discard:" + runID, Target: "*", User: "*", Action: "discard", Outcome: dsync.OutcomeSkipped,
		Reason: fmt.Sprintf("held plan of run %s discarded by %s in the console", runID, by)})
	return c.a.rec.Flush(ctx)
}

func (c *consoleAPI) Explain(ctx context.Context, who string) ([]console.Explanation, error) {
	xs, err := c.a.engine.Explain(ctx, who, dsync.RunOptions{UseStored: true, Trigger: "explain"})
	if err != nil {
		return nil, err
	}
	steps := func(ss []dsync.Step) []console.Step {
		var out []console.Step
		for _, s := range ss {
			out = append(out, console.Step{Target: s.Target, User: s.User, Action: string(s.Action), Reason: s.Reason, Wanted: true})
		}
		return out
	}
	var out []console.Explanation
	for _, x := range xs {
		out = append(out, console.Explanation{Target: x.Target, User: x.User, InScope: x.InScope, Why: x.Why, RoleWhy: x.RoleWhy,
			Desired: x.Desired, Cached: x.Cached, Steps: steps(x.Steps), Skips: steps(x.Skips)})
	}
	slices.SortFunc(out, func(a, b console.Explanation) int { return strings.Compare(a.Target, b.Target) })
	return out, nil
}

func (c *consoleAPI) Overview(ctx context.Context) (console.Overview, error) {
	ids, err := c.a.store.HeldRuns(ctx)
	if err != nil {
		return console.Overview{}, err
	}
	var held []monitor.HeldInfo
	for _, id := range ids {
		if h, err := c.heldInfo(ctx, id); err == nil {
			held = append(held, h)
		}
	}
	return overviewOf(c.a.mon, c.a.cfg, c.leader(), held), nil
}
