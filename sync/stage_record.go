package sync

// Stage "record": what a run leaves besides the per-action state writes
// (stage_apply.go): per target, the logged-skip memory and the clock's next
// change; per run, its status and counts, the journal flushed, metrics.

import (
	"context"
	"fmt"
	"maps"

	"github.com/dirsync/dirsync/state"
)

// recordTarget remembers the skips logged and arms the clock with the
// target's next expiry or delayed deletion.
func (rc *runCtx) recordTarget(ctx context.Context, f *flow) error {
	if m := f.memo; m != nil && !maps.Equal(m.old, m.now) {
		rc.e.putNoted(ctx, f.name, rc.ro.Keys != nil, m.old, m.now)
	}
	if !rc.ro.NoApply && !rc.ro.DryRun {
		rc.e.setDue(f.name, f.due)
	}
	return nil
}

// recordRun settles the run's status from what the stages did (err is the
// pipeline's), flushes the journal and stores the run record.
func (rc *runCtx) recordRun(ctx context.Context, run *state.Run, err error) error {
	e, ro, res := rc.e, rc.ro, rc.res
	run.Finished = e.o.Now()
	run.Counts = res.Counts
	run.Held = res.Held
	switch {
	case err != nil:
		run.Status, run.Error = "failed", err.Error()
	case ro.DryRun:
		run.Status = "dry_run"
	case res.Counts[OutcomeFailed] > 0 || rc.partial:
		run.Status = "partial"
	case res.Held:
		run.Status = "held"
	default:
		run.Status = "ok"
	}
	res.Status, res.Err = run.Status, err
	if !ro.NoApply {
		_ = e.o.Recorder.Flush(ctx)
		if perr := e.o.Store.PutRun(context.WithoutCancel(ctx), *run); perr != nil && err == nil {
			err = fmt.Errorf("sync: record run end: %w", perr)
		}
	}
	if e.o.Metrics != nil {
		e.o.Metrics.observeRun(*run)
	}
	return err
}
