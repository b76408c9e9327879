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

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
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

// stepID names a step for matching held and re-planned steps.
func stepID(key string, act connector.Action) string { return key + "\x00" + string(act) }

// apply is the apply stage: a dry run only says what it would do;
// otherwise accounts taken over move to their new person, records of
// accounts another person holds now are forgotten, and every account's
// steps are applied (accounts losing access first) with the plan's notes.
func (rc *runCtx) apply(ctx context.Context, f *flow) error {
	e := rc.e
	if rc.ro.DryRun {
		for _, s := range f.apply {
			rc.decide(state.Decision{Target: f.name, User: s.User, Action: string(s.Action), Reason: s.Reason, Outcome: OutcomeDryRun})
		}
		return nil
	}
	cached := f.cached
	var notes []identity.Account
	if rc.ro.approval == nil {
		if len(f.plan.Takeovers) > 0 {
			cached = e.takeOver(ctx, f.name, f.plan.Takeovers, cached)
		}
		for _, k := range f.plan.Retire {
			if err := e.o.Store.DeleteAccount(ctx, e.targetFence(f.name), f.name, k); err != nil {
				e.o.Logger.Warn("forget a record whose account another person holds", zap.String("target", f.name), zap.Error(err))
			}
		}
		notes = f.plan.Notes
	}
	e.applySteps(ctx, rc, f.spec, f.apply, notes, cached, rc.insteadBudget(f))
	return nil
}

// insteadBudget is how many suspensions done instead of an impossible
// deletion (suspendInstead) this run may still apply to the target: the
// guard counted the deletion, not the suspension it turns into, so these
// may not take the target's suspensions past what the guard lets through
// (its limits, or what an approval released). -1: no limit (a run with
// --allow-mass-change, or an approval that does not guard).
func (rc *runCtx) insteadBudget(f *flow) int {
	if rc.ro.AllowMassChange || (rc.ro.approval != nil && !rc.ro.approval.guard) {
		return -1
	}
	var sus []Step
	deletes := 0
	for _, s := range f.apply {
		switch s.Action {
		case connector.ActSuspend:
			sus = append(sus, Step{Action: connector.ActSuspend})
		case connector.ActDelete:
			deletes++
		}
	}
	k := 0
	for ; k < deletes; k++ {
		more := append(slices.Clone(sus), Step{Action: connector.ActSuspend})
		if _, held, _ := Guarded(Plan{Target: f.name, Steps: more, Accounts: f.plan.Accounts}, rc.e.o.Limits); len(held) > 0 {
			break
		}
		sus = more
	}
	return k
}

// takeOver moves the cache records of accounts taken over by a returning
// person to that person's key, before their steps run; it returns the cache
// as the steps see it.
func (e *Engine) takeOver(ctx context.Context, name string, to map[string]string, cached map[string]identity.Account) map[string]identity.Account {
	out := maps.Clone(cached)
	for k, old := range to {
		rec, ok := cached[old]
		if !ok {
			continue
		}
		rec = withoutPending(rec)
		rec.Key = k
		if err := e.o.Store.PutAccount(ctx, e.targetFence(name), name, rec); err != nil {
			e.o.Logger.Warn("take over an account", zap.String("target", name), zap.Error(err))
			continue
		}
		if err := e.o.Store.DeleteAccount(ctx, e.targetFence(name), name, old); err != nil {
			e.o.Logger.Warn("take over an account", zap.String("target", name), zap.Error(err))
		}
		out[k] = rec
		delete(out, old)
	}
	return out
}

// skipMemo remembers which skips were logged, so a skip that stays the same
// is logged once, not every run. It decides nothing: the step is planned
// (and, for a skip the application answers at run time, attempted) again
// every run, so a fixed cause takes effect at once.
type skipMemo struct {
	mu       stdsync.Mutex
	old, now map[string]string
}

// fresh records a skip and reports whether it must be logged.
func (m *skipMemo) fresh(id, reason string) bool {
	if m == nil {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now[id] = reason
	return m.old[id] != reason
}

func (rc *runCtx) memoFor(name string, noted map[string]string) *skipMemo {
	if noted == nil {
		return nil
	}
	m := &skipMemo{old: noted, now: map[string]string{}}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.memos == nil {
		rc.memos = map[string]*skipMemo{}
	}
	rc.memos[name] = m
	return m
}

func (rc *runCtx) memo(name string) *skipMemo {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.memos[name]
}

// decideSkips logs each skip once: a skip logged with the same reason in an
// earlier run is not logged again.
func (rc *runCtx) decideSkips(name string, skips []Step, m *skipMemo) {
	for _, s := range skips {
		if !m.fresh(stepID(s.Key, s.Action), s.Reason) && !rc.ro.DryRun {
			continue
		}
		out := OutcomeSkipped
		if rc.ro.DryRun {
			out = OutcomeDryRun
		}
		rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Reason: s.Reason, Outcome: out})
	}
}

