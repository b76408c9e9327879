package sync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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

// Run performs one run: read sources, build desired, diff, guard, apply,
// record. It returns an error only when nothing could be done; per-target
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
	err := rc.do(ctx, &run)
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
		if perr := e.o.Store.PutRun(context.WithoutCancel(ctx), run); perr != nil && err == nil {
			err = fmt.Errorf("sync: record run end: %w", perr)
		}
	}
	if e.o.Metrics != nil {
		e.o.Metrics.observeRun(run)
	}
	return res, err
}

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

func (rc *runCtx) do(ctx context.Context, run *state.Run) error {
	e := rc.e
	specs := e.o.Targets
	if len(rc.ro.Targets) > 0 {
		specs = nil
		for _, s := range e.o.Targets {
			if slices.Contains(rc.ro.Targets, s.Target.Name()) {
				specs = append(specs, s)
			}
		}
		if len(specs) == 0 {
			return fmt.Errorf("sync: no target named %s", strings.Join(rc.ro.Targets, ", "))
		}
	}
	snaps, srcErrs := rc.readSources(ctx, specs)
	for name, s := range snaps {
		run.Sources[name] = len(s.Users)
	}
	rc.holdRefusedSources(ctx)
	if len(snaps) == 0 && len(srcErrs) > 0 {
		var msgs []string
		for _, err := range srcErrs {
			msgs = append(msgs, err.Error())
		}
		slices.Sort(msgs)
		for _, s := range specs {
			rc.decide(state.Decision{Target: s.Target.Name(), User: "*", Action: "run", Outcome: OutcomeFailed,
				Reason: "no target touched: every source failed", Error: strings.Join(msgs, "; ")})
		}
		return fmt.Errorf("sync: every source failed: %s", strings.Join(msgs, "; "))
	}
	if err := rc.link(ctx, snaps); err != nil {
		return err
	}
	if rc.ro.Keys != nil {
		var k string
		if rc.persons, k = rc.resolveKeys(); k != "" {
			// A change about a record no read ever carried (deleted before
			// it was pulled) names nobody: every person is planned from the
			// stored reads instead.
			rc.decide(state.Decision{Target: "*", User: "*", Action: "full_run", Outcome: OutcomeApplied,
				Reason: fmt.Sprintf("the change to record %s could not be resolved to a person: every person is planned from the last reads", k)})
			rc.ro.Keys, rc.ro.UseStored = nil, true
		}
	}
	var wg stdsync.WaitGroup
	for _, spec := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc.runTarget(ctx, spec, snaps, srcErrs)
		}()
	}
	wg.Wait()
	if len(srcErrs) > 0 {
		rc.partial = true
	}
	return nil
}

