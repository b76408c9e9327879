// Package monitor follows the health of every source and target from the
// engine's decisions and finished runs, and exports what the console, the
// dashboard and the alerting rules need: offboarding propagation time, held
// plans waiting, quarantined accounts, breaker state and the last success
// of each source, target and full run. It needs no engine hook: it reads
// decisions (the Recorder's callback), run records and the state store.
package monitor

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	stdsync "sync"
	"time"

	"github.com/dirsync/dirsync/state"
	"github.com/prometheus/client_golang/prometheus"
)

// Options build a Tracker.
type Options struct {
	Sources []string
	Targets []string
	// SourceKind maps a source name to how its changes arrive (scim, ldap,
	// file, ...); it labels the propagation histogram's trigger.
	SourceKind func(source string) string
	// FullInterval is the full run schedule's interval (for staleness).
	FullInterval    time.Duration
	QuarantineAfter int
	Now             func() time.Time
}

// Tracker is safe for concurrent use.
type Tracker struct {
	o Options
	m metrics

	mu      stdsync.Mutex
	sources map[string]*SourceState
	targets map[string]*TargetState
	// the run in progress in the daemon's worker, for propagation
	curTrigger  string
	curObserved time.Time
	curBreaker  map[string]string
	curFailed   map[string]string
	lastFull    time.Time
	held        []HeldInfo
	seeded      bool // last runs read from the journal after a start
}

// SourceState is what the tracker knows of a source.
type SourceState struct {
	Name          string
	LastSuccess   time.Time
	Users         int
	Failures      int // runs in a row that failed to read it
	LastError     string
	LastErrorTime time.Time
	LastChange    time.Time // last incremental change seen
	// WatchFailures counts the change watch's connection attempts that
	// failed since it last connected; WatchOK is when it last connected.
	WatchFailures int
	WatchOK       time.Time
}

// Failing is the number of failed reads in a row, by the way of reading
// that fails most: full pulls and polls (per run), or the change watch
// (per connection attempt). It is what the consecutive-failures metric and
// the console's traffic light show.
func (s SourceState) Failing() int { return max(s.Failures, s.WatchFailures) }

// TargetState is what the tracker knows of a target.
type TargetState struct {
	Name        string
	LastRun     time.Time
	LastSuccess time.Time
	Breaker     string // why it opened in the last run; empty when closed
	RunError    string // why the last run could not touch it
	Failed      int    // failed actions in the last run
	Accounts    int
	Quarantined int
	// LastReconcile is when a reconcile run (live accounts read back)
	// last finished for it.
	LastReconcile time.Time
}

// HeldInfo is one held plan as the store lists it.
type HeldInfo struct {
	RunID   string
	Created time.Time
	Targets []string
}

type metrics struct {
	propagation  *prometheus.HistogramVec
	heldWaiting  prometheus.Gauge
	heldOldest   prometheus.Gauge
	quarantined  *prometheus.GaugeVec
	breaker      *prometheus.GaugeVec
	srcSuccess   *prometheus.GaugeVec
	srcFailing   *prometheus.GaugeVec
	tgtSuccess   *prometheus.GaugeVec
	fullSuccess  prometheus.Gauge
	fullInterval prometheus.Gauge
}

// Metric names, for the dashboard and the rules (and their test).
const (
	MetricPropagation  = "dirsync_offboarding_propagation_seconds"
	MetricHeldWaiting  = "dirsync_held_plans_waiting"
	MetricHeldOldest   = "dirsync_held_plan_oldest_age_seconds"
	MetricQuarantined  = "dirsync_quarantined_accounts"
	MetricBreakerOpen  = "dirsync_circuit_breaker_open"
	MetricSourceOK     = "dirsync_source_last_success_timestamp_seconds"
	MetricSourceFail   = "dirsync_source_consecutive_failures"
	MetricTargetOK     = "dirsync_target_last_success_timestamp_seconds"
	MetricFullOK       = "dirsync_full_run_last_success_timestamp_seconds"
	MetricFullInterval = "dirsync_full_run_interval_seconds"
)