// breaker pauses a target's steps after consecutive failures. Steps that
// take access away are never paused by it: once it is open they are still
// attempted, once each, without retries.
type breaker struct {
	threshold int
	fails     atomic.Int32
	open      atomic.Bool
	why       atomic.Value
	skipped   atomic.Int32
	// instead is how many suspensions done instead of an impossible
	// deletion the guard still lets through (when limitInstead).
	limitInstead bool
	instead      atomic.Int32
}

// takeInstead reserves one suspension done instead of a deletion; false
// when the guard's limit leaves none.
func (b *breaker) takeInstead() bool {
	return !b.limitInstead || b.instead.Add(-1) >= 0
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

// account is one account's share of a plan.
type account struct {
	key     string
	steps   []Step
	note    *identity.Account
	reduces bool
}

func groupByAccount(steps []Step, notes []identity.Account) []account {
	var out []account
	idx := map[string]int{}
	for _, s := range steps {
		i, ok := idx[s.Key]
		if !ok {
			i = len(out)
			idx[s.Key] = i
			out = append(out, account{key: s.Key})
		}
		out[i].steps = append(out[i].steps, s)
		out[i].reduces = out[i].reduces || s.Reduces()
	}
	for _, n := range notes {
		i, ok := idx[n.Key]
		if !ok {
			i = len(out)
			idx[n.Key] = i
			out = append(out, account{key: n.Key})
		}
		nn := n
		out[i].note = &nn
	}
	// Accounts losing access go first: a leaver is never queued behind
	// new hires.
	slices.SortStableFunc(out, func(a, b account) int {
		switch {
		case a.reduces == b.reduces:
			return 0
		case a.reduces:
			return -1
		}
		return 1
	})
	return out
}

func (e *Engine) applySteps(ctx context.Context, rc *runCtx, spec TargetSpec, steps []Step, notes []identity.Account, cached map[string]identity.Account, instead int) {
	name := spec.Target.Name()
	if e.o.Progress != nil {
		e.o.Progress.Planned(name, len(steps))
	}
	accts := groupByAccount(steps, notes)
	if len(accts) == 0 {
		return
	}
	br := &breaker{threshold: e.o.BreakerThreshold, limitInstead: instead >= 0}
	br.instead.Store(int32(instead))
	work := make(chan account)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg stdsync.WaitGroup
	for range max(spec.Config.Concurrency, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				if ctx.Err() != nil || stopped(rc.ro.Stop) {
					br.skipped.Add(int32(len(a.steps)))
					continue
				}
				if err := e.applyAccount(ctx, rc, spec, a, cached, br); errors.Is(err, state.ErrStaleFence) {
					rc.e.o.Logger.Error("leadership lost: stopping the run", zap.String("target", name), zap.Error(err))
					cancel()
				}
			}
		}()
	}
	for _, a := range accts {
		work <- a
	}
	close(work)
	wg.Wait()
	if br.open.Load() {
		why, _ := br.why.Load().(string)
		rc.mu.Lock()
		rc.partial = true
		rc.mu.Unlock()
		rc.decide(state.Decision{Target: name, User: "*", Action: "circuit_open", Outcome: OutcomeFailed,
			Reason: fmt.Sprintf("circuit breaker open: %s; %d remaining actions postponed to the next run (suspensions and other access removals were still attempted)", why, br.skipped.Load())})
	}
}

