package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	cron "github.com/netresearch/go-cron"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("run", stderr)
	c.register(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError{err.Error()}
	}
	a, err := openApp(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	d := newDaemon(a)
	return d.serve(ctx, nil)
}

// trigger asks the daemon for a run.
type trigger struct {
	name string
	keys []string // nil: full run
	// stored: use stored snapshots (expiry timer) instead of pulling.
	stored bool
	// observed is when the change behind it was seen (zero: when the run starts).
	observed time.Time
	// reconcile: read every live account back (a full run that also
	// checks the applications).
	reconcile bool
	// fallback says why a change became a full run.
	fallback string
}

// daemon is the long-running process: HTTP, leader election, scheduler,
// incremental watchers, the expiry timer, and one run worker.
type daemon struct {
	a       *app
	log     *zap.Logger
	leader  atomic.Bool
	lease   atomic.Pointer[state.Lease]
	lastRun atomic.Pointer[string]
	mux     *http.ServeMux
	// batch holds the triggers of the next run.
	batch *batch
	// changes holds incremental changes waiting to be merged.
	changes *changeQueue
	// ready is closed when the HTTP listener is up.
	ready    chan struct{}
	addr     atomic.Pointer[string]
	runCount atomic.Int64
	// refresh asks the monitor to reload held plans and accounts now.
	refresh chan struct{}
	// leases are the target leases held (state.leases: per_target; see
	// share.go), and owner this replica's name in them.
	leases *leaseSet
	owner  string
	// writers warns about other deployments writing to this one's
	// applications (writers.go); "" when none is seen.
	writers atomic.Pointer[string]
}

func newDaemon(a *app) *daemon {
	d := &daemon{a: a, log: a.log, batch: newBatch(), changes: newChangeQueue(), mux: http.NewServeMux(), ready: make(chan struct{}), refresh: make(chan struct{}, 1)}
	a.leading = func() bool {
		l := d.lease.Load()
		return l != nil && time.Now().Before(l.Expires)
	}
	d.leases, d.owner = newLeaseSet(), ownerID("daemon")
	if perTarget(a.cfg) {
		a.fenceFor = d.leases.fenceFor
	}
	a.fence = func() state.Fence {
		if l := d.lease.Load(); l != nil {
			return l.Fence()
		}
		return state.Fence{Lock: leaderLock, Token: -1} // never valid: not the leader
	}
	return d
}

// Handle mounts an extra handler (SCIM servers) on the daemon's listener.
func (d *daemon) Handle(pattern string, h http.Handler) { d.mux.Handle(pattern, h) }

// Trigger asks for a run without blocking: it starts at once when the
// worker is idle, or is merged into the run after the current one.
func (d *daemon) Trigger(t trigger) { d.batch.add(t) }

func (d *daemon) routes() {
	d.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	d.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		role := "standby"
		if d.leader.Load() {
			role = "leader"
		}
		last := "none yet"
		if s := d.lastRun.Load(); s != nil {
			last = *s
		}
		// Readiness is about serving (SCIM writes go to the store): an
		// unreachable store makes the replica unready; a failed run does not
		// (it is reported, and in metrics), or a directory outage would take
		// every replica, and with them the SCIM endpoint, out of service.
		if err := d.a.store.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready (%s): state store unreachable: %v; last run: %s\n", role, err, last)
			return
		}
		fmt.Fprintf(w, "ready (%s); last run: %s\n", role, last)
		if perTarget(d.a.cfg) {
			fmt.Fprintf(w, "targets held: %s\n", strings.Join(d.leases.held(), ", "))
		}
		if ws := d.writers.Load(); ws != nil && *ws != "" {
			for _, l := range strings.Split(*ws, "\n") {
				fmt.Fprintf(w, "WARNING: %s\n", l)
			}
		}
		for _, t := range d.a.cfg.Targets {
			if r, err := dsync.LastReconcile(ctx, d.a.store, t.Name); err == nil {
				fmt.Fprintf(w, "target %s: last reconcile %s (%d drifted, %d orphans, %d missing)\n",
					t.Name, r.Time.Format(time.RFC3339), len(r.Drift), len(r.Orphans), len(r.Missing))
			}
		}
	})
	d.mux.Handle("GET /metrics", promhttp.HandlerFor(d.a.reg, promhttp.HandlerOpts{}))
	for _, s := range d.a.sources {
		if m, ok := s.(mounter); ok {
			d.mux.Handle(m.MountPath()+"/", m.Handler())
			d.mux.Handle(m.MountPath(), m.Handler())
		}
	}
}

// mounter is a source that serves HTTP on the daemon's listener (SCIM).
type mounter interface {
	MountPath() string
	Handler() http.Handler
}