// New returns a Tracker with its collectors registered on reg.
func New(reg prometheus.Registerer, o Options) *Tracker {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SourceKind == nil {
		o.SourceKind = func(string) string { return "incremental" }
	}
	t := &Tracker{o: o, sources: map[string]*SourceState{}, targets: map[string]*TargetState{}}
	t.m = metrics{
		propagation: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: MetricPropagation,
			Help:    "Offboarding propagation: from the source change being observed to the application confirming the suspension or deletion, by trigger.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}}, []string{"trigger"}),
		heldWaiting:  prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricHeldWaiting, Help: "Held plans waiting for approval."}),
		heldOldest:   prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricHeldOldest, Help: "Age of the oldest held plan (0 when none)."}),
		quarantined:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricQuarantined, Help: "Accounts quarantined after repeated failures, per target."}, []string{"target"}),
		breaker:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricBreakerOpen, Help: "1 when the target's circuit breaker opened in its last run."}, []string{"target"}),
		srcSuccess:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricSourceOK, Help: "When each source was last read completely (Unix time)."}, []string{"source"}),
		srcFailing:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricSourceFail, Help: "Failed reads of the source in a row: runs that could not pull it, or connection attempts of its change watch since it last connected (the larger)."}, []string{"source"}),
		tgtSuccess:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: MetricTargetOK, Help: "When each target last finished a run without a failure (Unix time)."}, []string{"target"}),
		fullSuccess:  prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricFullOK, Help: "When the last full run finished ok (Unix time)."}),
		fullInterval: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricFullInterval, Help: "The full run schedule's interval."}),
	}
	reg.MustRegister(t.m.propagation, t.m.heldWaiting, t.m.heldOldest, t.m.quarantined, t.m.breaker,
		t.m.srcSuccess, t.m.srcFailing, t.m.tgtSuccess, t.m.fullSuccess, t.m.fullInterval)
	t.m.fullInterval.Set(o.FullInterval.Seconds())
	for _, s := range o.Sources {
		t.sources[s] = &SourceState{Name: s}
		t.m.srcFailing.WithLabelValues(s)
		t.m.srcSuccess.WithLabelValues(s)
	}
	for _, n := range o.Targets {
		t.targets[n] = &TargetState{Name: n}
		t.m.quarantined.WithLabelValues(n)
		t.m.breaker.WithLabelValues(n)
		t.m.tgtSuccess.WithLabelValues(n)
	}
	return t
}

// Trigger kinds for the propagation histogram.
const (
	TriggerFull   = "full"
	TriggerExpiry = "expiry"
)

// TriggerKind maps an engine trigger name to the propagation label.
func (t *Tracker) TriggerKind(trigger string) string {
	switch {
	case trigger == "expiry":
		return TriggerExpiry
	case strings.HasPrefix(trigger, "incremental:"):
		src := strings.TrimPrefix(trigger, "incremental:")
		if i := strings.IndexByte(src, ':'); i >= 0 {
			// "incremental:SOURCE:KIND": how the change arrived (syncrepl,
			// usn, notify, scim ...).
			if k := src[i+1:]; k == "scim" {
				return "scim_push"
			} else if k != "" {
				return k
			}
			src = src[:i]
		}
		return t.o.SourceKind(src)
	case trigger == "incremental":
		return "poll"
	}
	return TriggerFull
}

// RunStarting tells the tracker that the daemon is starting a run for
// trigger, whose cause was observed at observed (the change arriving, the
// expiry falling due; the run's start for full runs).
func (t *Tracker) RunStarting(trigger string, observed time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.curTrigger, t.curObserved = trigger, observed
	t.curBreaker, t.curFailed = map[string]string{}, map[string]string{}
	if strings.HasPrefix(trigger, "incremental:") {
		src, _, _ := strings.Cut(strings.TrimPrefix(trigger, "incremental:"), ":")
		if s := t.sources[src]; s != nil {
			s.LastChange = observed
		}
	}
}

