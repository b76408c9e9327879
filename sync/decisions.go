package sync

import (
	"context"
	stdsync "sync"
	"time"

	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Outcomes of a decision.
const (
	OutcomeApplied = "applied"
	OutcomeSkipped = "skipped"
	OutcomeFailed  = "failed"
	OutcomeHeld    = "held"
	OutcomeDryRun  = "dry_run"
)

// Recorder writes each decision as one zap line (through a logger the caller
// built on an unsampled core) and to the state journal, in batches.
type Recorder struct {
	log   *zap.Logger
	store state.Store
	onRec func(state.Decision)

	mu      stdsync.Mutex
	pending []state.Decision
}

// NewRecorder returns a Recorder. log must not be sampled: every decision is
// one line. onRecord, if set, sees every decision (metrics, demo output).
func NewRecorder(log *zap.Logger, store state.Store, onRecord func(state.Decision)) *Recorder {
	return &Recorder{log: log, store: store, onRec: onRecord}
}

// UnsampledLogger returns a logger on core's writer with sampling removed:
// decision lines must never be dropped.
func UnsampledLogger(enc zapcore.Encoder, out zapcore.WriteSyncer, level zapcore.LevelEnabler) *zap.Logger {
	return zap.New(zapcore.NewCore(enc, out, level))
}

// Record logs and queues one decision.
func (r *Recorder) Record(d state.Decision) {
	if d.Time.IsZero() {
		d.Time = time.Now().UTC()
	}
	fields := []zap.Field{
		zap.String("run_id", d.RunID), zap.String("trigger", d.Trigger), zap.String("target", d.Target),
		zap.String("user", d.User), zap.String("action", d.Action), zap.String("reason", d.Reason),
		zap.String("outcome", d.Outcome), zap.Int("attempt", d.Attempt), zap.Int64("duration_ms", d.DurationMS),
	}
	if d.Error != "" {
		fields = append(fields, zap.String("error", d.Error))
	}
	if r.log != nil {
		r.log.Info("decision", fields...)
	}
	if r.onRec != nil {
		r.onRec(d)
	}
	r.mu.Lock()
	r.pending = append(r.pending, d)
	full := len(r.pending) >= 256
	r.mu.Unlock()
	if full {
		_ = r.Flush(context.Background())
	}
}

// Flush writes queued decisions to the journal.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	batch := r.pending
	r.pending = nil
	r.mu.Unlock()
	if len(batch) == 0 || r.store == nil {
		return nil
	}
	if err := r.store.AppendDecisions(ctx, batch); err != nil {
		r.mu.Lock()
		r.pending = append(batch, r.pending...)
		if len(r.pending) > 100000 { // never grow without bound while the store is down
			r.pending = r.pending[len(r.pending)-100000:]
		}
		r.mu.Unlock()
		return err
	}
	return nil
}
