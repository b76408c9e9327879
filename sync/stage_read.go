package sync

// Stage "read": every source some target needs is pulled (or, for a
// targeted run, loaded from its stored snapshot) and passed through the
// source guard. A failed or refused source is an error of its own, never an
// empty read: it decides nothing destructive.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	stdsync "sync"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

// read is the read stage: it fills rc.snaps and rc.srcErrs, counts each
// read in the run record, stores a held record for refused sources, and
// fails the run when every source failed.
func (rc *runCtx) read(ctx context.Context, specs []TargetSpec, run *state.Run) error {
	rc.snaps, rc.srcErrs = rc.readSources(ctx, specs)
	for name, s := range rc.snaps {
		run.Sources[name] = len(s.Users)
	}
	rc.holdRefusedSources(ctx)
	if len(rc.snaps) == 0 && len(rc.srcErrs) > 0 {
		var msgs []string
		for _, err := range rc.srcErrs {
			msgs = append(msgs, err.Error())
		}
		slices.Sort(msgs)
		for _, s := range specs {
			rc.decide(state.Decision{Target: s.Target.Name(), User: "*", Action: "run", Outcome: OutcomeFailed,
				Reason: "no target touched: every source failed", Error: strings.Join(msgs, "; ")})
		}
		return fmt.Errorf("sync: every source failed: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// readSources pulls (or loads) every source some target needs and applies
// the source guard. A failed source is in errs, never an empty snapshot.
func (rc *runCtx) readSources(ctx context.Context, specs []TargetSpec) (map[string]*identity.Snapshot, map[string]error) {
	need := map[string]bool{}
	for _, s := range specs {
		for _, n := range rc.sourcesFor(s) {
			need[n] = true
		}
	}
	snaps := map[string]*identity.Snapshot{}
	errs := map[string]error{}
	var mu stdsync.Mutex
	var wg stdsync.WaitGroup
	for _, src := range rc.e.o.Sources {
		if !need[src.Name()] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			snap, err := rc.readSource(ctx, src)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[src.Name()] = err
				rc.e.o.Logger.Error("source failed: no target using it is touched in this run", zap.String("source", src.Name()), zap.Error(err))
				return
			}
			snaps[src.Name()] = snap
		}()
	}
	wg.Wait()
	return snaps, errs
}

func (rc *runCtx) readSource(ctx context.Context, src source.Source) (*identity.Snapshot, error) {
	name := src.Name()
	prev, err := rc.e.o.Store.GetSnapshot(ctx, name)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, fmt.Errorf("source %s: load last snapshot: %w", name, err)
	}
	if rc.ro.Keys != nil || rc.ro.UseStored {
		if prev != nil {
			return prev, nil
		}
	}
	if prev != nil {
		rc.mu.Lock()
		if rc.prev == nil {
			rc.prev = map[string]*identity.Snapshot{}
		}
		rc.prev[name] = prev
		rc.mu.Unlock()
	}
	start := time.Now()
	snap, err := src.Pull(ctx)
	if rc.e.o.Metrics != nil {
		rc.e.o.Metrics.observePull(name, time.Since(start), snap, err)
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", name, err)
	}
	if snap == nil {
		snap = &identity.Snapshot{}
	}
	if snap.Source == "" {
		snap.Source = name
	}
	accepted := rc.ro.AllowMassChange || slices.Contains(rc.ro.AcceptSources, name)
	emptyOK := len(snap.Users) == 0 && (prev == nil || len(prev.Users) == 0)
	if ea, ok := src.(source.EmptyAllowed); !ok || !ea.AllowEmpty() {
		emptyOK = false
	}
	switch {
	case emptyOK, accepted:
	case len(snap.Users) == 0:
		why := "returned zero users; refusing to treat that as everyone leaving"
		rc.refuse(name, why)
		return nil, fmt.Errorf("source %s: %w: %s (if it is real: `dirsync approve %s` or --allow-mass-change)", name, ErrSourceGuard, why, rc.res.RunID)
	case prev != nil && len(prev.Users) > 0:
		limit := rc.e.o.Limits.MaxSourceShrinkPercent
		drop := float64(len(prev.Users)-len(snap.Users)) * 100 / float64(len(prev.Users))
		if limit > 0 && drop > limit {
			why := fmt.Sprintf("%d users, down from %d (%.0f%% > max_source_shrink_percent %.0f%%)", len(snap.Users), len(prev.Users), drop, limit)
			rc.refuse(name, why)
			return nil, fmt.Errorf("source %s: %w: %s; if this is real: `dirsync approve %s` or rerun with --allow-mass-change", name, ErrSourceGuard, why, rc.res.RunID)
		}
	}
	if accepted && prev != nil && len(snap.Users) < len(prev.Users) && len(prev.Users) > 0 {
		by := rc.ro.acceptedBy
		if by == "" {
			by = "an operator (--allow-mass-change)"
		}
		rc.decide(state.Decision{Target: "*", User: "*", Action: "accept_source", Outcome: OutcomeApplied,
			Reason: fmt.Sprintf("source %s: %d users, down from %d: accepted by %s", name, len(snap.Users), len(prev.Users), by)})
	}
	if !rc.ro.DryRun && !rc.ro.NoApply {
		if err := rc.e.o.Store.PutSnapshot(ctx, rc.e.o.Fence(), snap); err != nil {
			return nil, fmt.Errorf("source %s: store snapshot: %w", name, err)
		}
	}
	return snap, nil
}

func sameKeys(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// refuse notes a source the source guard refused in this run.
func (rc *runCtx) refuse(name, why string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.refused == nil {
		rc.refused = map[string]string{}
	}
	rc.refused[name] = why
}

// holdRefusedSources stores a held record for the sources the guard refused,
// so that `dirsync approve RUN` can accept what they return.
func (rc *runCtx) holdRefusedSources(ctx context.Context) {
	if len(rc.refused) == 0 || rc.ro.DryRun || rc.ro.NoApply {
		return
	}
	var names []string
	for n := range rc.refused {
		names = append(names, n)
	}
	slices.Sort(names)
	hp := HeldPlan{RunID: rc.res.RunID, Reason: "source guard: " + strings.Join(names, ", "), Created: rc.e.o.Now().UTC(), Sources: rc.refused}
	b, _ := json.Marshal(hp)
	if err := rc.e.o.Store.PutHeld(ctx, rc.e.o.Fence(), rc.res.RunID+"/sources", b); err != nil {
		rc.e.o.Logger.Warn("store the refused sources for approval", zap.Error(err))
		return
	}
	// Runs refused for the same sources replace each other: the newest
	// one is what an operator approves, and the list does not grow with
	// every scheduled retry.
	if old, err := rc.e.HeldPlans(ctx); err == nil {
		for _, o := range old {
			if o.ID != rc.res.RunID+"/sources" && len(o.Sources) > 0 && sameKeys(o.Sources, rc.refused) {
				_ = rc.e.o.Store.DeleteHeld(ctx, rc.e.o.Fence(), o.ID)
			}
		}
	}
}
