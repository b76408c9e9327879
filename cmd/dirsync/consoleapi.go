package main

// The console's adapter to the engine: the only file that knows both
// console.Backend and the engine's API (HeldPlans, Recheck, the re-validated
// Approve with its approver, Discard, Explain).

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/console"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/monitor"
	"github.com/dirsync/dirsync/report"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"go.uber.org/zap"
)

// consoleAPI implements console.Backend on the app's engine and store.
type consoleAPI struct {
	a *app
	// The plan index the person and held-plan pages read (one plan-only
	// run over the stored reads per change, built in the background), and
	// the generation and reads it was made from.
	ixMu       sync.Mutex
	ix         *dsync.PlanIndex
	ixGen      int64
	ixReads    time.Time
	ixBuilt    time.Time // when the run it came from started
	ixBuilding bool
	// leader describes this replica's role; leading says whether it may
	// apply (approve, discard).
	leader  func() string
	leading func() bool
	// handOver, when set, passes an approval's (or discard's) other
	// targets to their holders (state.leases: per_target).
	handOver func(context.Context, request)
}

var _ console.Backend = (*consoleAPI)(nil)

func (c *consoleAPI) Runs(ctx context.Context, limit int) ([]state.Run, error) {
	return c.a.store.Runs(ctx, limit)
}

func (c *consoleAPI) Run(ctx context.Context, id string) (state.Run, error) {
	return c.a.store.GetRun(ctx, id)
}

func (c *consoleAPI) Decisions(ctx context.Context, q state.DecisionQuery) ([]state.Decision, error) {
	return c.a.store.Decisions(ctx, q)
}

// heldOfRun returns a run's held plans (one per target, or its refused
// sources). id is a run id, or a stored "RUN/TARGET" key.
func (c *consoleAPI) heldOfRun(ctx context.Context, id string) ([]dsync.HeldPlan, error) {
	all, err := c.a.engine.HeldPlans(ctx)
	if err != nil {
		return nil, err
	}
	var out []dsync.HeldPlan
	for _, hp := range all {
		if hp.RunID == id || hp.ID == id {
			out = append(out, hp)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no held plan for run %s (approved or discarded already?): %w", id, console.ErrUnknown)
	}
	return out, nil
}

// heldView merges one run's held plans into the console's view; wanted,
// when set, marks the steps a plan made now still wants.
func heldView(hps []dsync.HeldPlan, wanted map[string]bool) console.Held {
	h := console.Held{RunID: hps[0].RunID, Created: hps[0].Created, Rechecked: wanted != nil}
	var reasons []string
	for _, hp := range hps {
		if hp.Created.Before(h.Created) {
			h.Created = hp.Created
		}
		if hp.Reason != "" && !slices.Contains(reasons, hp.Reason) {
			reasons = append(reasons, hp.Reason)
		}
		for src, why := range hp.Sources {
			h.Targets = append(h.Targets, "source "+src)
			reasons = append(reasons, why)
		}
		for _, p := range hp.Plans {
			h.Targets = append(h.Targets, p.Target)
			for _, s := range p.Steps {
				h.Steps = append(h.Steps, console.Step{Target: p.Target, User: s.User, Action: string(s.Action), Reason: s.Reason,
					Wanted: wanted[p.Target+"\x00"+s.Key+"/"+string(s.Action)]})
			}
		}
	}
	h.Reason = strings.Join(reasons, "; ")
	return h
}

// byRun groups held plans by run, newest run first.
func byRun(all []dsync.HeldPlan) [][]dsync.HeldPlan {
	idx := map[string]int{}
	var out [][]dsync.HeldPlan
	for _, hp := range all {
		i, ok := idx[hp.RunID]
		if !ok {
			i = len(out)
			idx[hp.RunID] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], hp)
	}
	slices.SortFunc(out, func(a, b []dsync.HeldPlan) int { return strings.Compare(b[0].RunID, a[0].RunID) })
	return out
}

func (c *consoleAPI) HeldPlans(ctx context.Context) ([]console.Held, error) {
	all, err := c.a.engine.HeldPlans(ctx)
	if err != nil {
		return nil, err
	}
	var out []console.Held
	for _, hps := range byRun(all) {
		out = append(out, heldView(hps, nil))
	}
	return out, nil
}

