package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	stdsync "sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// TargetSpec is a connector with its common config.
type TargetSpec struct {
	Target connector.Connector
	Config config.TargetCommon
}

// Options build an Engine.
type Options struct {
	// Sources in config order (the default precedence).
	Sources []source.Source
	Targets []TargetSpec
	Store   state.Store
	Logger  *zap.Logger
	// Recorder receives every decision; required.
	Recorder *Recorder
	Limits   config.Limits
	JoinKey  identity.JoinKey
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits between retries (default: a timer honouring ctx).
	Sleep func(ctx context.Context, d time.Duration) error
	// Fence returns the current leader lease's fence (default: unfenced).
	Fence func() state.Fence
	// Leading, when set, is asked right before every call to an
	// application: false (the lease expired by this process's clock) means
	// send nothing. It closes the window where a frozen leader wakes up
	// and sends the call it was about to make.
	Leading func() bool
	// RetryBase is the first retry delay (default 500ms), doubled each time.
	RetryBase time.Duration
	// BreakerThreshold: consecutive failed actions after which a target is
	// paused for the rest of the run (default 5).
	BreakerThreshold int
	// MaxRetryAfter: a Retry-After longer than this trips the breaker
	// instead of stalling the run (default 2m).
	MaxRetryAfter time.Duration
	Metrics       *Metrics
	// Progress, when set, is told how many steps each target will apply.
	Progress Progress
}

// Engine runs syncs. It is safe for concurrent use, but runs are serialised.
type Engine struct {
	o        Options
	runMu    stdsync.Mutex
	mu       stdsync.Mutex
	limiters map[string]*rate.Limiter
	opened   map[string]bool
	// due holds, per target, the next clock-driven change as of the last
	// run that planned it.
	due map[string]dueAt
}

type dueAt struct {
	at   time.Time
	keys []string
}

