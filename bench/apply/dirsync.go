package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/netmaker"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/backends"
	"github.com/dirsync/dirsync/state/bolt"
	dsync "github.com/dirsync/dirsync/sync"
)

// scenario is one dirsync configuration to measure.
type scenario struct {
	backend       string // bolt or redis
	rateLimit     float64
	misconfigured bool
}

// phase is what one phase (creates or suspensions) took.
type phase struct {
	name     string
	want     int // actions asked for
	done     int // accounts in the wanted state in the application afterwards
	applied  int // applied decisions
	failed   int // failed decisions
	runs     int
	wall     time.Duration // sum of the runs' durations
	limited  int           // 429 answers
	requests int           // accepted requests
	writes   int           // state writes
	writeDur time.Duration // their total time
}

// result is one scenario's phases.
type result struct {
	sc     scenario
	phases []phase
}

var errNoRedis = errors.New("redis-server is not installed")

// memSource is an in-memory source whose users the bench sets.
type memSource struct {
	mu    stdsync.Mutex
	users []identity.User
}

func (s *memSource) Name() string { return "hr" }

func (s *memSource) set(users []identity.User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users = slices.Clone(users)
}

func (s *memSource) Pull(context.Context) (*identity.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &identity.Snapshot{Source: "hr", TakenAt: time.Now().UTC(), Users: slices.Clone(s.users)}, nil
}

// benchUsers returns n users, all active or all inactive.
func benchUsers(n int, active bool) []identity.User {
	out := make([]identity.User, n)
	for i := range out {
		name := benchName(i)
		out[i] = identity.User{Key: fmt.Sprintf("k%06d", i), Source: "hr", Username: name, Email: name + "@example.test",
			GivenName: "Bench", FamilyName: strconv.Itoa(i), DisplayName: "Bench " + strconv.Itoa(i), Active: active}
	}
	return out
}

func benchName(i int) string { return fmt.Sprintf("user%06d", i) }

// outcomes counts decisions by outcome.
type outcomes struct {
	mu stdsync.Mutex
	m  map[string]int
}

func (c *outcomes) add(d state.Decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[d.Outcome]++
}

func (c *outcomes) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.m
	c.m = nil
	return m
}

// serve starts h on a loopback port and returns its base URL.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// loggers returns the daemon's two loggers (operational, sampled; decisions,
// never sampled) writing JSON lines to w, as cmd/dirsync builds them.
func loggers(w io.Writer) (*zap.Logger, *zap.Logger) {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	encCfg.TimeKey = "time"
	enc := zapcore.NewJSONEncoder(encCfg)
	ws := zapcore.Lock(zapcore.AddSync(w))
	core := zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, ws, zapcore.InfoLevel), 1e9, 100, 100)
	return zap.New(core), dsync.UnsampledLogger(enc.Clone(), ws, zapcore.InfoLevel)
}