// link places every record of every source into a person through the link
// table, and stores the new links (leader only). Sources not read in this
// run contribute their stored snapshot, so a record is never given a new
// person only because the source of its existing one failed to answer.
func (rc *runCtx) link(ctx context.Context, snaps map[string]*identity.Snapshot) error {
	e := rc.e
	links, err := e.o.Store.Links(ctx)
	if err != nil {
		return fmt.Errorf("sync: load link table: %w", err)
	}
	var all []*identity.Snapshot
	var names []string
	for _, src := range e.o.Sources {
		s, ok := snaps[src.Name()]
		if !ok {
			var err error
			if s, err = e.o.Store.GetSnapshot(ctx, src.Name()); err != nil {
				continue
			}
		}
		all = append(all, s)
		names = append(names, src.Name())
	}
	// Records the previous reads had and these do not: a record that moved
	// to another source in between keeps its person.
	var ghosts []identity.User
	present := map[string]bool{}
	for _, sn := range all {
		for _, u := range sn.Users {
			present[identity.RecordID(sn.Source, u.Key)] = true
		}
	}
	rc.mu.Lock()
	for _, prev := range rc.prev {
		for _, u := range prev.Users {
			if u.Source == "" {
				u.Source = prev.Source
			}
			if id := identity.RecordID(u.Source, u.Key); !present[id] && links[id] != "" {
				ghosts = append(ghosts, u)
			}
		}
	}
	rc.mu.Unlock()
	l := identity.LinkWith(e.o.JoinKey, links, ghosts, all...)
	rc.links, rc.linked, rc.linkedFrom = l.Links, l, names
	if len(l.New) > 0 && !rc.ro.NoApply && !rc.ro.DryRun {
		if err := e.o.Store.PutLinks(ctx, e.o.Fence(), l.New); err != nil {
			return fmt.Errorf("sync: store link table: %w", err)
		}
	}
	return nil
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

// Prepared is a target's planning input and plan, before the guard.
type Prepared struct {
	Spec    TargetSpec
	Input   PlanInput
	Plan    Plan
	Desired map[string]Desired
}

func (rc *runCtx) prepare(ctx context.Context, spec TargetSpec, snaps map[string]*identity.Snapshot) (*Prepared, error) {
	e := rc.e
	name := spec.Target.Name()
	var ordered []*identity.Snapshot
	for _, n := range rc.sourcesFor(spec) {
		ordered = append(ordered, snaps[n])
	}
	// Every record is linked already (rc.link ran over all sources): a
	// target of every source takes that result as is; another target only
	// gathers its sources' records into their people.
	linked := rc.linked
	if len(ordered) != len(rc.linkedFrom) || !slices.Equal(rc.sourcesFor(spec), rc.linkedFrom) {
		linked = identity.Link(e.o.JoinKey, rc.links, ordered...)
	}
	users := linked.Users
	rules := RulesFrom(spec.Config)
	desired := BuildDesired(users, rules, rc.now)
	cached, err := e.o.Store.Accounts(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load cached accounts: %w", err)
	}
	if !rc.ro.NoApply {
		if err := e.open(ctx, spec.Target); err != nil {
			return nil, err
		}
	}
	var keys map[string]bool
	if rc.ro.Keys != nil {
		keys = maps.Clone(rc.persons)
	}
	known := make(map[string]identity.User, len(users))
	for _, u := range users {
		known[u.Key] = u
	}
	if keys != nil {
		rc.alsoTheirOldAccounts(keys, known, cached)
	}
	var orphans []Step
	if rc.ro.Reconcile && !rc.ro.NoApply {
		if l, ok := spec.Target.(connector.Lister); ok {
			if orphans, err = rc.readBack(ctx, spec, l, desired, known, cached); err != nil {
				return nil, err
			}
		} else {
			rc.cannotReconcile(name)
		}
	}
	if err := rc.reconcile(ctx, spec.Target, desired, cached, keys); err != nil {
		return nil, err
	}
	capab := CapabilityOf(spec.Target)
	if len(spec.Config.Order) > 0 {
		capab.Order = nil
		for _, a := range spec.Config.Order {
			capab.Order = append(capab.Order, connector.Action(a))
		}
	}
	in := PlanInput{Target: name, Cap: capab, Rules: rules, Desired: desired, Cached: cached, Keys: keys,
		Known: known, Now: rc.now, QuarantineAfter: e.o.Limits.QuarantineAfter, RetryQuarantined: rc.ro.RetryQuarantined,
		Fresh: rc.ro.Keys == nil && !rc.ro.UseStored}
	plan := MakePlan(in)
	for _, s := range orphans {
		// Orphans pass the connector's gate like any step: the owner of
		// dirsync's token, the super-admin and protected accounts are
		// never acted on.
		if capab.Gate != nil {
			if why := capab.Gate(s.Action, s.Before); why != "" {
				s.Reason += "; skipped: " + why
				plan.Skips = append(plan.Skips, s)
				continue
			}
		}
		plan.Steps = append(plan.Steps, s)
	}
	for _, c := range linked.Conflicts {
		if keys != nil && !keys[c.Record] && !slices.ContainsFunc(c.With, func(w string) bool { return keys[w] }) {
			continue
		}
		named := func(id string) string {
			if n := c.Names[id]; n != "" {
				return fmt.Sprintf("%s (%s)", id, n)
			}
			return id
		}
		var with []string
		for _, w := range c.With {
			with = append(with, named(w))
		}
		user := c.Names[c.Record]
		if user == "" {
			user = c.Record
		}
		plan.Skips = append(plan.Skips, Step{Target: name, Key: c.Record, User: user, Action: "link",
			Reason: fmt.Sprintf("conflict: %s and %s would join as one person (%s %s); %s is not merged and is left out until the directory tells them apart",
				named(c.Record), strings.Join(with, ", "), e.o.JoinKey, c.Value, c.Record)})
	}
	// The clock: the next expiry or delayed deletion of this target, from
	// every person (not only a targeted run's).
	var d dueAt
	if at, ks, ok := NextExpiry(desired, rc.now); ok {
		d = dueAt{at: at, keys: ks}
	}
	if at, ok := NextDeletion(cached, rules, rc.now); ok && (d.at.IsZero() || at.Before(d.at)) {
		d = dueAt{at: at}
	}
	if !rc.ro.NoApply && !rc.ro.DryRun {
		e.setDue(name, d)
	}
	return &Prepared{Spec: spec, Input: in, Plan: plan, Desired: desired}, nil
}

// alsoTheirOldAccounts adds to a targeted run the accounts of people no
// source knows any more that carry the username or email of a person the
// run is about: a person who comes back under a new identity also settles
// what their old accounts still owe (a deletion declined earlier).
func (rc *runCtx) alsoTheirOldAccounts(keys map[string]bool, known map[string]identity.User, cached map[string]identity.Account) {
	names := map[string]bool{}
	for k := range keys {
		if u, ok := known[k]; ok {
			for _, v := range []string{u.Username, u.Email} {
				if v != "" {
					names[strings.ToLower(v)] = true
				}
			}
		}
	}
	if len(names) == 0 {
		return
	}
	for k, c := range cached {
		if _, isKnown := known[k]; isKnown || !c.Exists || keys[k] {
			continue
		}
		if names[strings.ToLower(c.Username)] || (c.Email != "" && names[strings.ToLower(c.Email)]) {
			keys[k] = true
		}
	}
}

// resolveKeys turns a targeted run's keys (source record keys, or person
// ids) into the people they belong to, in one pass over the link table.
// Keys no source carries any more (a deleted record) still name their
// linked person, and stay in the set (they may name a cached account).
// unresolved is a key that names no record and no person ("" when all do).
func (rc *runCtx) resolveKeys() (persons map[string]bool, unresolved string) {
	want := make(map[string]bool, len(rc.ro.Keys))
	persons = make(map[string]bool, len(rc.ro.Keys))
	for _, k := range rc.ro.Keys {
		want[k], persons[k] = true, true
	}
	found := map[string]bool{}
	for rec, pid := range rc.links {
		k := ""
		switch {
		case want[pid]:
			k = pid
		case want[rec]:
			k = rec
		default:
			if i := strings.IndexByte(rec, ':'); i >= 0 && want[rec[i+1:]] {
				k = rec[i+1:]
			}
		}
		if k != "" {
			persons[pid], found[k] = true, true
		}
	}
	for _, k := range rc.ro.Keys {
		if !found[k] {
			return persons, k
		}
	}
	return persons, ""
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

// reconcile fixes the cache before planning: accounts with an action in
// flight at a crash, or a field left unknown by an uncertain answer, are
// re-read from the application where it can be read; and on full runs
// accounts that exist in the application but not in the cache are adopted
// (matched by email, then username).
func (rc *runCtx) reconcile(ctx context.Context, t connector.Connector, desired map[string]Desired, cached map[string]identity.Account, keys map[string]bool) error {
	r, canRead := t.(connector.Reader)
	for k, c := range cached {
		if (c.Pending == "" && (len(c.Unknown) == 0 || !canRead)) || (keys != nil && !keys[k]) {
			continue
		}
		if !canRead {
			// A write-only application cannot be asked: an interrupted call
			// leaves its field unknown, so the plan sends the desired value
			// whichever way it points; a one-shot action is sent again.
			cached[k] = assumeUncertain(withoutPending(c), connector.Action(c.Pending), c)
			continue
		}
		var got identity.Account
		pol := retryPolicy{attempts: 4, base: rc.e.o.RetryBase, maxRetryAfter: rc.e.o.MaxRetryAfter, sleep: rc.e.o.Sleep}
		err := pol.do(ctx, func() error {
			var rerr error
			got, rerr = r.Read(ctx, c)
			return rerr
		}).err
		switch {
		case connector.KindOf(err) == connector.KindNotFound:
			cached[k] = identity.Account{Key: k, Failing: c.Failing}
		case err != nil:
			// One account that cannot be read back blocks no other step
			// (invariant 2): like a write-only application's, its fields
			// are taken as unknown, so the plan sends the desired values;
			// the stored record keeps its intent and is read again next run.
			what := c.Pending
			if what == "" {
				what = "uncertain answer"
			}
			rc.decide(state.Decision{Target: t.Name(), User: displayUser(c), Action: "re-read", Outcome: OutcomeFailed,
				Reason: fmt.Sprintf("re-read after an interrupted %s failed: the desired values are sent again", what), Error: err.Error()})
			cached[k] = assumeUncertain(withoutPending(c), connector.Action(c.Pending), c)
			continue
		default:
			cached[k] = rebase(c, got)
		}
		// What was read is confirmed by the application: record it, so the
		// account is not read again next run.
		if !rc.ro.DryRun && !rc.ro.NoApply {
			if err := rc.e.o.Store.PutAccount(ctx, rc.e.o.Fence(), t.Name(), cached[k]); err != nil {
				return fmt.Errorf("record %q as re-read: %w", c.Username, err)
			}
		}
	}
	l, ok := t.(connector.Lister)
	if !ok || rc.ro.Keys != nil || rc.ro.Reconcile {
		return nil // a reconcile run has read every account already
	}
	missing := 0
	gate, _ := t.(connector.Gater)
	for k, d := range desired {
		if c, ok := cached[k]; !ok || !c.Exists {
			// A person the target refuses to create (a name it cannot
			// take) is no reason to read the whole list every run.
			if gate != nil && gate.Gate(connector.ActCreate, d.Account) != "" {
				continue
			}
			missing++
		}
	}
	if missing == 0 {
		return nil
	}
	var list []identity.Account
	pol := retryPolicy{attempts: 4, base: rc.e.o.RetryBase, maxRetryAfter: rc.e.o.MaxRetryAfter, sleep: rc.e.o.Sleep}
	res := pol.do(ctx, func() error {
		var err error
		list, err = l.List(ctx)
		return err
	})
	if res.err != nil {
		return fmt.Errorf("list accounts: %w", res.err)
	}
	byEmail := map[string]identity.Account{}
	byName := map[string]identity.Account{}
	for _, a := range list {
		if a.Email != "" {
			byEmail[strings.ToLower(a.Email)] = a
		}
		if a.Username != "" {
			byName[a.Username] = a
		}
	}
	taken := map[string]bool{}
	for _, c := range cached {
		if c.Exists {
			taken[strings.ToLower(c.Email)] = true
		}
	}
	for k, d := range desired {
		if c, ok := cached[k]; ok && c.Exists {
			continue
		}
		a, ok := byEmail[strings.ToLower(d.Account.Email)]
		if !ok || d.Account.Email == "" {
			a, ok = byName[d.Account.Username]
		}
		if !ok || taken[strings.ToLower(a.Email)] {
			continue
		}
		a.Key, a.Exists = k, true
		a.Failing = cached[k].Failing
		cached[k] = a
		if !rc.ro.DryRun && !rc.ro.NoApply {
			if err := rc.e.o.Store.PutAccount(ctx, rc.e.o.Fence(), t.Name(), a); err != nil {
				return fmt.Errorf("adopt %q: %w", a.Username, err)
			}
		}
	}
	return nil
}

func withoutPending(c identity.Account) identity.Account {
	c = c.Clone()
	c.Pending = ""
	return c
}

// rebase takes from the application's account the fields an interrupted
// or uncertain action may have changed, so the plan repeats it only if it
// did not land. The application was read: nothing stays unknown.
func rebase(c, got identity.Account) identity.Account {
	n := c.Clone()
	act := connector.Action(c.Pending)
	n.Pending = ""
	fields := map[string]bool{}
	for _, f := range c.Unknown {
		fields[f] = true
	}
	if f := fieldOf(act); f != "" {
		fields[f] = true
	}
	if act == connector.ActCreate || act == connector.ActDelete || !n.Exists {
		n.Exists = true
		if got.Remote != nil {
			n.Remote = mergeRemote(n.Remote, got.Remote)
		}
		if act == connector.ActCreate {
			n.Email, n.Username, n.GivenName, n.FamilyName, n.DisplayName = got.Email, got.Username, got.GivenName, got.FamilyName, got.DisplayName
			fields[identity.FieldSuspended], fields[identity.FieldRole], fields[identity.FieldGroups] = true, true, true
		}
	}
	if fields[identity.FieldSuspended] {
		n.Suspended = got.Suspended
	}
	if fields[identity.FieldRole] {
		n.Role = got.Role
	}
	if fields[identity.FieldGroups] {
		n.Groups = got.Groups
	}
	if fields[identity.FieldExpires] {
		n.Expires = got.Expires
	}
	if fields[identity.FieldProfile] {
		n.Email, n.GivenName, n.FamilyName, n.DisplayName = got.Email, got.GivenName, got.FamilyName, got.DisplayName
	}
	if act == connector.ActForcePasswordChange {
		// What the application says: not set (or not reported) means the
		// interrupted call may never have been sent, so it is sent again.
		n.MustChangePassword = got.MustChangePassword
	}
	n.Unknown = nil
	return n
}

func (rc *runCtx) runTarget(ctx context.Context, spec TargetSpec, snaps map[string]*identity.Snapshot, srcErrs map[string]error) {
	name := spec.Target.Name()
	for _, s := range rc.sourcesFor(spec) {
		if err, bad := srcErrs[s]; bad {
			// A failed or refused source decides nothing new: its last good
			// read stands in for it, so what the target's other sources say
			// (a leaver) is still applied. Without one, nothing is done.
			stored, gerr := rc.e.o.Store.GetSnapshot(ctx, s)
			if gerr != nil || stored == nil {
				rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeSkipped,
					Reason: fmt.Sprintf("source %s failed and has no earlier good read: nothing changed in %s this run", s, name), Error: err.Error()})
				return
			}
			if len(rc.sourcesFor(spec)) == 1 {
				rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeSkipped,
					Reason: fmt.Sprintf("source %s failed: nothing changed in %s this run", s, name), Error: err.Error()})
				return
			}
			own := maps.Clone(snaps)
			own[s] = stored
			snaps = own
			rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeSkipped,
				Reason: fmt.Sprintf("source %s failed: its last good read (%s) stands in for it; what the other sources say is applied to %s",
					s, stored.TakenAt.UTC().Format(time.RFC3339), name), Error: err.Error()})
			continue
		}
		if snaps[s] == nil {
			rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeSkipped,
				Reason: fmt.Sprintf("source %s has no snapshot yet", s)})
			return
		}
	}
	p, err := rc.prepare(ctx, spec, snaps)
	if err != nil {
		rc.mu.Lock()
		rc.partial = true
		rc.mu.Unlock()
		rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeFailed,
			Reason: "could not plan this target; nothing changed in it", Error: fmt.Sprintf("%s: %v", name, err)})
		return
	}
	if rc.ro.onPrepared != nil {
		rc.ro.onPrepared(p)
	}
	rc.mu.Lock()
	rc.res.Plans = append(rc.res.Plans, p.Plan)
	rc.res.Fingerprints[name] = Fingerprint(p.Input.Cached)
	rc.mu.Unlock()
	if rc.ro.NoApply {
		return
	}
	var noted map[string]string
	if !rc.ro.DryRun && rc.ro.approval == nil {
		noted = rc.e.loadNoted(ctx, name)
	}
	rc.e.execute(ctx, rc, spec, p.Plan, p.Input.Cached, noted)
}

