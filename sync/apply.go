package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	stdsync "sync"
	"sync/atomic"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/target"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Fingerprint hashes a target's cached accounts, so a plan file can tell
// whether the state changed since it was made.
func Fingerprint(cached map[string]identity.Account) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(cached)) {
		b, _ := json.Marshal(cached[k])
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (e *Engine) limiter(spec TargetSpec) *rate.Limiter {
	e.mu.Lock()
	defer e.mu.Unlock()
	name := spec.Target.Name()
	l, ok := e.limiters[name]
	if !ok {
		r := rate.Inf
		if spec.Config.RateLimit != nil && *spec.Config.RateLimit > 0 {
			r = rate.Limit(*spec.Config.RateLimit)
		}
		l = rate.NewLimiter(r, max(spec.Config.Burst, 1))
		e.limiters[name] = l
	}
	return l
}

// execute applies a plan: skips and cache-only records first, then the guard,
// then every account's steps in order, accounts in parallel.
func (e *Engine) execute(ctx context.Context, rc *runCtx, spec TargetSpec, p Plan) {
	name := spec.Target.Name()
	fence := e.o.Fence()
	for _, s := range p.Skips {
		out := OutcomeSkipped
		if rc.ro.DryRun {
			out = OutcomeDryRun
		}
		rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Reason: s.Reason, Outcome: out})
		if !rc.ro.DryRun && s.Action != "quarantine" {
			if err := e.o.Store.PutAccount(ctx, fence, name, s.After); err != nil {
				e.o.Logger.Warn("record skipped action", zap.String("target", name), zap.Error(err))
			}
		}
	}
	apply, held, why := Guarded(p, e.o.Limits)
	if rc.ro.AllowMassChange && len(held) > 0 {
		apply, held = p.Steps, nil
	}
	if rc.ro.DryRun {
		for _, s := range p.Steps {
			rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Reason: s.Reason, Outcome: OutcomeDryRun})
		}
		return
	}
	for _, a := range p.CacheOnly {
		if err := e.o.Store.PutAccount(ctx, fence, name, a); err != nil {
			e.o.Logger.Warn("record cache-only change", zap.String("target", name), zap.Error(err))
		}
	}
	if len(held) > 0 {
		rc.mu.Lock()
		rc.res.Held = true
		rc.mu.Unlock()
		hp := Plan{Target: name, Steps: held, Accounts: p.Accounts}
		b, _ := json.Marshal(HeldPlan{RunID: rc.res.RunID, Reason: why, Plans: []Plan{hp}, Created: e.o.Now().UTC()})
		herr := e.o.Store.PutHeld(ctx, fence, rc.res.RunID, b)
		for _, s := range held {
			d := state.Decision{Target: name, User: s.User, Action: string(s.Action), Outcome: OutcomeHeld,
				Reason: fmt.Sprintf("%s; held by the safety guard (%s): run `dirsync approve %s`", s.Reason, why, rc.res.RunID)}
			if herr != nil {
				d.Error = "storing the held plan failed: " + herr.Error()
			}
			rc.decide(d)
		}
		if e.o.Metrics != nil {
			e.o.Metrics.HeldRuns.Inc()
		}
	}
	e.applySteps(ctx, rc, spec, apply)
}

// HeldPlan is what the guard stores for `dirsync approve`.
type HeldPlan struct {
	RunID   string    `json:"run_id"`
	Reason  string    `json:"reason"`
	Created time.Time `json:"created"`
	Plans   []Plan    `json:"plans"`
}

// errStop ends an account's remaining steps.
var errStop = errors.New("stop")

type breaker struct {
	threshold int
	fails     atomic.Int32
	open      atomic.Bool
	why       atomic.Value
	skipped   atomic.Int32
}

func (b *breaker) result(ok bool) {
	if ok {
		b.fails.Store(0)
		return
	}
	if int(b.fails.Add(1)) >= b.threshold {
		b.trip(fmt.Sprintf("%d actions in a row failed", b.threshold))
	}
}

func (b *breaker) trip(why string) {
	if b.open.CompareAndSwap(false, true) {
		b.why.Store(why)
	}
}