// runDirsync measures one scenario on a fresh application and state.
func runDirsync(ctx context.Context, o options, sc scenario, progress io.Writer) (result, error) {
	res := result{sc: sc}
	dir, err := os.MkdirTemp(o.stateDir, "dirsync-bench-apply-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	stateYAML := fmt.Sprintf("state:\n  backend: embedded\n  path: %s\n", filepath.Join(dir, "state.db"))
	if sc.backend == "redis" {
		addr, stop, err := startRedis(ctx, o.redisBin, dir)
		if err != nil {
			return res, err
		}
		defer stop()
		stateYAML = fmt.Sprintf("state:\n  backend: redis\n  redis:\n    addrs: [%q]\n    key_prefix: \"bench:\"\n", addr)
	}

	fake := netmakerfake.New(netmakerfake.Options{})
	app := NewApp(fake, AppOptions{Rate: o.rate, Burst: o.appBurst, Latency: o.latency})
	base, stopApp, err := serve(app)
	if err != nil {
		return res, err
	}
	defer stopApp()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(fake.AdminToken()), 0o600); err != nil {
		return res, err
	}

	// The source is the bench's in-memory one (memSource), not built from
	// the config; it is declared so that the config validates.
	y := stateYAML + fmt.Sprintf(`sources:
  - name: hr
    type: memory
targets:
  - name: netmaker
    type: netmaker
    base_url: %s
    token: file:%s
    edition: pro
    rate_limit: %g
`, base, tokenFile, sc.rateLimit)
	if o.concurrency > 0 {
		y += fmt.Sprintf("    concurrency: %d\n", o.concurrency)
	}
	cfg, err := config.Parse(strings.NewReader(y))
	if err != nil {
		return res, fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return res, fmt.Errorf("config: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dir, "dirsync.log"))
	if err != nil {
		return res, err
	}
	defer logFile.Close()
	log, declog := loggers(logFile)
	opened, err := backends.Open(ctx, cfg.State, log)
	if err != nil {
		return res, err
	}
	defer opened.Close()
	store := &timedStore{Store: opened}
	tc := cfg.Targets[0]
	tgt, err := netmaker.Factory(tc, connector.Deps{Logger: log.With(zap.String("target", tc.Name))})
	if err != nil {
		return res, err
	}
	src := &memSource{}
	counts := &outcomes{}
	rec := dsync.NewRecorder(declog, store, counts.add)
	eng := dsync.New(dsync.Options{
		Sources: []source.Source{src}, Targets: []dsync.TargetSpec{{Target: tgt, Config: tc.TargetCommon}},
		Store: store, Logger: log, Recorder: rec, Limits: cfg.Safety.Limits(), JoinKey: identity.JoinKey(cfg.JoinKey),
		Metrics: dsync.NewMetrics(prometheus.NewRegistry()),
	})

	steps := []struct {
		name   string
		active bool
	}{{"create", true}, {"suspend", false}}
	for _, st := range steps {
		src.set(benchUsers(o.n, st.active))
		p := phase{name: st.name, want: o.n}
		acc0, lim0 := app.Counts()
		store.take()
		for p.runs < o.maxRuns {
			start := time.Now()
			r, err := eng.Run(ctx, dsync.RunOptions{Trigger: "bench", AllowMassChange: !st.active})
			p.wall += time.Since(start)
			p.runs++
			if err != nil {
				return res, fmt.Errorf("%s run %d: %w", st.name, p.runs, err)
			}
			m := counts.take()
			p.applied += m[dsync.OutcomeApplied]
			p.failed += m[dsync.OutcomeFailed]
			p.done = converged(fake, o.n, !st.active)
			fmt.Fprintf(progress, "apply:   %s run %d: %s, %d applied, %d failed, %d/%d done, %.1fs\n",
				st.name, p.runs, r.Status, m[dsync.OutcomeApplied], m[dsync.OutcomeFailed], p.done, o.n, time.Since(start).Seconds())
			if p.done == o.n {
				break
			}
		}
		acc1, lim1 := app.Counts()
		p.requests, p.limited = acc1-acc0, lim1-lim0
		p.writes, p.writeDur = store.take()
		res.phases = append(res.phases, p)
		if p.done != o.n {
			return res, fmt.Errorf("%s: only %d of %d accounts in the wanted state after %d runs", st.name, p.done, o.n, p.runs)
		}
	}
	if err := rec.Flush(ctx); err != nil {
		return res, err
	}
	return res, checkState(ctx, store, o.n)
}

// converged counts the bench's accounts that exist in the application with
// the wanted disabled state.
func converged(fake *netmakerfake.Server, n int, disabled bool) int {
	done := 0
	for _, u := range fake.Users() {
		if strings.HasPrefix(u.Username, "user") && u.AccountDisabled == disabled {
			done++
		}
	}
	return min(done, n)
}

// checkState makes sure the state store agrees with the application: every
// account cached, suspended, nothing pending.
func checkState(ctx context.Context, store state.Store, n int) error {
	accts, err := store.Accounts(ctx, "netmaker")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	bad := 0
	for _, a := range accts {
		if !a.Suspended || a.Pending != "" {
			bad++
		}
	}
	if len(accts) != n || bad > 0 {
		return fmt.Errorf("state: %d accounts cached (want %d), %d not suspended or still pending", len(accts), n, bad)
	}
	return nil
}

// startRedis runs a throwaway redis-server (AOF on, appendfsync everysec,
// as recommended for production) on a free loopback port with its files in
// dir, and returns its address and a function that stops it.
func startRedis(ctx context.Context, bin, dir string) (string, func(), error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", nil, fmt.Errorf("%w (%s)", errNoRedis, bin)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	rdir := filepath.Join(dir, "redis")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", rdir, "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec", "--logfile", filepath.Join(rdir, "redis.log"), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pingRedis(addr) == nil {
			return addr, stop, nil
		}
		select {
		case <-done:
			return "", nil, fmt.Errorf("redis-server exited at start (see %s)", filepath.Join(rdir, "redis.log"))
		case <-ctx.Done():
			stop()
			return "", nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s not ready after 10s", addr)
		}
	}
}

func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redis: %q", strings.TrimSpace(line))
	}
	return nil
}

// boltCommit is the median time of one account write to a fresh embedded
// store in dir: every such commit syncs the file twice (pages, then meta),
// and the engine makes two per action (intent, then outcome), one at a time
// however many workers run.
func boltCommit(ctx context.Context, dir string) (time.Duration, error) {
	d, err := os.MkdirTemp(dir, "bolt-probe-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(d)
	st, err := bolt.Open(filepath.Join(d, "probe.db"), bolt.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	ds := make([]time.Duration, 0, 50)
	for i := range 50 {
		a := identity.Account{Key: fmt.Sprintf("k%06d", i), Username: benchName(i), Email: benchName(i) + "@example.test", Exists: true}
		start := time.Now()
		if err := st.PutAccount(ctx, state.Fence{}, "probe", a); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}