// Watch records how a source's change watch fares: err nil when it
// (re)connected, else the failure of one connection attempt. A watch that
// cannot reconnect counts failures at once, so the source turns red and
// the consecutive-failures metric moves within seconds, though no run
// reads the source until the next full one.
func (t *Tracker) Watch(source string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sources[source]
	if s == nil {
		return
	}
	now := t.o.Now()
	if err == nil {
		s.WatchFailures, s.WatchOK = 0, now
	} else {
		s.WatchFailures++
		s.LastError, s.LastErrorTime = err.Error(), now
	}
	t.m.srcFailing.WithLabelValues(source).Set(float64(s.Failing()))
}

var sourceErr = regexp.MustCompile(`source ([^\s:]+): `)

// Decision sees every decision (the Recorder's callback). It must be cheap:
// it runs on the engine's goroutines.
func (t *Tracker) Decision(d state.Decision) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d.Outcome == "applied" && (d.Action == "suspend" || d.Action == "delete") && d.Trigger == t.curTrigger && !t.curObserved.IsZero() {
		if el := d.Time.Sub(t.curObserved); el >= 0 {
			t.m.propagation.WithLabelValues(t.TriggerKind(d.Trigger)).Observe(el.Seconds())
		}
	}
	if t.curBreaker == nil {
		t.curBreaker, t.curFailed = map[string]string{}, map[string]string{}
	}
	if tg := t.targets[d.Target]; tg != nil {
		tg.LastRun = d.Time
	}
	switch {
	case d.Action == "circuit_open":
		t.curBreaker[d.Target] = d.Reason
	case d.User == "*" && d.Action == "run" && (d.Outcome == "failed" || d.Outcome == "skipped"):
		t.curFailed[d.Target] = d.Reason
		for _, m := range sourceErr.FindAllStringSubmatch(d.Error, -1) {
			if s := t.sources[m[1]]; s != nil {
				s.LastError, s.LastErrorTime = d.Error, d.Time
			}
		}
	case d.Outcome == "failed":
		if _, ok := t.curFailed[d.Target]; !ok {
			t.curFailed[d.Target] = ""
		}
	}
}

// RunFinished updates source and target state from a finished run's record.
// Dry runs and plan-only runs change nothing.
func (t *Tracker) RunFinished(r state.Run) {
	if r.Status == "dry_run" || r.Status == "running" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := r.Finished
	if now.IsZero() {
		now = t.o.Now()
	}
	// Targeted runs ("incremental:SOURCE...") plan from the stored reads,
	// and so do expiry and approval runs: they say nothing of a source.
	// A poll ("incremental") reads every source like a full run.
	keyed := strings.HasPrefix(r.Trigger, "incremental:") || r.Trigger == "expiry" || strings.HasPrefix(r.Trigger, "approve")
	if !keyed {
		for name, s := range t.sources {
			if n, ok := r.Sources[name]; ok {
				s.LastSuccess, s.Users, s.Failures = now, n, 0
				t.m.srcSuccess.WithLabelValues(name).Set(float64(now.Unix()))
			} else if s.LastErrorTime.After(r.Started.Add(-time.Second)) || r.Status == "failed" {
				s.Failures++
			}
			t.m.srcFailing.WithLabelValues(name).Set(float64(s.Failing()))
		}
		if r.Trigger != "incremental" && (r.Status == "ok" || r.Status == "held") {
			t.lastFull = now
			t.m.fullSuccess.Set(float64(now.Unix()))
		}
	}
	for name, tg := range t.targets {
		why, open := t.curBreaker[name]
		if open {
			tg.Breaker = why
			t.m.breaker.WithLabelValues(name).Set(1)
		} else {
			tg.Breaker = ""
			t.m.breaker.WithLabelValues(name).Set(0)
		}
		fail, failed := t.curFailed[name]
		tg.RunError = fail
		if r.Trigger == "reconcile" && !failed && r.Status != "failed" {
			tg.LastReconcile = now
		}
		if !failed && r.Status != "failed" {
			tg.LastSuccess = now
			t.m.tgtSuccess.WithLabelValues(name).Set(float64(now.Unix()))
		}
	}
	t.curBreaker, t.curFailed, t.curTrigger, t.curObserved = map[string]string{}, map[string]string{}, "", time.Time{}
}