// heldInfos is what the monitor needs of the held plans.
func (c *consoleAPI) heldInfos(ctx context.Context) ([]monitor.HeldInfo, error) {
	all, err := c.a.engine.HeldPlans(ctx)
	if err != nil {
		return nil, err
	}
	var out []monitor.HeldInfo
	for _, hps := range byRun(all) {
		h := heldView(hps, nil)
		out = append(out, monitor.HeldInfo{RunID: h.RunID, Created: h.Created, Targets: h.Targets})
	}
	return out, nil
}

// indexLimit bounds the people the plan index is kept for (memory); past
// it every view plans from the stored reads itself.
const indexLimit = 200_000

// index returns the plan index and the reads it was made from. A stale
// one (runs finished since) is returned as it is while a new one is built
// in the background; none is built now, once.
func (c *consoleAPI) index(ctx context.Context) (*dsync.PlanIndex, time.Time, error) {
	return c.indexSince(ctx, time.Time{})
}

// indexSince is index, rebuilt now when it is stale and older than since
// (a held plan made after the index would read as unwanted).
func (c *consoleAPI) indexSince(ctx context.Context, since time.Time) (*dsync.PlanIndex, time.Time, error) {
	if c.a.mon != nil {
		srcs, _, _, _ := c.a.mon.Snapshot()
		n := 0
		for _, s := range srcs {
			n += s.Users
		}
		if n > indexLimit {
			return nil, time.Time{}, nil
		}
	}
	c.ixMu.Lock()
	ix, reads, stale := c.ix, c.ixReads, c.ixGen != c.a.gen.Load() && c.ixBuilt.Before(since)
	c.ixMu.Unlock()
	if ix != nil && !stale {
		c.warm()
		return ix, reads, nil
	}
	return c.build(ctx)
}

// indexEvery bounds how often the index is rebuilt in the background: a
// daemon re-reading its sources every few seconds does not plan twice as
// much for the console; pages show the age of the reads they use.
const indexEvery = 30 * time.Second

// warm rebuilds the index in the background when a run, approval or
// discard happened since it was built, at most once per indexEvery.
func (c *consoleAPI) warm() {
	c.ixMu.Lock()
	defer c.ixMu.Unlock()
	if c.ixBuilding || (c.ix != nil && (c.ixGen == c.a.gen.Load() || time.Since(c.ixBuilt) < indexEvery)) {
		return
	}
	c.ixBuilding = true
	go func() {
		if _, _, err := c.build(context.Background()); err != nil {
			c.a.log.Debug("console: plan index", zap.Error(err))
		}
		c.ixMu.Lock()
		c.ixBuilding = false
		c.ixMu.Unlock()
	}()
}

