package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/target"
)

// ErrStalePlan is returned when a plan file no longer matches the state.
var ErrStalePlan = errors.New("the state changed since the plan was made")

// PlanFile is what `dirsync plan --out` writes and `dirsync apply` reads.
type PlanFile struct {
	Version      int               `json:"version"`
	Created      time.Time         `json:"created"`
	Plans        []Plan            `json:"plans"`
	Fingerprints map[string]string `json:"fingerprints"`
}

// MakePlanFile plans without applying or recording anything.
func (e *Engine) MakePlanFile(ctx context.Context, ro RunOptions) (*PlanFile, error) {
	ro.NoApply = true
	res, err := e.Run(ctx, ro)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(res.Plans, func(a, b Plan) int {
		if a.Target < b.Target {
			return -1
		}
		if a.Target > b.Target {
			return 1
		}
		return 0
	})
	return &PlanFile{Version: 1, Created: e.o.Now().UTC(), Plans: res.Plans, Fingerprints: res.Fingerprints}, nil
}

func (e *Engine) spec(name string) (TargetSpec, bool) {
	for _, s := range e.o.Targets {
		if s.Target.Name() == name {
			return s, true
		}
	}
	return TargetSpec{}, false
}

// ApplyPlanFile applies a plan file made earlier. It refuses, changing
// nothing, when any target's cached accounts changed since the plan was made.
// The safety guard applies as in a run.
func (e *Engine) ApplyPlanFile(ctx context.Context, pf *PlanFile, ro RunOptions) (*Result, error) {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	for _, p := range pf.Plans {
		if _, ok := e.spec(p.Target); !ok {
			return nil, fmt.Errorf("sync: apply: plan names target %q, which is not configured", p.Target)
		}
		cached, err := e.o.Store.Accounts(ctx, p.Target)
		if err != nil {
			return nil, fmt.Errorf("sync: apply: load %s: %w", p.Target, err)
		}
		if Fingerprint(cached) != pf.Fingerprints[p.Target] {
			return nil, fmt.Errorf("sync: apply: target %s: %w; make a new plan", p.Target, ErrStalePlan)
		}
	}
	if ro.Trigger == "" {
		ro.Trigger = "plan_file"
	}
	return e.applyPlans(ctx, pf.Plans, ro, "")
}

func (e *Engine) applyPlans(ctx context.Context, plans []Plan, ro RunOptions, _ string) (*Result, error) {
	now := e.o.Now()
	res := &Result{RunID: NewRunID(now), Counts: map[string]int{}, Fingerprints: map[string]string{}, Plans: plans}
	run := state.Run{ID: res.RunID, Trigger: ro.Trigger, Started: now, Status: "running"}
	if err := e.o.Store.PutRun(ctx, run); err != nil {
		return nil, fmt.Errorf("sync: record run: %w", err)
	}
	rc := &runCtx{e: e, ro: ro, res: res, now: now}
	for _, p := range plans {
		spec, _ := e.spec(p.Target)
		if err := e.open(ctx, spec.Target); err != nil {
			rc.decide(state.Decision{Target: p.Target, User: "*", Action: "run", Outcome: OutcomeFailed, Reason: "could not open target", Error: err.Error()})
			continue
		}
		e.execute(ctx, rc, spec, p)
	}
	_ = e.o.Recorder.Flush(ctx)
	run.Finished, run.Counts, run.Held = e.o.Now(), res.Counts, res.Held
	run.Status = "ok"
	if res.Counts[OutcomeFailed] > 0 || rc.partial {
		run.Status = "partial"
	} else if res.Held {
		run.Status = "held"
	}
	res.Status = run.Status
	if err := e.o.Store.PutRun(context.WithoutCancel(ctx), run); err != nil {
		return res, fmt.Errorf("sync: record run: %w", err)
	}
	return res, nil
}

// Approve applies a held plan. only, when set, limits it to those actions
// (e.g. suspend): the rest stays held. A held step whose account changed
// since it was held is skipped with a decision instead of applied.
func (e *Engine) Approve(ctx context.Context, runID string, only []target.Action) (*Result, error) {
	raw, err := e.o.Store.GetHeld(ctx, runID)
	if err != nil {
		if errors.Is(err, state.ErrNotFound) {
			return nil, fmt.Errorf("sync: approve: no held plan for run %s", runID)
		}
		return nil, fmt.Errorf("sync: approve %s: %w", runID, err)
	}
	var hp HeldPlan
	if err := json.Unmarshal(raw, &hp); err != nil {
		return nil, fmt.Errorf("sync: approve %s: corrupt held plan: %w", runID, err)
	}
	e.runMu.Lock()
	defer e.runMu.Unlock()
	var now []Plan
	var keep []Plan
	stale := map[string][]Step{}
	for _, p := range hp.Plans {
		if _, ok := e.spec(p.Target); !ok {
			return nil, fmt.Errorf("sync: approve: held plan names target %q, which is not configured", p.Target)
		}
		cached, err := e.o.Store.Accounts(ctx, p.Target)
		if err != nil {
			return nil, fmt.Errorf("sync: approve: load %s: %w", p.Target, err)
		}
		go1, stay := Plan{Target: p.Target, Accounts: p.Accounts}, Plan{Target: p.Target, Accounts: p.Accounts}
		for _, s := range p.Steps {
			if len(only) > 0 && !slices.Contains(only, s.Action) {
				stay.Steps = append(stay.Steps, s)
				continue
			}
			c := cached[s.Key]
			if c.Exists != s.Before.Exists || c.Suspended != s.Before.Suspended {
				stale[p.Target] = append(stale[p.Target], s)
				continue
			}
			go1.Steps = append(go1.Steps, s)
		}
		if len(go1.Steps) > 0 {
			now = append(now, go1)
		}
		if len(stay.Steps) > 0 {
			keep = append(keep, stay)
		}
	}
	ro := RunOptions{Trigger: "approve:" + runID, AllowMassChange: true}
	res, err := e.applyPlans(ctx, now, ro, runID)
	if err != nil {
		return res, err
	}
	rc := &runCtx{e: e, ro: ro, res: res}
	for tgt, steps := range stale {
		for _, s := range steps {
			rc.decide(state.Decision{Target: tgt, User: s.User, Action: string(s.Action), Outcome: OutcomeSkipped,
				Reason: s.Reason + "; not applied on approval: the account changed since the plan was held"})
		}
	}
	_ = e.o.Recorder.Flush(ctx)
	fence := e.o.Fence()
	if len(keep) > 0 {
		hp.Plans = keep
		b, _ := json.Marshal(hp)
		err = e.o.Store.PutHeld(ctx, fence, runID, b)
	} else {
		err = e.o.Store.DeleteHeld(ctx, fence, runID)
	}
	if err != nil {
		return res, fmt.Errorf("sync: approve %s: update held plan: %w", runID, err)
	}
	return res, nil
}
