package main

// The console's adapter to the engine: the only file that knows both
// console.Backend and the engine's API (HeldPlans, Recheck, the re-validated
// Approve with its approver, Discard, Explain).

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/console"
	"github.com/dirsync/dirsync/monitor"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
)

// consoleAPI implements console.Backend on the app's engine and store.
type consoleAPI struct {
	a *app
	// leader describes this replica's role; leading says whether it may
	// apply (approve, discard).
	leader  func() string
	leading func() bool
	// handOver, when set, passes an approval's (or discard's) other
	// targets to their holders (state.leases: per_target).
	handOver func(context.Context, request)
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

// heldOfRun returns a run's held plans (one per target, or its refused
// sources). id is a run id, or a stored "RUN/TARGET" key.
func (c *consoleAPI) heldOfRun(ctx context.Context, id string) ([]dsync.HeldPlan, error) {
	all, err := c.a.engine.HeldPlans(ctx)
	if err != nil {
		return nil, err
	}
	var out []dsync.HeldPlan
	for _, hp := range all {
		if hp.RunID == id || hp.ID == id {
			out = append(out, hp)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no held plan for run %s (approved or discarded already?)", id)
	}
	return out, nil
}

// heldView merges one run's held plans into the console's view; wanted,
// when set, marks the steps a plan made now still wants.
func heldView(hps []dsync.HeldPlan, wanted map[string]bool) console.Held {
	h := console.Held{RunID: hps[0].RunID, Created: hps[0].Created, Rechecked: wanted != nil}
	var reasons []string
	for _, hp := range hps {
		if hp.Created.Before(h.Created) {
			h.Created = hp.Created
		}
		if hp.Reason != "" && !slices.Contains(reasons, hp.Reason) {
			reasons = append(reasons, hp.Reason)
		}
		for src, why := range hp.Sources {
			h.Targets = append(h.Targets, "source "+src)
			reasons = append(reasons, why)
		}
		for _, p := range hp.Plans {
			h.Targets = append(h.Targets, p.Target)
			for _, s := range p.Steps {
				h.Steps = append(h.Steps, console.Step{Target: p.Target, User: s.User, Action: string(s.Action), Reason: s.Reason,
					Wanted: wanted[p.Target+"\x00"+s.Key+"/"+string(s.Action)]})
			}
		}
	}
	h.Reason = strings.Join(reasons, "; ")
	return h
}

// byRun groups held plans by run, newest run first.
func byRun(all []dsync.HeldPlan) [][]dsync.HeldPlan {
	idx := map[string]int{}
	var out [][]dsync.HeldPlan
	for _, hp := range all {
		i, ok := idx[hp.RunID]
		if !ok {
			i = len(out)
			idx[hp.RunID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], hp)
	}
	slices.SortFunc(out, func(a, b []dsync.HeldPlan) int { return strings.Compare(b[0].RunID, a[0].RunID) })
	return out
}

func (c *consoleAPI) HeldPlans(ctx context.Context) ([]console.Held, error) {
	all, err := c.a.engine.HeldPlans(ctx)
	if err != nil {
		return nil, err
	}
	var out []console.Held
	for _, hps := range byRun(all) {
		out = append(out, heldView(hps, nil))
	}
	return out, nil
}

// heldInfos is what the monitor needs of the held plans.
func (c *consoleAPI) heldInfos(ctx context.Context) ([]monitor.HeldInfo, error) {
	all, err := c.a.engine.HeldPlans(ctx)
	if err != nil {
		return nil, err
	}
	var out []monitor.HeldInfo
	for _, hps := range byRun(all) {
		h := heldView(hps, nil)
		out = append(out, monitor.HeldInfo{RunID: h.RunID, Created: h.Created, Targets: h.Targets})
	}
	return out, nil
}

func (c *consoleAPI) Recheck(ctx context.Context, runID string) (console.Held, error) {
	hps, err := c.heldOfRun(ctx, runID)
	if err != nil {
		return console.Held{}, err
	}
	checks, err := c.a.engine.Recheck(ctx, runID)
	if err != nil {
		return console.Held{}, err
	}
	wanted := map[string]bool{}
	for _, hc := range checks {
		for _, p := range hc.Held.Plans {
			for k, w := range hc.Wanted {
				wanted[p.Target+"\x00"+k] = w
			}
		}
	}
	return heldView(hps, wanted), nil
}

// Approve releases a held run through the engine, which re-plans now and
// applies only the held steps still wanted; its decisions name by.
func (c *consoleAPI) Approve(ctx context.Context, runID string, only []string, by string) (console.ApproveResult, error) {
	if c.leading != nil && !c.leading() {
		return console.ApproveResult{}, fmt.Errorf("this replica is not the leader (%s): approve on the leader", c.leader())
	}
	var acts []connector.Action
	for _, o := range only {
		acts = append(acts, connector.Action(o))
	}
	if c.handOver != nil {
		c.handOver(ctx, request{Op: "approve", RunID: runID, Only: acts, By: by})
	}
	res, err := c.a.engine.Approve(ctx, dsync.ApproveRequest{RunID: runID, Only: acts, By: by})
	if err != nil {
		return console.ApproveResult{}, err
	}
	return console.ApproveResult{RunID: res.RunID, Status: res.Status, Counts: res.Counts}, nil
}

// Discard drops a held run; a decision names by.
func (c *consoleAPI) Discard(ctx context.Context, runID, by string) error {
	if c.leading != nil && !c.leading() {
		return fmt.Errorf("this replica is not the leader (%s): discard on the leader", c.leader())
	}
	if c.handOver != nil {
		c.handOver(ctx, request{Op: "discard", RunID: runID, By: by})
	}
	return c.a.engine.Discard(ctx, runID, by)
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
	held, err := c.heldInfos(ctx)
	if err != nil {
		return console.Overview{}, err
	}
	return overviewOf(c.a.mon, c.a.cfg, c.leader(), held), nil
}
