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
	known   map[string]identity.User
	desired map[string]Desired
	// read back: the cache as the application confirms it, the accounts a
	// targeted run is about (nil: all), and the orphans found.
	cached  map[string]identity.Account
	keys    map[string]bool
	orphans []Step
	// plan: its input and the plan, and the next clock-driven change.
	in   PlanInput
	plan Plan
	due  dueAt
	// guard: the steps to apply now, and the logged-skip memory.
	apply []Step
	memo  *skipMemo
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
	if err := rc.read(ctx, specs, run); err != nil {
		return err
	}
	if err := rc.linkStage(ctx); err != nil {
		return err
	}
	rc.eachTarget(ctx, specs, []stage{
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