// serve runs until ctx ends. onReady, if set, is called with the listener's
// address once it is up.
func (d *daemon) serve(ctx context.Context, onReady func(addr string)) error {
	d.routes()
	if err := d.mountConsole(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", d.a.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", d.a.cfg.HTTP.Listen, err)
	}
	addr := ln.Addr().String()
	d.addr.Store(&addr)
	srv := &http.Server{Handler: d.mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	httpErr := make(chan error, 1)
	go func() {
		var err error
		if t := d.a.cfg.HTTP.TLS; t.CertFile != "" {
			err = srv.ServeTLS(ln, t.CertFile, t.KeyFile)
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
		}
	}()
	d.log.Info("dirsync started", zap.String("listen", addr), zap.String("version", version), zap.Strings("targets", d.a.targetNames()))
	close(d.ready)
	if onReady != nil {
		onReady(addr)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Leader election.
	leadCtx, cancelLead := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() { defer wg.Done(); d.elect(leadCtx) }()
	if perTarget(d.a.cfg) {
		wg.Add(1)
		go func() { defer wg.Done(); d.share(leadCtx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.claimEndpoints(leadCtx, max(d.a.cfg.State.LockTTL.D()/3, time.Second)) }()
	// Scheduler.
	loc, _ := time.LoadLocation(d.a.cfg.Schedule.Timezone)
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor | cron.DowOrDom)
	cr := cron.New(cron.WithLocation(loc), cron.WithParser(parser), cron.WithLogger(cron.DiscardLogger),
		cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	if _, err := cr.AddFunc(d.a.cfg.Schedule.Full, func() { d.Trigger(trigger{name: "schedule"}) }); err != nil {
		cancelLead()
		return fmt.Errorf("schedule.full: %w", err)
	}
	if spec := d.a.cfg.Schedule.Reconcile; spec != "" && spec != "off" {
		if _, err := cr.AddFunc(spec, func() { d.Trigger(trigger{name: "reconcile", reconcile: true}) }); err != nil {
			cancelLead()
			return fmt.Errorf("schedule.reconcile: %w", err)
		}
	}
	cr.Start()
	// Incremental: watchers, and polling of sources that cannot watch.
	watchCtx, cancelWatch := context.WithCancel(ctx)
	var polled atomic.Int32
	for _, s := range d.a.sources {
		w, ok := s.(source.Watcher)
		if !ok {
			polled.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A SCIM server receives pushes on every replica (standbys
			// forward them); a directory watcher keeps cursors in shared
			// state, so it runs on the leader only.
			_, everywhere := s.(mounter)
			if !d.watch(watchCtx, s, w, !everywhere) {
				polled.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.relay(watchCtx) }()
	if iv := d.a.cfg.Schedule.Incremental.D(); iv > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(iv)
			defer t.Stop()
			for {
				select {
				case <-watchCtx.Done():
					return
				case <-t.C:
					if polled.Load() > 0 {
						d.Trigger(trigger{name: "incremental"})
					}
				}
			}
		}()
	}
	d.Trigger(trigger{name: "startup"})
	// Run worker.
	workerDone, mergerDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(workerDone); d.worker(ctx, stop) }()
	go func() { defer close(mergerDone); d.merger(ctx, stop) }()

	select {
	case <-ctx.Done():
	case err = <-httpErr:
		d.log.Error("http server failed", zap.Error(err))
	}
	d.log.Info("shutting down: finishing the action in flight")
	close(stop)
	cancelWatch()
	cr.Stop()
	<-workerDone
	<-mergerDone
	cancelLead()
	wg.Wait()
	if l := d.lease.Load(); l != nil {
		_ = d.a.store.ReleaseLock(context.Background(), *l)
	}
	if perTarget(d.a.cfg) {
		d.leases.releaseAll(d.a.store)
		_ = d.a.store.KVDelete(context.Background(), membersBucket, d.owner, -1)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	d.log.Info("stopped")
	return err
}

// elect keeps trying to hold the leader lock, renewing it at a third of its
// TTL; losing it clears the lease so fenced writes stop at once.
func (d *daemon) elect(ctx context.Context) {
	ttl := d.a.cfg.State.LockTTL.D()
	owner := ownerID("daemon")
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if l := d.lease.Load(); l != nil {
			nl, err := d.a.store.RenewLock(ctx, *l, ttl)
			if err != nil {
				d.log.Warn("lost the leader lock: standing by", zap.Error(err))
				d.lease.Store(nil)
				d.leader.Store(false)
			} else {
				d.lease.Store(&nl)
			}
		} else {
			l, err := d.a.store.AcquireLock(ctx, leaderLock, owner, ttl)
			switch {
			case err == nil:
				d.lease.Store(&l)
				d.leader.Store(true)
				d.log.Info("became leader", zap.Int64("fencing_token", l.Token))
				d.Trigger(trigger{name: "leader"})
			case !errors.Is(err, state.ErrLockHeld):
				d.log.Warn("leader lock", zap.Error(err))
			}
		}
		t.Reset(ttl / 3)
	}
}

// watch runs a source's watcher until ctx ends, restarting it when it
// fails. With leaderOnly it runs only while this replica leads, and stops
// when it loses the lease. It returns false at once when the source cannot
// watch as configured, so the daemon polls it instead.
func (d *daemon) watch(ctx context.Context, s source.Source, w source.Watcher, leaderOnly bool) bool {
	for ctx.Err() == nil {
		if leaderOnly && !d.leader.Load() {
			select {
			case <-ctx.Done():
				return true
			case <-time.After(relayInterval):
			}
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		if leaderOnly {
			go func() {
				for wctx.Err() == nil && d.leader.Load() {
					select {
					case <-wctx.Done():
					case <-time.After(relayInterval):
					}
				}
				cancel()
			}()
		}
		err := w.Watch(wctx, func(ch source.Change) {
			if !d.leader.Load() {
				d.forward(ctx, s.Name(), ch)
				return
			}
			d.mergeAndTrigger(ctx, s.Name(), ch, "watch")
		})
		lost := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		if errors.Is(err, source.ErrWatchUnsupported) {
			return false
		}
		if ctx.Err() != nil {
			return true
		}
		if lost {
			continue // leadership lost: wait to lead again
		}
		d.log.Warn("watch ended: restarting", zap.String("source", s.Name()), zap.Error(err))
		if err == nil {
			err = errors.New("the watch stopped")
		}
		d.a.watchHealth(s.Name(), fmt.Errorf("watch ended: %w", err))
		select {
		case <-ctx.Done():
			return true
		case <-time.After(5 * time.Second):
		}
	}
	return true
}

// worker runs one run at a time. The first trigger of a quiet period starts
// a run at once; triggers arriving while it runs are merged (see batch) into
// the next one, and a full request absorbs keyed ones.
func (d *daemon) worker(ctx context.Context, stop chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var handled time.Time
	for {
		select {
		case <-stop:
			return
		case <-d.batch.ready:
		case <-timer.C:
			at, _ := d.a.engine.Due()
			if at.IsZero() || time.Now().Before(at) {
				d.armExpiry(timer)
				continue
			}
			if !at.After(handled) {
				// Already handled and still due (the target failed?): retry
				// later rather than spin.
				timer.Reset(30 * time.Second)
				handled = time.Time{}
				continue
			}
			handled = at
			// A run over the stored snapshots (no pull): it applies what the
			// clock made due and recomputes the next due time.
			d.batch.add(trigger{name: "expiry", stored: true, observed: at})
		}
		m := d.batch.take()
		if m == nil {
			continue
		}
		full, name, observed := m.full, m.name, m.observed
		reconcile, fallback := m.reconcile, m.fallback
		keys := m.keys
		storedAll := m.storedAll
		sources := d.leader.Load()
		if !sources && (!perTarget(d.a.cfg) || len(d.leases.held()) == 0) {
			continue // standby: the leader runs; our SCIM writes are in the shared store
		}
		if !sources && full && !reconcile {
			continue // per target: the sources' holder pulls, then posts what to plan here
		}
		ro := dsync.RunOptions{Trigger: name, Stop: stop, Reconcile: reconcile && full, Fallback: fallback}
		if storedAll && !full {
			keys = map[string]bool{} // a full plan over the stored snapshots absorbs keyed ones
		}
		if !full {
			if len(keys) == 0 {
				ro.UseStored = true
			} else {
				ro.Keys = sortedKeys(keys)
			}
		}
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if full || observed.IsZero() {
			observed = time.Now()
		}
		d.a.mon.RunStarting(name, observed)
		if full && sources && perTarget(d.a.cfg) {
			// Fresh snapshots: the other targets' holders plan them too.
			ro.Linked = func() { d.postTargetRuns(runCtx, name, nil, observed) }
		}
		res, err := d.a.engine.Run(runCtx, ro)
		if res != nil {
			d.a.runFinished(runCtx, res.RunID)
		}
		cancel()
		select {
		case d.refresh <- struct{}{}:
		default:
		}
		d.runCount.Add(1)
		status := "failed"
		if res != nil {
			status = res.Status
		}
		if !full && status == "failed" {
			status = "partial"
		}
		d.lastRun.Store(&status)
		if err != nil {
			d.log.Error("run failed", zap.String("trigger", name), zap.Error(err))
		}
		d.armExpiry(timer)
	}
}

func (d *daemon) armExpiry(timer *time.Timer) {
	at, _ := d.a.engine.Due()
	wait := time.Hour
	if !at.IsZero() {
		wait = max(time.Until(at), 0)
	}
	if !timer.Stop() {
		select {
		case <-timer.C:
		default:
		}
	}
	timer.Reset(wait)
}
