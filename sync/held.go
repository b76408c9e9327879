package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	stdsync "sync"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

// ErrStalePlan is returned when a plan file no longer matches the state.
var ErrStalePlan = errors.New("the state changed since the plan was made")

// HeldPlan is what the guard stores for `dirsync approve`: one target's held
// steps in one run (stored under "RUN/TARGET"), or the sources a run refused
// (stored under "RUN/sources").
type HeldPlan struct {
	RunID   string    `json:"run_id"`
	Target  string    `json:"target,omitempty"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
	Plans   []Plan    `json:"plans,omitempty"`
	// Sources are sources the source guard refused in this run (name →
	// why); approving accepts what they return now.
	Sources map[string]string `json:"sources,omitempty"`
	// ID is the key the plan is stored under (filled when loaded).
	ID string `json:"-"`
}

// heldRunOf returns the run id of a held plan's key ("RUN/TARGET" → RUN).
func heldRunOf(id string) string {
	if i := strings.IndexByte(id, '/'); i > 0 {
		return id[:i]
	}
	return id
}

func (e *Engine) loadHeld(ctx context.Context, id string) (HeldPlan, error) {
	raw, err := e.o.Store.GetHeld(ctx, id)
	if err != nil {
		return HeldPlan{}, err
	}
	var hp HeldPlan
	if err := json.Unmarshal(raw, &hp); err != nil {
		return HeldPlan{}, fmt.Errorf("held plan %s is corrupt: %w", id, err)
	}
	hp.ID = id
	if hp.Target == "" && len(hp.Plans) == 1 {
		hp.Target = hp.Plans[0].Target
	}
	return hp, nil
}

// HeldPlans returns every stored held plan, oldest run first.
func (e *Engine) HeldPlans(ctx context.Context) ([]HeldPlan, error) {
	ids, err := e.o.Store.HeldRuns(ctx)
	if err != nil {
		return nil, fmt.Errorf("sync: held plans: %w", err)
	}
	slices.Sort(ids)
	var out []HeldPlan
	for _, id := range ids {
		hp, err := e.loadHeld(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("sync: %w", err)
		}
		out = append(out, hp)
	}
	return out, nil
}

// heldOfRun returns the held plans of one run (runID), or the one held plan
// stored under runID when it names one target ("RUN/TARGET").
func (e *Engine) heldOfRun(ctx context.Context, runID string) ([]HeldPlan, error) {
	all, err := e.HeldPlans(ctx)
	if err != nil {
		return nil, err
	}
	var out []HeldPlan
	for _, hp := range all {
		if hp.ID == runID || heldRunOf(hp.ID) == runID {
			out = append(out, hp)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sync: no held plan for run %s", runID)
	}
	return out, nil
}

// ApproveRequest says which held run to release, how much of it, and who.
type ApproveRequest struct {
	RunID string
	// Only limits the release to these actions (e.g. suspend); the rest
	// stays held.
	Only []connector.Action
	// By names the approver; decisions carry it.
	By string
}

// approval restricts a run to steps released by an operator (a held plan)
// or listed in a plan file: the run re-plans from the current sources and
// cache and applies only those of its steps that were released.
type approval struct {
	steps map[string]map[string]Step // target → stepID → released step
	by    string
	from  string        // "held in run R" or "plan file"
	guard bool          // plan files still pass the guard; approvals do not
	mu    stdsync.Mutex // guards seen: targets run in parallel
	seen  map[string]map[string]bool
}

func (rc *runCtx) approvedBy() string {
	a := rc.ro.approval
	if a == nil || a.guard {
		return ""
	}
	by := a.by
	if by == "" {
		by = "an operator"
	}
	return fmt.Sprintf("; approved by %s (%s)", by, a.from)
}

// Approve releases a held run: it re-plans from the current sources and
// cache and applies only the held steps that the new plan still wants (same
// target, person and action), each on the account's current record. Held
// steps no longer wanted are skipped with a decision and dropped; steps
// outside Only stay held. Approving a run whose sources the guard refused
// accepts what those sources return now, and applies that run's changes
// past the thresholds: the operator has said the change is real.
func (e *Engine) Approve(ctx context.Context, req ApproveRequest) (*Result, error) {
	hps, err := e.heldOfRun(ctx, req.RunID)
	if err != nil {
		return nil, err
	}
	by := req.By
	if by == "" {
		by = "an operator"
	}
	ro := RunOptions{Trigger: "approve:" + req.RunID}
	ap := &approval{steps: map[string]map[string]Step{}, by: by, from: "held in run " + heldRunOf(req.RunID),
		seen: map[string]map[string]bool{}}
	var accept []string
	var targets []string
	for _, hp := range hps {
		for src := range hp.Sources {
			accept = append(accept, src)
		}
		for _, p := range hp.Plans {
			if _, ok := e.spec(p.Target); !ok {
				return nil, fmt.Errorf("sync: approve: held plan names target %q, which is not configured", p.Target)
			}
			for _, s := range p.Steps {
				if len(req.Only) > 0 && !slices.Contains(req.Only, s.Action) {
					continue
				}
				if ap.steps[p.Target] == nil {
					ap.steps[p.Target] = map[string]Step{}
					targets = append(targets, p.Target)
				}
				ap.steps[p.Target][stepID(s.Key, s.Action)] = s
			}
		}
	}
	var res *Result
	switch {
	case len(accept) > 0:
		// The sources were refused: nothing was planned. Accept them and run.
		slices.Sort(accept)
		ro.AcceptSources = accept
		ro.AllowMassChange = true
		ro.acceptedBy = by
		res, err = e.Run(ctx, ro)
	case len(ap.steps) == 0:
		return nil, fmt.Errorf("sync: approve %s: nothing held matches --only %v", req.RunID, req.Only)
	default:
		ro.Targets, ro.approval = targets, ap
		res, err = e.Run(ctx, ro)
	}
	if err != nil {
		return res, err
	}
	// Drop what was released and evaluated (applied, or no longer wanted);
	// keep the rest, and everything of a target the run could not plan (a
	// source failed): it stays held for a later approval.
	fence := e.o.Fence()
	for _, hp := range hps {
		var keep []Plan
		for _, p := range hp.Plans {
			var rest []Step
			for _, s := range p.Steps {
				_, released := ap.steps[p.Target][stepID(s.Key, s.Action)]
				if !released || ap.seen[p.Target] == nil {
					rest = append(rest, s)
				}
			}
			if len(rest) > 0 {
				p.Steps = rest
				keep = append(keep, p)
			}
		}
		if len(keep) > 0 && len(hp.Sources) == 0 {
			hp.Plans = keep
			b, _ := json.Marshal(hp)
			err = e.o.Store.PutHeld(ctx, fence, hp.ID, b)
		} else {
			err = e.o.Store.DeleteHeld(ctx, fence, hp.ID)
		}
		if err != nil {
			return res, fmt.Errorf("sync: approve %s: update held plan: %w", hp.ID, err)
		}
	}
	e.o.Logger.Info("held run approved", zap.String("run", req.RunID), zap.String("by", by), zap.String("approve_run", res.RunID))
	return res, nil
}

// Discard drops a held run without applying it; a decision says who did.
func (e *Engine) Discard(ctx context.Context, runID, by string) error {
	hps, err := e.heldOfRun(ctx, runID)
	if err != nil {
		return err
	}
	if by == "" {
		by = "an operator"
	}
	var ds []state.Decision
	for _, hp := range hps {
		if err := e.o.Store.DeleteHeld(ctx, e.o.Fence(), hp.ID); err != nil {
			return fmt.Errorf("sync: discard %s: %w", hp.ID, err)
		}
		for _, p := range hp.Plans {
			for _, s := range p.Steps {
				ds = append(ds, state.Decision{Time: e.o.Now().UTC(), RunID: hp.RunID, Trigger: "discard", Target: p.Target, User: s.User,
					Action: string(s.Action), Outcome: OutcomeSkipped, Reason: s.Reason + "; held step discarded by " + by})
			}
		}
	}
	for _, d := range ds {
		e.o.Recorder.Record(d)
	}
	return e.o.Recorder.Flush(ctx)
}

// HeldCheck is a held plan with, for each of its steps, whether a plan made
// now still wants it.
type HeldCheck struct {
	Held HeldPlan `json:"held"`
	// Wanted maps each held step (Step.Key + "/" + action) to whether it is
	// still wanted.
	Wanted map[string]bool `json:"wanted"`
}

// Recheck re-plans now (nothing applied or recorded) and reports which held
// steps of a run are still wanted: what `approve` would apply.
func (e *Engine) Recheck(ctx context.Context, runID string) ([]HeldCheck, error) {
	hps, err := e.heldOfRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	planned := map[string]bool{}
	var mu stdsync.Mutex
	ro := RunOptions{NoApply: true, Trigger: "recheck", onPrepared: func(p *Prepared) {
		mu.Lock()
		for _, s := range p.Plan.Steps {
			planned[p.Spec.Target.Name()+"\x00"+stepID(s.Key, s.Action)] = true
		}
		mu.Unlock()
	}}
	if _, err := e.Run(ctx, ro); err != nil {
		return nil, err
	}
	var out []HeldCheck
	for _, hp := range hps {
		hc := HeldCheck{Held: hp, Wanted: map[string]bool{}}
		for _, p := range hp.Plans {
			for _, s := range p.Steps {
				hc.Wanted[s.Key+"/"+string(s.Action)] = planned[p.Target+"\x00"+stepID(s.Key, s.Action)]
			}
		}
		out = append(out, hc)
	}
	return out, nil
}

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
	slices.SortFunc(res.Plans, func(a, b Plan) int { return strings.Compare(a.Target, b.Target) })
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
// nothing, when any target's cached accounts changed since the plan was
// made; otherwise it re-plans from the current sources and applies only the
// file's steps that the new plan still wants. The guard applies as in a run.
func (e *Engine) ApplyPlanFile(ctx context.Context, pf *PlanFile, ro RunOptions) (*Result, error) {
	ap := &approval{steps: map[string]map[string]Step{}, from: "the plan file of " + pf.Created.UTC().Format(time.RFC3339), guard: true,
		seen: map[string]map[string]bool{}}
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
		ap.steps[p.Target] = map[string]Step{}
		ro.Targets = append(ro.Targets, p.Target)
		for _, s := range p.Steps {
			ap.steps[p.Target][stepID(s.Key, s.Action)] = s
		}
	}
	if len(ro.Targets) == 0 {
		return nil, errors.New("sync: apply: the plan file has no targets")
	}
	if ro.Trigger == "" {
		ro.Trigger = "plan_file"
	}
	ro.approval = ap
	return e.Run(ctx, ro)
}

// notedKey is the KV bucket of skips already logged, one value per target.
const notedBucket = "noted_skips"

func (e *Engine) loadNoted(ctx context.Context, tgt string) map[string]string {
	raw, _, err := e.o.Store.KVGet(ctx, notedBucket, tgt)
	out := map[string]string{}
	if err == nil {
		_ = json.Unmarshal(raw, &out)
	}
	return out
}

// putNoted remembers which skips were logged. A targeted run only replaces
// the entries of the accounts it planned.
func (e *Engine) putNoted(ctx context.Context, tgt string, targeted bool, old, now map[string]string) {
	merged := now
	if targeted {
		merged = maps.Clone(old)
		maps.Copy(merged, now)
	}
	b, _ := json.Marshal(merged)
	if _, err := e.o.Store.KVPut(ctx, notedBucket, tgt, b, -1); err != nil {
		e.o.Logger.Warn("remember logged skips", zap.String("target", tgt), zap.Error(err))
	}
}
