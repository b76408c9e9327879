// Package synctest is a harness for engine-level tests: an in-memory source
// whose users a test sets, a state store, a controllable clock, and an
// engine wired to the targets under test, with every decision captured.
// Connector packages use it for run-level scenario tests against their fakes.
package synctest

import (
	"context"
	"slices"
	stdsync "sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/target"
	"go.uber.org/zap"
)

// Source is an in-memory source whose users a test sets.
type Source struct {
	name  string
	mu    stdsync.Mutex
	users []identity.User
	err   error
	pulls int
}

// NewSource returns an empty source.
func NewSource(name string) *Source { return &Source{name: name} }

// Name implements source.Source.
func (s *Source) Name() string { return s.name }

// Set replaces the users the source returns.
func (s *Source) Set(users ...identity.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = slices.Clone(users)
}

// Fail makes the next pulls fail with err (nil to recover).
func (s *Source) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// Pulls returns how many times Pull was called.
func (s *Source) Pulls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pulls
}

// Pull implements source.Source.
func (s *Source) Pull(context.Context) (*identity.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls++
	if s.err != nil {
		return nil, s.err
	}
	out := make([]identity.User, len(s.users))
	for i, u := range s.users {
		if u.Source == "" {
			u.Source = s.name
		}
		out[i] = u
	}
	return &identity.Snapshot{Source: s.name, TakenAt: time.Now().UTC(), Users: out}, nil
}

// Clock is a settable clock.
type Clock struct {
	mu  stdsync.Mutex
	now time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Common returns target settings suited to tests: no rate limit, fast
// retries, suspend on deprovision. mods adjust them.
func Common(mods ...func(*config.TargetCommon)) config.TargetCommon {
	inc := true
	c := config.TargetCommon{IncludeInactive: &inc, Deprovision: config.Deprovision{Action: "suspend"}, Burst: 1,
		Concurrency: 4, Timeout: config.Duration(10 * time.Second), MaxAttempts: 4, Username: "username"}
	for _, m := range mods {
		m(&c)
	}
	return c
}

// Harness is an engine with its parts exposed.
type Harness struct {
	T testing.TB
	// Source is the first of Sources.
	Source *Source
	// Sources are the engine's sources in config order (precedence).
	Sources []*Source
	Store   state.Store
	Clock   *Clock
	Engine  *dsync.Engine
	Limits  config.Limits

	targets  []dsync.TargetSpec
	rec      *dsync.Recorder
	maxSleep time.Duration

	mu        stdsync.Mutex
	decisions []state.Decision
	waits     []time.Duration
}

// Options tune New.
type Options struct {
	Store  state.Store    // default memstore
	Limits *config.Limits // default config defaults
	Now    time.Time      // default 2026-11-23T10:00:00Z
	// Logger receives decision lines (default none).
	Logger *zap.Logger
	// MaxSleep caps each real retry sleep (default 2ms); the requested
	// durations are still recorded in Waits.
	MaxSleep time.Duration
	// Sources names the sources in config order (default one, "hr").
	Sources []string
}

// New builds a harness around targets.
func New(t testing.TB, targets []dsync.TargetSpec, o Options) *Harness {
	h := &Harness{T: t, Clock: &Clock{}, targets: targets}
	names := o.Sources
	if len(names) == 0 {
		names = []string{"hr"}
	}
	for _, n := range names {
		h.Sources = append(h.Sources, NewSource(n))
	}
	h.Source = h.Sources[0]
	h.Clock.Set(o.Now)
	if o.Now.IsZero() {
		h.Clock.Set(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	}
	h.Store = o.Store
	if h.Store == nil {
		h.Store = memstore.New(memstore.Options{JournalSize: 100000})
	}
	h.Limits = config.Safety{}.Limits()
	if o.Limits != nil {
		h.Limits = *o.Limits
	}
	h.maxSleep = o.MaxSleep
	if h.maxSleep == 0 {
		h.maxSleep = 2 * time.Millisecond
	}
	h.rec = dsync.NewRecorder(o.Logger, h.Store, func(d state.Decision) {
		h.mu.Lock()
		h.decisions = append(h.decisions, d)
		h.mu.Unlock()
	})
	h.Engine = h.NewEngine()
	return h
}

// Src returns the source named name; it fails the test if there is none.
func (h *Harness) Src(name string) *Source {
	h.T.Helper()
	for _, s := range h.Sources {
		if s.Name() == name {
			return s
		}
	}
	h.T.Fatalf("synctest: no source %q", name)
	return nil
}

// NewEngine builds another engine on the harness's sources, targets, store,
// clock and decision capture, as a restarted process or a second replica
// would be; mods adjust its options (a fence, a wrapped store).
func (h *Harness) NewEngine(mods ...func(*dsync.Options)) *dsync.Engine {
	srcs := make([]source.Source, len(h.Sources))
	for i, s := range h.Sources {
		srcs[i] = s
	}
	o := dsync.Options{
		Sources: srcs, Targets: h.targets, Store: h.Store, Recorder: h.rec, Limits: h.Limits,
		Now: h.Clock.Now, RetryBase: time.Millisecond, Sleep: h.sleep,
	}
	for _, m := range mods {
		m(&o)
	}
	return dsync.New(o)
}

// sleep records the wait asked for and sleeps at most maxSleep of it.
func (h *Harness) sleep(ctx context.Context, d time.Duration) error {
	h.mu.Lock()
	h.waits = append(h.waits, d)
	h.mu.Unlock()
	t := time.NewTimer(min(d, h.maxSleep))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Run runs the engine and fails the test on a run error.
func (h *Harness) Run(ro dsync.RunOptions) *dsync.Result {
	h.T.Helper()
	res, err := h.Engine.Run(context.Background(), ro)
	if err != nil {
		h.T.Fatalf("run: %v", err)
	}
	return res
}

// Decisions returns every decision so far.
func (h *Harness) Decisions() []state.Decision {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.decisions)
}

// DecisionsOf returns the decisions of one run.
func (h *Harness) DecisionsOf(runID string) []state.Decision {
	var out []state.Decision
	for _, d := range h.Decisions() {
		if d.RunID == runID {
			out = append(out, d)
		}
	}
	return out
}

// Waits returns every retry wait the engine asked for.
func (h *Harness) Waits() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.waits)
}

// Accounts returns the cached accounts of a target.
func (h *Harness) Accounts(tgt string) map[string]identity.Account {
	h.T.Helper()
	m, err := h.Store.Accounts(context.Background(), tgt)
	if err != nil {
		h.T.Fatalf("accounts: %v", err)
	}
	return m
}

// Spec pairs a target with settings.
func Spec(t target.Target, c config.TargetCommon) dsync.TargetSpec {
	return dsync.TargetSpec{Target: t, Config: c}
}

// User returns an active user with sensible defaults for key.
func User(key string, groups ...string) identity.User {
	return identity.User{Key: key, Username: key, Email: key + "@example.test", GivenName: "Given", FamilyName: key, Active: true, Groups: groups}
}