// New returns an Engine.
func New(o Options) *Engine {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	if o.Fence == nil {
		o.Fence = func() state.Fence { return state.Fence{} }
	}
	if o.RetryBase == 0 {
		o.RetryBase = 500 * time.Millisecond
	}
	if o.BreakerThreshold == 0 {
		o.BreakerThreshold = 5
	}
	if o.MaxRetryAfter == 0 {
		o.MaxRetryAfter = 2 * time.Minute
	}
	if o.JoinKey == "" {
		o.JoinKey = identity.JoinEmail
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return &Engine{o: o, limiters: map[string]*rate.Limiter{}, opened: map[string]bool{}, due: map[string]dueAt{}}
}

// RunOptions shape one run.
type RunOptions struct {
	Trigger string
	DryRun  bool
	// Keys limits the run to these people (targeted run): source record
	// keys or person ids. The stored snapshots are used instead of pulling
	// the sources.
	Keys []string
	// UseStored uses stored snapshots without pulling even when Keys is empty.
	UseStored bool
	// AllowMassChange applies past the guard's thresholds and accepts a
	// source that shrank or returned no users.
	AllowMassChange  bool
	RetryQuarantined bool
	// AcceptSources accepts what these sources return even when the source
	// guard would refuse it (an approved source hold).
	AcceptSources []string
	// Targets limits the run to these target names.
	Targets []string
	// NoApply plans only: no decisions, no writes (plan files, explain).
	NoApply bool
	// Reconcile reads every live account back from the targets that can
	// list them (drift, orphans, missing accounts) before planning.
	Reconcile bool
	// Fallback, when set, says why an incremental change became this full
	// run (it could not be resolved to people); it is a decision.
	Fallback string
	// Stop, when closed, makes the run finish the actions in flight and
	// start no new ones (graceful shutdown).
	Stop <-chan struct{}

	onPrepared func(*Prepared)
	approval   *approval
	acceptedBy string
}

// Result is what a run did.
type Result struct {
	RunID  string
	Status string
	Plans  []Plan
	Counts map[string]int
	Held   bool
	// Fingerprints of each target's cached accounts at planning time.
	Fingerprints map[string]string
	Err          error
}

// ErrSourceGuard is wrapped by errors from the empty/shrunk source guard.
var ErrSourceGuard = errors.New("source guard")

// NewRunID returns a sortable, unique run id.
func NewRunID(now time.Time) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Run performs one run (see pipeline.go for its stages): read sources,
// link them into people, and per target build desired, read back, plan,
// guard, apply, record. It returns an error only when nothing could be done; per-target
// and per-account problems are in the decisions and the run status.
func (e *Engine) Run(ctx context.Context, ro RunOptions) (*Result, error) {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	now := e.o.Now()
	res := &Result{RunID: NewRunID(now), Counts: map[string]int{}, Fingerprints: map[string]string{}}
	if ro.Trigger == "" {
		ro.Trigger = "manual"
	}
	run := state.Run{ID: res.RunID, Trigger: ro.Trigger, Started: now, Status: "running", Sources: map[string]int{}}
	if !ro.NoApply {
		if err := e.o.Store.PutRun(ctx, run); err != nil {
			return nil, fmt.Errorf("sync: record run start: %w", err)
		}
	}
	rc := &runCtx{e: e, ro: ro, res: res, now: now}
	if ro.Fallback != "" && !ro.NoApply {
		rc.decide(state.Decision{Target: "*", User: "*", Action: "full_run", Outcome: OutcomeApplied, Reason: ro.Fallback})
	}
	err := rc.pipeline(ctx, &run)
	return res, rc.recordRun(ctx, &run, err)
}

// runCtx is what the run-wide stages (read, link) give the target stages,
// and what every stage adds to the run's result.
type runCtx struct {
	e       *Engine
	ro      RunOptions
	res     *Result
	now     time.Time
	mu      stdsync.Mutex
	partial bool
	// links is the link table after this run's linking (all sources), and
	// linked the people it made from linkedFrom's snapshots.
	links      map[string]string
	linked     identity.Linked
	linkedFrom []string
	// persons are the people a targeted run is about (resolved once).
	persons map[string]bool
	// refused are sources the source guard refused (name → why).
	refused map[string]string
	// memos are the per-target logged-skip memories.
	memos map[string]*skipMemo
	// prev are the sources' snapshots before this run's read.
	prev map[string]*identity.Snapshot
	// snaps are this run's reads, by source; srcErrs the sources that
	// failed or were refused (never an empty read).
	snaps   map[string]*identity.Snapshot
	srcErrs map[string]error
}

func (rc *runCtx) decide(d state.Decision) {
	if rc.ro.NoApply {
		return // plan-only runs (plan, explain, re-checks) decide nothing
	}
	d.RunID, d.Trigger = rc.res.RunID, rc.ro.Trigger
	if d.Time.IsZero() {
		d.Time = rc.e.o.Now().UTC()
	}
	rc.mu.Lock()
	rc.res.Counts[d.Outcome]++
	rc.mu.Unlock()
	rc.e.o.Recorder.Record(d)
}

// Due returns when the next clock-driven change falls (an expiry or a
// delayed deletion) and the people concerned, over every target as last
// planned.
func (e *Engine) Due() (time.Time, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var at time.Time
	var keys []string
	for _, d := range e.due {
		switch {
		case d.at.IsZero():
		case at.IsZero() || d.at.Before(at):
			at, keys = d.at, slices.Clone(d.keys)
		case d.at.Equal(at):
			keys = append(keys, d.keys...)
		}
	}
	return at, identity.SortedSet(keys)
}

// setDue records a target's next clock-driven change after it was planned.
func (e *Engine) setDue(tgt string, d dueAt) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.due[tgt] = d
}

func (rc *runCtx) sourcesFor(spec TargetSpec) []string {
	if len(spec.Config.Sources) > 0 {
		return spec.Config.Sources
	}
	var names []string
	for _, s := range rc.e.o.Sources {
		names = append(names, s.Name())
	}
	return names
}

func (e *Engine) open(ctx context.Context, t connector.Connector) error {
	o, ok := t.(connector.Opener)
	if !ok {
		return nil
	}
	e.mu.Lock()
	done := e.opened[t.Name()]
	e.mu.Unlock()
	if done {
		return nil
	}
	pol := retryPolicy{attempts: 4, base: e.o.RetryBase, maxRetryAfter: e.o.MaxRetryAfter, sleep: e.o.Sleep}
	if r := pol.do(ctx, func() error { return o.Open(ctx) }); r.err != nil {
		return fmt.Errorf("open: %w", r.err)
	}
	e.mu.Lock()
	e.opened[t.Name()] = true
	e.mu.Unlock()
	return nil
}