func (c *consoleAPI) build(ctx context.Context) (*dsync.PlanIndex, time.Time, error) {
	gen, reads, started := c.a.gen.Load(), c.readsAt(), time.Now()
	ix, err := c.a.engine.IndexPlan(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	c.ixMu.Lock()
	defer c.ixMu.Unlock()
	if c.ix == nil || gen >= c.ixGen {
		c.ix, c.ixGen, c.ixReads, c.ixBuilt = ix, gen, reads, started
	}
	return ix, reads, nil
}

func (c *consoleAPI) Recheck(ctx context.Context, runID string) (console.Held, error) {
	hps, err := c.heldOfRun(ctx, runID)
	if err != nil {
		return console.Held{}, err
	}
	var checks []dsync.HeldCheck
	var newest time.Time
	for _, hp := range hps {
		if hp.Created.After(newest) {
			newest = hp.Created
		}
	}
	ix, reads, err := c.indexSince(ctx, newest.Add(time.Second))
	if err != nil {
		return console.Held{}, err
	}
	if ix != nil {
		for _, hp := range hps {
			checks = append(checks, ix.WantedOf(hp))
		}
	} else if checks, err = c.a.engine.RecheckStored(ctx, runID); err != nil {
		return console.Held{}, err
	} else {
		reads = c.readsAt()
	}
	wanted := map[string]bool{}
	for _, hc := range checks {
		for _, p := range hc.Held.Plans {
			for k, w := range hc.Wanted {
				wanted[p.Target+"\x00"+k] = w
			}
		}
	}
	h := heldView(hps, wanted)
	h.ReadsAt = reads
	return h, nil
}

// readsAt is when the oldest of the sources' stored reads was made (the
// re-check and explain plan from them).
func (c *consoleAPI) readsAt() time.Time {
	if c.a.mon == nil {
		return time.Time{}
	}
	srcs, _, _, _ := c.a.mon.Snapshot()
	var at time.Time
	for _, s := range srcs {
		if !s.LastSuccess.IsZero() && (at.IsZero() || s.LastSuccess.Before(at)) {
			at = s.LastSuccess
		}
	}
	return at
}

// approvals follows approvals running in the background: the console's
// Approve answers at once and its page shows how far the approval got
// (decisions of the "approve:RUN" run counted as they are recorded).
type approvals struct {
	mu sync.Mutex
	m  map[string]*console.Approval // by held run id
}

// decision counts one decision of a running approval (the Recorder's callback).
func (as *approvals) decision(d state.Decision) {
	id, ok := strings.CutPrefix(d.Trigger, "approve:")
	if !ok || d.User == "*" {
		return
	}
	as.mu.Lock()
	defer as.mu.Unlock()
	if ap := as.m[id]; ap != nil && ap.Finished.IsZero() {
		ap.Done++
	}
}

// start registers an approval; false when one of runID is still running.
func (as *approvals) start(runID string, ap *console.Approval) bool {
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.m == nil {
		as.m = map[string]*console.Approval{}
	}
	if cur := as.m[runID]; cur != nil && cur.Finished.IsZero() {
		return false
	}
	as.m[runID] = ap
	return true
}

func (as *approvals) finish(runID string, f func(ap *console.Approval)) {
	as.mu.Lock()
	defer as.mu.Unlock()
	if ap := as.m[runID]; ap != nil {
		f(ap)
		ap.Finished = time.Now()
	}
}

func (as *approvals) get(runID string) (console.Approval, bool) {
	as.mu.Lock()
	defer as.mu.Unlock()
	ap := as.m[runID]
	if ap == nil {
		return console.Approval{}, false
	}
	return *ap, true
}

// Approve releases a held run through the engine, which re-plans now and
// applies only the held steps still wanted; its decisions name by. It
// answers at once: the approval runs in the background and Approval says
// how far it got.
func (c *consoleAPI) Approve(ctx context.Context, runID string, only []string, by string) (console.ApproveResult, error) {
	if c.leading != nil && !c.leading() {
		return console.ApproveResult{}, fmt.Errorf("this replica is not the leader (%s): approve on the leader", c.leader())
	}
	hps, err := c.heldOfRun(ctx, runID)
	if err != nil {
		return console.ApproveResult{}, err
	}
	var acts []connector.Action
	for _, o := range only {
		acts = append(acts, connector.Action(o))
	}
	if c.handOver != nil {
		c.handOver(ctx, request{Op: "approve", RunID: runID, Only: acts, By: by})
	}
	total := 0
	for _, st := range heldView(hps, nil).Steps {
		if len(acts) == 0 || slices.Contains(acts, connector.Action(st.Action)) {
			total++
		}
	}
	if !c.a.approvals.start(runID, &console.Approval{HeldRun: runID, By: by, Total: total, Started: time.Now()}) {
		return console.ApproveResult{Status: "started"}, nil // already running: show it
	}
	go func() {
		res, err := c.a.engine.Approve(context.WithoutCancel(ctx), dsync.ApproveRequest{RunID: runID, Only: acts, By: by})
		c.a.gen.Add(1)
		c.a.approvals.finish(runID, func(ap *console.Approval) {
			if res != nil {
				ap.RunID, ap.Status = res.RunID, res.Status
			}
			if err != nil {
				c.a.log.Error("console: approval failed", zap.String("run_id", runID), zap.Error(err))
				ap.Err = "the approval failed; the daemon's log says why"
			}
		})
	}()
	return console.ApproveResult{Status: "started"}, nil
}

// Approval is the state of the console's last approval of runID.
func (c *consoleAPI) Approval(_ context.Context, runID string) (console.Approval, error) {
	ap, ok := c.a.approvals.get(runID)
	if !ok {
		return console.Approval{}, fmt.Errorf("no approval of %s: %w", runID, console.ErrUnknown)
	}
	return ap, nil
}

// Discard drops a held run; a decision names by.
func (c *consoleAPI) Discard(ctx context.Context, runID, by string) error {
	if c.leading != nil && !c.leading() {
		return fmt.Errorf("this replica is not the leader (%s): discard on the leader", c.leader())
	}
	defer c.a.gen.Add(1)
	if c.handOver != nil {
		c.handOver(ctx, request{Op: "discard", RunID: runID, By: by})
	}
	return c.a.engine.Discard(ctx, runID, by)
}

func (c *consoleAPI) Explain(ctx context.Context, who string) ([]console.Explanation, error) {
	ix, reads, err := c.index(ctx)
	if err != nil {
		return nil, err
	}
	var xs []dsync.Explanation
	if ix != nil {
		key, ok := ix.Names[who]
		if !ok {
			key = ix.Names[strings.ToLower(who)]
		}
		xs = ix.ByKey[key]
	} else {
		reads = c.readsAt()
		if xs, err = c.a.engine.Explain(ctx, who, dsync.RunOptions{UseStored: true, Trigger: "explain"}); err != nil {
			return nil, err
		}
	}
	steps := func(ss []dsync.Step) []console.Step {
		var out []console.Step
		for _, s := range ss {
			out = append(out, console.Step{Target: s.Target, User: s.User, Action: string(s.Action), Reason: s.Reason, Wanted: true})
		}
		return out
	}
	var out []console.Explanation
	for _, x := range xs {
		out = append(out, console.Explanation{Target: x.Target, User: x.User, InScope: x.InScope, Why: x.Why, RoleWhy: x.RoleWhy,
			Desired: x.Desired, Cached: x.Cached, Steps: steps(x.Steps), Skips: steps(x.Skips), ReadsAt: reads})
	}
	slices.SortFunc(out, func(a, b console.Explanation) int { return strings.Compare(a.Target, b.Target) })
	return out, nil
}

func (c *consoleAPI) Overview(ctx context.Context) (console.Overview, error) {
	held, err := c.heldInfos(ctx)
	if err != nil {
		return console.Overview{}, err
	}
	return overviewOf(c.a.mon, c.a.cfg, c.leader(), held), nil
}

// Leavers is the leavers report from the store, as `dirsync report leavers`.
func (c *consoleAPI) Leavers(ctx context.Context, since time.Time) (*report.LeaversReport, error) {
	var srcs []string
	for _, s := range c.a.cfg.Sources {
		srcs = append(srcs, s.Name)
	}
	return report.Leavers(ctx, c.a.store, report.LeaversOptions{Since: since, Sources: srcs})
}

// FindPeople searches the stored reads of every source: a person matches
// when their username, email, or any word of their name starts with q.
func (c *consoleAPI) FindPeople(ctx context.Context, q string, limit int) ([]console.PersonMatch, error) {
	q = strings.ToLower(strings.TrimSpace(q))
	if q == "" {
		return nil, nil
	}
	var out []console.PersonMatch
	for _, sc := range c.a.cfg.Sources {
		snap, err := c.a.store.GetSnapshot(ctx, sc.Name)
		if errors.Is(err, state.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("console: stored read of %s: %w", sc.Name, err)
		}
		for _, u := range snap.Users {
			if !personMatches(u, q) {
				continue
			}
			name := u.DisplayName
			if name == "" {
				name = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
			}
			if name == "" {
				name = u.Username
			}
			out = append(out, console.PersonMatch{Key: u.Key, Source: sc.Name, Username: u.Username, Email: u.Email, Name: name})
		}
	}
	slices.SortFunc(out, func(a, b console.PersonMatch) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), strings.Compare(a.Username, b.Username))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func personMatches(u identity.User, q string) bool {
	for _, f := range []string{u.Username, u.Email, u.GivenName, u.FamilyName, u.DisplayName} {
		f = strings.ToLower(f)
		if strings.HasPrefix(f, q) {
			return true
		}
		for _, w := range strings.Fields(f) {
			if strings.HasPrefix(w, q) {
				return true
			}
		}
	}
	return strings.Contains(strings.ToLower(u.DisplayName), q) && strings.Contains(q, " ")
}