func (e *Engine) applySteps(ctx context.Context, rc *runCtx, spec TargetSpec, steps []Step) {
	if len(steps) == 0 {
		return
	}
	name := spec.Target.Name()
	var groups [][]Step
	for i, s := range steps {
		if i == 0 || steps[i-1].Key != s.Key {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], s)
	}
	br := &breaker{threshold: e.o.BreakerThreshold}
	work := make(chan []Step)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg stdsync.WaitGroup
	for range max(spec.Config.Concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				if br.open.Load() || ctx.Err() != nil || stopped(rc.ro.Stop) {
					br.skipped.Add(int32(len(g)))
					continue
				}
				if err := e.applyAccount(ctx, rc, spec, g, br); errors.Is(err, state.ErrStaleFence) {
					rc.e.o.Logger.Error("leadership lost: stopping the run", zap.String("target", name), zap.Error(err))
					cancel()
				}
			}
		}()
	}
	for _, g := range groups {
		work <- g
	}
	close(work)
	wg.Wait()
	if br.open.Load() {
		why, _ := br.why.Load().(string)
		rc.mu.Lock()
		rc.partial = true
		rc.mu.Unlock()
		rc.decide(state.Decision{Target: name, User: "*", Action: "circuit_open", Outcome: OutcomeFailed,
			Reason: fmt.Sprintf("circuit breaker open: %s; %d remaining actions postponed to the next run", why, br.skipped.Load())})
	}
}

// applyAccount runs one account's steps in order; it stops at the first
// step that does not succeed.
func (e *Engine) applyAccount(ctx context.Context, rc *runCtx, spec TargetSpec, steps []Step, br *breaker) error {
	name := spec.Target.Name()
	rec := steps[0].Before.Clone()
	failed := false
	for _, s := range steps {
		if br.open.Load() || stopped(rc.ro.Stop) {
			br.skipped.Add(1)
			continue
		}
		next, err := e.applyStep(ctx, rc, spec, s, rec, br)
		if err != nil {
			failed = !errors.Is(err, errStop)
			if errors.Is(err, state.ErrStaleFence) {
				return err
			}
			break
		}
		rec = next
	}
	if failed {
		rec.Failures++
		rec.Pending = ""
		if err := e.o.Store.PutAccount(context.WithoutCancel(ctx), e.o.Fence(), name, rec); err != nil {
			return err
		}
		if q := e.o.Limits.QuarantineAfter; q > 0 && rec.Failures == q {
			rc.decide(state.Decision{Target: name, User: displayUser(rec), Action: "quarantine", Outcome: OutcomeFailed,
				Reason: fmt.Sprintf("quarantined after %d runs in a row with a failed action; it will be skipped until `dirsync sync --retry-quarantined`", q)})
		}
	}
	return nil
}