// Refresh reloads what lives in the store: held plans (through held, which
// reads them in the engine's format), account counts and quarantined
// accounts.
func (t *Tracker) Refresh(ctx context.Context, st state.Store, held func(ctx context.Context) ([]HeldInfo, error)) error {
	hs, err := held(ctx)
	if err != nil {
		return fmt.Errorf("monitor: held plans: %w", err)
	}
	t.seedLastRuns(ctx, st)
	counts := map[string][2]int{}
	for _, name := range t.o.Targets {
		accts, err := st.Accounts(ctx, name)
		if err != nil {
			return fmt.Errorf("monitor: accounts of %s: %w", name, err)
		}
		n, q := 0, 0
		for _, a := range accts {
			if a.Exists {
				n++
			}
			if quarantined(a.Failing, t.o.QuarantineAfter) {
				q++
			}
		}
		counts[name] = [2]int{n, q}
	}
	for _, name := range t.o.Sources {
		if snap, err := st.GetSnapshot(ctx, name); err == nil {
			t.mu.Lock()
			if s := t.sources[name]; s != nil && snap.TakenAt.After(s.LastSuccess) {
				s.LastSuccess, s.Users = snap.TakenAt, len(snap.Users)
				t.m.srcSuccess.WithLabelValues(name).Set(float64(snap.TakenAt.Unix()))
			}
			t.mu.Unlock()
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.held = hs
	for name, c := range counts {
		if tg := t.targets[name]; tg != nil {
			tg.Accounts, tg.Quarantined = c[0], c[1]
		}
		t.m.quarantined.WithLabelValues(name).Set(float64(c[1]))
	}
	t.updateHeldLocked()
	return nil
}

// seedLastRuns fills, once, each target's last run from the journal: a
// restarted daemon shows when a target was last run, not "never".
func (t *Tracker) seedLastRuns(ctx context.Context, st state.Store) {
	t.mu.Lock()
	if t.seeded {
		t.mu.Unlock()
		return
	}
	t.seeded = true
	t.mu.Unlock()
	for _, name := range t.o.Targets {
		ds, err := st.Decisions(ctx, state.DecisionQuery{Target: name, Limit: 1})
		if err != nil || len(ds) == 0 {
			continue
		}
		t.mu.Lock()
		if tg := t.targets[name]; tg != nil && tg.LastRun.IsZero() {
			tg.LastRun = ds[len(ds)-1].Time
		}
		t.mu.Unlock()
	}
}

func (t *Tracker) updateHeldLocked() {
	t.m.heldWaiting.Set(float64(len(t.held)))
	var oldest time.Duration
	for _, h := range t.held {
		if !h.Created.IsZero() {
			oldest = max(oldest, t.o.Now().Sub(h.Created))
		}
	}
	t.m.heldOldest.Set(oldest.Seconds())
}

// Tick recomputes time-based gauges (the oldest held plan's age).
func (t *Tracker) Tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.updateHeldLocked()
}

// Snapshot returns copies of the sources, targets and held plans, sorted by name.
func (t *Tracker) Snapshot() ([]SourceState, []TargetState, []HeldInfo, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ss []SourceState
	for _, n := range t.o.Sources {
		ss = append(ss, *t.sources[n])
	}
	var ts []TargetState
	for _, n := range t.o.Targets {
		ts = append(ts, *t.targets[n])
	}
	return ss, ts, slices.Clone(t.held), t.lastFull
}

// quarantined reports whether any action of an account failed in limit runs
// in a row (the engine then stops retrying that action).
func quarantined(failing map[string]int, limit int) bool {
	if limit <= 0 {
		return false
	}
	for _, n := range failing {
		if n >= limit {
			return true
		}
	}
	return false
}