// Guarded splits a plan's steps into those to apply and those held by the
// safety guard, with the reason; held is empty when within limits. Per
// target, suspensions, deletions and access removals (a group removed, a
// role lowered) are each held when they exceed their absolute limit or
// their share of the target's accounts; a single one is never held by the
// percentage alone (on a small target one leaver is a large share, not a
// mass change). Only the kinds over their limit are held.
func Guarded(p Plan, l config.Limits) (apply, held []Step, why string) {
	kind := func(s Step) string {
		switch {
		case s.Action == connector.ActSuspend:
			return "suspensions"
		case s.Action == connector.ActDelete:
			return "deletions"
		case s.Removal && (s.Action == connector.ActSetGroups || s.Action == connector.ActSetRole):
			return "access removals"
		}
		return ""
	}
	count := map[string]int{}
	for _, s := range p.Steps {
		if k := kind(s); k != "" {
			count[k]++
		}
	}
	n := float64(max(p.Accounts, 1))
	over := func(count, abs int, pct float64, what string) string {
		switch {
		case count == 0:
			return ""
		case abs > 0 && count > abs:
			return fmt.Sprintf("%d %s > max %d", count, what, abs)
		case pct > 0 && count > 1 && float64(count)*100/n > pct:
			return fmt.Sprintf("%d %s = %.1f%% of %d accounts > max %.1f%%", count, what, float64(count)*100/n, p.Accounts, pct)
		}
		return ""
	}
	var reasons []string
	hold := map[string]bool{}
	for _, k := range []struct {
		what string
		abs  int
		pct  float64
	}{
		{"suspensions", l.MaxSuspend, l.MaxSuspendPercent},
		{"deletions", l.MaxDelete, l.MaxDeletePercent},
		{"access removals", l.MaxAccessRemoval, l.MaxAccessRemovalPercent},
	} {
		if r := over(count[k.what], k.abs, k.pct, k.what); r != "" {
			reasons = append(reasons, r)
			hold[k.what] = true
		}
	}
	if len(reasons) == 0 {
		return p.Steps, nil, ""
	}
	for _, s := range p.Steps {
		if hold[kind(s)] {
			held = append(held, s)
		} else {
			apply = append(apply, s)
		}
	}
	return apply, held, strings.Join(reasons, "; ")
}