// applyAccount runs one account's steps in order. A step that fails or is
// skipped does not stop the others: each is independent, and each outcome
// is recorded by itself. Only a create that did not happen, an account
// found gone, a lost lease or a store that cannot record stop the rest.
func (e *Engine) applyAccount(ctx context.Context, rc *runCtx, spec TargetSpec, a account, cached map[string]identity.Account, br *breaker) error {
	name := spec.Target.Name()
	// Steps apply to the record as it stands, not to the Before the plan
	// chained for them: when an earlier step of the account is held, skipped
	// or filtered out (an approval), the later ones must not claim it.
	rec, ok := cached[a.key]
	if ok {
		rec = withoutPending(rec)
	} else if len(a.steps) > 0 {
		rec = a.steps[0].Before.Clone() // a write-only application's account, or a create
	}
	var failed []Step
	stop := false
	for _, s := range a.steps {
		if stop || stopped(rc.ro.Stop) || (br.open.Load() && !s.Reduces()) {
			br.skipped.Add(1)
			continue
		}
		next, err := e.applyStep(ctx, rc, spec, s, rec, br)
		rec = next
		switch {
		case err == nil:
		case errors.Is(err, state.ErrStaleFence):
			return err
		case errors.Is(err, errStopAccount):
			stop = true
		default:
			// Only what the application refused counts towards quarantine:
			// a step that failed for a transient cause (a 5xx, a timeout, a
			// rate limit) is retried every run, or a grant that kept
			// meeting faults would be given up with the run reported
			// converged (fault suite long form: ezeep groups never set).
			if connector.KindOf(err) == connector.KindPermanent {
				failed = append(failed, s)
			}
			if s.Action == connector.ActCreate {
				stop = true
			}
			if wait := connector.RetryAfterOf(err); wait > 0 && wait <= e.o.MaxRetryAfter && !br.open.Load() && !stop {
				// Rate limited to the last attempt: the account's next step
				// (often a read of the same path) waits the Retry-After.
				if serr := e.o.Sleep(ctx, wait); serr != nil {
					stop = true
				}
			}
		}
	}
	if len(failed) > 0 {
		if rec.Failing == nil {
			rec.Failing = map[string]int{}
		}
		for _, s := range failed {
			act := string(s.Action)
			rec.Failing[act]++
			if q := e.o.Limits.QuarantineAfter; q > 0 && rec.Failing[act] == q && !s.Reduces() {
				rc.decide(state.Decision{Target: name, User: displayUser(rec), Action: "quarantine", Outcome: OutcomeFailed,
					Reason: fmt.Sprintf("%s quarantined after failing in %d runs in a row: it is not retried until `dirsync sync --retry-quarantined`; suspensions and removals still are", act, q)})
			}
		}
		rec.Pending = ""
		if err := e.o.Store.PutAccount(context.WithoutCancel(ctx), e.targetFence(name), name, rec); err != nil {
			return err
		}
	}
	if a.note != nil && !stop {
		_, lists := spec.Target.(connector.Lister)
		writeOnly := !lists && !connector.Supports(spec.Target, connector.ActCreate)
		if n, changed := Settle(rec, *a.note, connector.Supports(spec.Target, connector.ActUpdate), writeOnly); changed {
			if err := e.o.Store.PutAccount(context.WithoutCancel(ctx), e.targetFence(name), name, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// errStopAccount ends an account's remaining steps: its outcome is decided
// and recorded (an account found gone, a create skipped, a store that
// cannot record).
var errStopAccount = errors.New("stop account")

// uncertainKind reports whether a failure of kind k may have left the
// action applied: the call was sent and its answer lost (a timeout, a
// dropped connection, a 5xx after the application acted).
func uncertainKind(k connector.Kind) bool {
	return k == connector.KindUncertain || k == connector.KindRetryable
}

// applyStep applies one step with retries and records it. rec is the
// account's record as it stands; it returns the new record and nil,
// errStopAccount, ErrStaleFence, or the step's error.
func (e *Engine) applyStep(ctx context.Context, rc *runCtx, spec TargetSpec, s Step, rec identity.Account, br *breaker) (identity.Account, error) {
	name := spec.Target.Name()
	fence := e.targetFence(name)
	want := s.After.Clone()
	want.Remote = mergeRemote(rec.Remote, want.Remote)
	before := rec.Clone()
	// Record the intent first: if the store cannot take it, nothing is sent.
	intent := rec.Clone()
	intent.Pending = string(s.Action)
	if err := e.o.Store.PutAccount(ctx, fence, name, intent); err != nil {
		rc.decide(state.Decision{Target: name, User: s.User, Action: string(s.Action), Reason: s.Reason, Outcome: OutcomeFailed,
			Error: "not sent: the state store cannot record it: " + err.Error()})
		if errors.Is(err, state.ErrStaleFence) {
			return rec, err
		}
		return rec, errStopAccount
	}
	start := time.Now()
	lim := e.limiter(spec)
	timeout := spec.Config.Timeout.D()
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	pol := retryPolicy{attempts: max(spec.Config.MaxAttempts, 1), base: e.o.RetryBase, maxRetryAfter: e.o.MaxRetryAfter, sleep: e.o.Sleep, uncertain: true}
	if br.open.Load() && s.Reduces() {
		pol.attempts = 1
	}
	reader, canRead := spec.Target.(connector.Reader)
	// A one-shot action (force password change) is not retried within the
	// run after an answer lost after sending (a timeout, a dropped
	// connection, a 5xx): where the application can be read the re-read
	// tells; otherwise its landing is unknown and the next run sends it
	// again (invariant 4: a duplicate asks twice, a lost one leaves a
	// password the directory wanted changed in use).
	if s.Action == connector.ActForcePasswordChange {
		pol.final = func(err error) bool { return uncertainKind(connector.KindOf(err)) }
	}
	// mayHaveLanded: some attempt's answer was lost after sending; whatever
	// a later attempt answers, the action may have happened.
	mayHaveLanded := false
	// What the connector says about how it carried the action out (a far
	// date sent for a cleared expiry, the policies a deletion took) goes
	// into the decision.
	nctx, notes := connector.WithNotes(ctx)
	r := pol.doWait(ctx, func() (time.Duration, error) {
		if err := lim.Wait(ctx); err != nil {
			return 0, connector.Retryable(err)
		}
		if !e.leadingFor(name) {
			// The lease ran out (this process was frozen, or cut off from
			// the store): another replica may be leader. Send nothing.
			return 0, connector.Permanent(fmt.Errorf("not sent: %w", state.ErrStaleFence))
		}
		actx, cancel := context.WithTimeout(nctx, timeout)
		acct := want.Clone()
		if s.Action == connector.ActCreate && s.Role != "" {
			acct.Role = s.Role // what the person will be: some applications decide at create
		}
		err := connector.Do(actx, spec.Target, s.Action, before, &acct)
		cancel()
		if err == nil {
			want.Remote = mergeRemote(want.Remote, acct.Remote)
			return 0, nil
		}
		if uncertainKind(connector.KindOf(err)) {
			mayHaveLanded = true
		}
		if connector.KindOf(err) == connector.KindUncertain && canRead {
			probe := want.Clone() // the account as it should be: a create leaves rec nearly empty
			got, rerr := reader.Read(ctx, probe)
			if s.Action == connector.ActDelete && connector.KindOf(rerr) == connector.KindNotFound {
				return 0, nil // the delete landed
			}
			if rerr == nil && landed(s.Action, got, want) {
				want.Remote = mergeRemote(want.Remote, got.Remote)
				return 0, nil
			}
			return connector.RetryAfterOf(rerr), err // the re-read was rate limited: honour it too
		}
		return 0, err
	})
	err := r.err
	if r.tooLong > 0 {
		br.trip(fmt.Sprintf("rate limited with Retry-After %s", r.tooLong))
	}
	dur := time.Since(start)
	d := state.Decision{Target: name, User: s.User, Action: string(s.Action), Reason: s.Reason + rc.approvedBy(), Attempt: r.attempts, DurationMS: dur.Milliseconds()}
	if n := notes.String(); n != "" {
		d.Reason += "; " + n
	}
	k := connector.KindOf(err)
	record := func(next identity.Account) error {
		return e.o.Store.PutAccount(context.WithoutCancel(ctx), fence, name, next)
	}
	switch {
	case err == nil:
		next := ApplyAction(rec, s.Action, want)
		d.Outcome = OutcomeApplied
		werr := record(next)
		if werr != nil {
			d.Error = "applied, but recording it failed (the next run re-reads or repeats it): " + werr.Error()
		}
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		br.result(true)
		switch {
		case werr == nil:
			return next, nil
		case errors.Is(werr, state.ErrStaleFence):
			return next, werr
		}
		return next, errStopAccount
	case errors.Is(err, state.ErrStaleFence) || errors.Is(err, connector.ErrNotLeading):
		d.Outcome, d.Error = OutcomeFailed, "leadership lost: "+err.Error()
		rc.decide(d)
		_ = record(rec) // clears the intent where the fence still allows
		return rec, state.ErrStaleFence
	case k == connector.KindSkipped:
		d.Outcome, d.Reason = OutcomeSkipped, s.Reason+"; skipped: "+err.Error()
		if mayHaveLanded {
			// Always said: an earlier attempt may have changed the account.
			d.Reason += "; an earlier attempt's answer was lost: it may have landed"
		}
		if rc.memo(name).fresh(stepID(s.Key, s.Action), d.Reason) || mayHaveLanded {
			rc.decide(d)
			e.countAction(name, s.Action, d.Outcome)
		}
		if mayHaveLanded { // an earlier attempt may have landed
			rec = assumeUncertain(withoutPending(rec), s.Action, want)
		}
		if werr := record(rec); werr != nil {
			return rec, werr
		}
		if s.Action == connector.ActCreate {
			return rec, errStopAccount
		}
		if s.Action == connector.ActDelete && connector.CauseOf(err) == connector.CauseImpossible {
			return e.suspendInstead(ctx, rc, spec, s, rec, err, br)
		}
		return rec, nil
	case k == connector.KindNotFound && s.Action == connector.ActDelete:
		next := ApplyAction(rec, connector.ActDelete, want)
		d.Outcome, d.Reason = OutcomeApplied, s.Reason+" (already absent in the application)"
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		_ = record(next)
		return next, nil
	case k == connector.KindNotFound && s.Action != connector.ActCreate:
		next := identity.Account{Key: s.Key, Failing: rec.Failing}
		d.Outcome, d.Reason, d.Error = OutcomeFailed, s.Reason+"; the account no longer exists in the application: forgotten, to be re-created or adopted next run", err.Error()
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		_ = record(next)
		return next, errStopAccount
	default:
		next := rec.Clone()
		next.Pending = ""
		if uncertainKind(k) || mayHaveLanded {
			next = assumeUncertain(next, s.Action, want)
		}
		if fs := connector.UnknownFields(err); len(fs) > 0 {
			// The connector says what its failure left unknown (an
			// Ezeelogin expiry that unsuspended before the re-suspension
			// failed): the next plan sends those fields again.
			next.Unknown = next.WithUnknown(fs...)
		}
		d.Outcome, d.Error = OutcomeFailed, err.Error()
		rc.decide(d)
		e.countAction(name, s.Action, d.Outcome)
		br.result(k == connector.KindPermanent) // a permanent error is the account's problem, not the target's
		if werr := record(next); werr != nil && errors.Is(werr, state.ErrStaleFence) {
			return next, werr
		}
		return next, fmt.Errorf("%s %s: %w", s.Action, s.User, err)
	}
}

// assumeUncertain records what an action whose outcome is unknown may have
// done: its field becomes unknown (the next plan sends the desired value
// whatever the cache says), a create is assumed to have happened (so the
// person is deprovisioned if they leave), and a one-shot action is taken as
// not fired, so the next plan sends it again (invariant 4: the safe side).
func assumeUncertain(rec identity.Account, act connector.Action, want identity.Account) identity.Account {
	switch act {
	case connector.ActForcePasswordChange:
		// Left as it was: not confirmed, so sent again.
	case connector.ActCreate:
		created := ApplyAction(rec, connector.ActCreate, want)
		created.Unknown = created.WithUnknown(identity.FieldExists, identity.FieldSuspended, identity.FieldRole, identity.FieldGroups, identity.FieldExpires)
		return created
	case connector.ActDelete:
		// Still there, as far as we know (the safe side: the delete is sent
		// again), but unknown.
		rec.Unknown = rec.WithUnknown(identity.FieldExists)
	default:
		if f := fieldOf(act); f != "" {
			rec.Unknown = rec.WithUnknown(f)
		}
	}
	return rec
}

func (e *Engine) countAction(tgt string, a connector.Action, outcome string) {
	if e.o.Metrics != nil {
		e.o.Metrics.Actions.WithLabelValues(tgt, string(a), outcome).Inc()
	}
}

func mergeRemote(a, b map[string]string) map[string]string {
	if len(b) == 0 {
		return maps.Clone(a)
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// landed reports whether an uncertain action is visible in the re-read account.
func landed(act connector.Action, got, want identity.Account) bool {
	switch act {
	case connector.ActSuspend, connector.ActUnsuspend:
		return got.Suspended == want.Suspended
	case connector.ActSetRole:
		return got.Role == want.Role
	case connector.ActSetGroups:
		return slices.Equal(identity.SortedSet(got.Groups), identity.SortedSet(want.Groups))
	case connector.ActCreate:
		return got.Exists || got.Email != ""
	case connector.ActForcePasswordChange:
		return got.MustChangePassword // an application that does not report it is asked again
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