// applyStep applies one step with retries and records it. It returns the
// new cache record, errStop when the account's remaining steps must not run
// (the outcome is already decided), or another error for a failure.
func (e *Engine) applyStep(ctx context.Context, rc *runCtx, spec TargetSpec, s Step, rec identity.Account, br *breaker) (identity.Account, error) {
	name := spec.Target.Name()
	fence := e.o.Fence()
	want := s.After.Clone()
	if want.Remote == nil && rec.Remote != nil {
		want.Remote = maps.Clone(rec.Remote)
	}
	before := s.Before.Clone()
	before.Remote = rec.Remote
	// Record the intent first: if the store cannot take it, nothing is sent.
	intent := rec.Clone()
	intent.Pending = string(s.Action)
	if err := e.o.Store.PutAccount(ctx, fence, name, intent); err != nil {
		rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Reason: s.Reason, Outcome: OutcomeFailed,
			Error: "not sent: the state store cannot record it: " + err.Error()})
		if errors.Is(err, state.ErrStaleFence) {
			return rec, err
		}
		return rec, errStop
	}
	start := time.Now()
	lim := e.limiter(spec)
	timeout := spec.Config.Timeout.D()
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	maxAttempts := max(spec.Config.MaxAttempts, 1)
	var err error
	attempt := 0
	for attempt = 1; ; attempt++ {
		if err = lim.Wait(ctx); err != nil {
			break
		}
		if e.o.Leading != nil && !e.o.Leading() {
			// The lease ran out (this process was frozen, or cut off from
			// the store): another replica may be leader. Send nothing.
			err = fmt.Errorf("not sent: %w", state.ErrStaleFence)
			break
		}
		actx, cancel := context.WithTimeout(ctx, timeout)
		acct := want.Clone()
		err = target.Do(actx, spec.Target, s.Action, before, &acct)
		cancel()
		if err == nil {
			want.Remote = acct.Remote
			break
		}
		k := target.KindOf(err)
		retryAfter := target.RetryAfterOf(err)
		if k == target.KindUncertain {
			if r, ok := spec.Target.(target.Reader); ok {
				probe := want.Clone() // the account as it should be: a create leaves rec nearly empty
				probe.Remote = mergeRemote(rec.Remote, want.Remote)
				got, rerr := r.Read(ctx, probe)
				if rerr == nil && landed(s.Action, got, want) {
					want.Remote = mergeRemote(want.Remote, got.Remote)
					err = nil
					break
				}
				if ra := target.RetryAfterOf(rerr); ra > 0 {
					retryAfter = ra // the re-read was rate limited: honour it too
				}
			}
		}
		if k != target.KindRetryable && k != target.KindRateLimited && k != target.KindUncertain {
			break
		}
		if attempt >= maxAttempts || ctx.Err() != nil {
			break
		}
		wait := e.o.RetryBase << (attempt - 1)
		if ra := retryAfter; ra > 0 {
			if ra > e.o.MaxRetryAfter {
				br.trip(fmt.Sprintf("rate limited with Retry-After %s", ra))
				break
			}
			wait = ra
		}
		if serr := e.o.Sleep(ctx, wait); serr != nil {
			break
		}
	}
	dur := time.Since(start)
	d := state.Decision{Target: name, User: s.User, Action: string(s.Action), Reason: s.Reason, Attempt: attempt, DurationMS: dur.Milliseconds()}
	k := target.KindOf(err)
	switch {
	case err == nil:
		next := want
		next.Pending, next.Failures = "", 0
		d.Outcome = OutcomeApplied
		if werr := e.o.Store.PutAccount(context.WithoutCancel(ctx), fence, name, next); werr != nil {
			d.Error = "applied, but recording it failed (the next run re-reads or repeats it): " + werr.Error()
			rc.decide(d)
			e.countAction(name, s.Action, d.Outcome)
			br.result(true)
			if errors.Is(werr, state.ErrStaleFence) {
				return next, werr
			}
			return next, errStop
		}
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		br.result(true)
		return next, nil
	case k == target.KindSkipped:
		next := want
		next.Pending = ""
		if s.Action == target.ActCreate {
			next = identity.Account{Key: s.Key, Skipped: string(target.ActCreate)}
		}
		d.Outcome, d.Reason = OutcomeSkipped, s.Reason+"; skipped: "+err.Error()
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		if werr := e.o.Store.PutAccount(context.WithoutCancel(ctx), fence, name, next); werr != nil {
			return next, werr
		}
		return next, errStop
	case k == target.KindNotFound && s.Action == target.ActDelete:
		next := identity.Account{Key: s.Key}
		d.Outcome, d.Reason = OutcomeApplied, s.Reason+" (already absent in the application)"
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		_ = e.o.Store.PutAccount(context.WithoutCancel(ctx), fence, name, next)
		return next, nil
	case k == target.KindNotFound:
		next := identity.Account{Key: s.Key, Failures: rec.Failures}
		d.Outcome, d.Reason, d.Error = OutcomeFailed, s.Reason+"; the account no longer exists in the application: forgotten, to be re-created or adopted next run", err.Error()
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		_ = e.o.Store.PutAccount(context.WithoutCancel(ctx), fence, name, next)
		return next, errStop
	case errors.Is(err, state.ErrStaleFence):
		d.Outcome, d.Error = OutcomeFailed, "leadership lost: "+err.Error()
		rc.decide(d)
		return rec, err
	default:
		d.Outcome, d.Error = OutcomeFailed, err.Error()
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		br.result(k == target.KindPermanent) // a permanent error is the account's problem, not the target's
		return rec, fmt.Errorf("%s %s: %w", s.Action, s.User, err)
	}
}

func (e *Engine) countAction(tgt string, a target.Action, outcome string) {
	if e.o.Metrics != nil {
		e.o.Metrics.Actions.WithLabelValues(tgt, string(a), outcome).Inc()
	}
}

func mergeRemote(a, b map[string]string) map[string]string {
	if len(b) == 0 {
		return a
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// landed reports whether an uncertain action is visible in the re-read account.
func landed(act target.Action, got, want identity.Account) bool {
	switch act {
	case target.ActSuspend, target.ActUnsuspend:
		return got.Suspended == want.Suspended
	case target.ActSetRole:
		return got.Role == want.Role
	case target.ActSetGroups:
		return slices.Equal(identity.SortedSet(got.Groups), identity.SortedSet(want.Groups))
	case target.ActCreate:
		return got.Exists || got.Email != ""
	}
	return false
}

func stopped(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}
