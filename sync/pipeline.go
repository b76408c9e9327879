package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	stdsync "sync"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
)

// A run is a pipeline of stages, one file each (stage_*.go), in the order of
// the data flow in DESIGN:
//
//	read      sources pulled (or loaded) and guarded         stage_read.go
//	link      records placed into people (link table)       stage_link.go
//	per target, concurrently:
//	  desire    the accounts the people should have          stage_desire.go
//	  read back the cache checked against the application    stage_readback.go
//	  plan      the difference, as ordered steps and skips   stage_plan.go
//	  guard     mass changes held; approvals re-checked      stage_guard.go
//	  apply     steps sent, each recorded once confirmed     stage_apply.go
//	  record    skips remembered, the clock re-armed         stage_record.go
//	record    the run's outcome and the journal             stage_record.go
//
// The run-wide stages fill runCtx (the reads, the links); what crosses the
// stages of one target is a flow.

// flow is what crosses the stages of one target's run. Each stage reads
// what the earlier ones filled in and adds its own part.
type flow struct {
	spec TargetSpec
	name string
	// desire: the target's sources' reads (a failed one replaced by its
	// last good read), their people and the accounts they should have.
	snaps   map[string]*identity.Snapshot
	linked  identity.Linked
	rules   Rules
	known   People
	desired map[string]Desired
	// own are the target's account rules (accounts.go): who may adopt,
	// take over or touch which account.
	own *owners
	// read back: the cache as the application confirms it, the accounts a
	// targeted run is about (nil: all), and the orphans found.
	cached  map[string]identity.Account
	keys    map[string]bool
	orphans []Step
	// skips are accounts the read back found that nobody may adopt.
	skips []Step
	// plan: its input and the plan, and the next clock-driven change.
	in   PlanInput
	plan Plan
	due  dueAt
	// guard: the steps to apply now, and the logged-skip memory.
	apply []Step
	memo  *skipMemo
	held  bool
}

// stage is one step of a target's pipeline. errStopTarget ends the
// target's run with its decisions already made; any other error means the
// target could not be planned.
type stage struct {
	name string
	run  func(context.Context, *flow) error
}

// errStopTarget ends a target's pipeline early; its stage made the decisions.
var errStopTarget = errors.New("stop target")

// pipeline runs one run, stage by stage.
func (rc *runCtx) pipeline(ctx context.Context, run *state.Run) error {
	specs, err := rc.selectTargets()
	if err != nil {
		return err
	}
	held, reads := rc.heldTargets(specs)
	if err := rc.read(ctx, reads, run); err != nil {
		return err
	}
	if err := rc.linkStage(ctx); err != nil {
		return err
	}
	if rc.ro.Linked != nil {
		rc.ro.Linked()
	}
	rc.eachTarget(ctx, held, []stage{
		{"desire", rc.desire},
		{"read back", rc.readBackStage},
		{"plan", rc.plan},
		{"guard", rc.guard},
		{"apply", rc.apply},
		{"record", rc.recordTarget},
	})
	if len(rc.srcErrs) > 0 {
		rc.partial = true
	}
	return nil
}

// selectTargets returns the targets this run is about (RunOptions.Targets,
// or all).
func (rc *runCtx) selectTargets() ([]TargetSpec, error) {
	specs := rc.e.o.Targets
	if len(rc.ro.Targets) == 0 {
		return specs, nil
	}
	specs = nil
	for _, s := range rc.e.o.Targets {
		if slices.Contains(rc.ro.Targets, s.Target.Name()) {
			specs = append(specs, s)
		}
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("sync: no target named %s", strings.Join(rc.ro.Targets, ", "))
	}
	return specs, nil
}

// heldTargets splits the selected targets when replicas share them
// (Options.FenceFor): held are those whose lease this process holds, the
// only ones it plans and applies; reads are those whose sources the run
// reads — every selected target's on the holder of the sources' lease (it
// pulls and stores for all), the held ones' elsewhere, from the stored
// snapshots (a replica without that lease writes no snapshot or link).
func (rc *runCtx) heldTargets(specs []TargetSpec) (held, reads []TargetSpec) {
	if rc.e.o.FenceFor == nil || rc.ro.NoApply || rc.ro.DryRun {
		// Nothing is written: plans, dry runs and explanations see every target.
		return specs, specs
	}
	for _, s := range specs {
		if _, ok := rc.e.o.FenceFor(s.Target.Name()); ok {
			held = append(held, s)
		}
	}
	if rc.e.sourcesHolder() {
		return held, specs
	}
	if rc.ro.Keys == nil {
		rc.ro.UseStored = true
	}
	return held, held
}

// eachTarget runs the target stages for every target concurrently. A stage
// error before anything was applied is a failed decision for the target.
func (rc *runCtx) eachTarget(ctx context.Context, specs []TargetSpec, stages []stage) {
	var wg stdsync.WaitGroup
	for _, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := &flow{spec: spec, name: spec.Target.Name()}
			for _, st := range stages {
				err := st.run(ctx, f)
				if errors.Is(err, errStopTarget) {
					return
				}
				if err != nil {
					rc.mu.Lock()
					rc.partial = true
					rc.mu.Unlock()
					rc.decide(state.Decision{Target: f.name, User: "*", Action: "run", Outcome: OutcomeFailed,
						Reason: "could not plan this target; nothing changed in it", Error: fmt.Sprintf("%s: %v", f.name, err)})
					return
				}
			}
		}()
	}
	wg.Wait()
}
