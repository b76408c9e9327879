// Command apply measures how fast the sync engine applies actions to an
// application that answers every request after 50 ms and rate-limits its
// clients (429 with Retry-After beyond the limit), against references
// measured in the same run: the application's rate limit (the ceiling no
// client can pass) and a naive client that makes the same calls one at a
// time.
//
// The application is the Netmaker fake (target/netmaker/netmakerfake)
// behind App (latency and a token bucket), driven through the real
// netmaker connector; the engine is built the way the daemon builds it
// (config parsed from YAML with its defaults, state opened through
// state/backends, decisions logged as JSON lines to a file and journaled).
// Each scenario applies N creates (one run), then N suspensions (the
// users turn inactive; one run with --allow-mass-change), on a fresh
// application and a fresh state: the embedded bbolt file and, when
// redis-server is installed, a throwaway Redis (AOF everysec). One more
// scenario sets rate_limit above the application's limit to show that
// Retry-After handling still converges, in as many runs as it takes.
//
//	go run ./bench/apply -n 1000 -out results.md
//
// bench/apply.sh runs it; bench/README.md explains the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	n           int
	rate        float64
	appBurst    int
	latency     time.Duration
	concurrency int
	backends    []string
	misconfig   float64
	misBackend  string
	naive       bool
	maxRuns     int
	redisBin    string
	stateDir    string
	out         string
	summary     string
	command     string
	mode        string
	rec         reconcileOptions
}

func main() {
	var o options
	var backends string
	flag.IntVar(&o.n, "n", 1000, "users: N creates, then N suspensions")
	flag.Float64Var(&o.rate, "rate", 50, "the application's rate limit, requests per second")
	flag.IntVar(&o.appBurst, "app-burst", 0, "the application's burst (default: rate)")
	flag.DurationVar(&o.latency, "latency", 50*time.Millisecond, "the application's answer time")
	flag.IntVar(&o.concurrency, "concurrency", 0, "the target's concurrency (default: dirsync's default)")
	flag.StringVar(&backends, "backends", "bolt,redis", "state backends to run: bolt, redis (skipped when redis-server is missing)")
	flag.Float64Var(&o.misconfig, "misconfig", 2, "also run with rate_limit = this × the application's limit (0: skip)")
	flag.StringVar(&o.misBackend, "misconfig-backend", "redis", "state backend of that run (bolt when redis-server is missing)")
	flag.BoolVar(&o.naive, "naive", true, "measure the naive sequential client")
	flag.IntVar(&o.maxRuns, "max-runs", 5, "runs per phase at most before giving up on convergence")
	flag.StringVar(&o.redisBin, "redis-server", "redis-server", "redis-server binary")
	flag.StringVar(&o.stateDir, "state-dir", os.TempDir(), "folder for the embedded store and Redis's files (its disk decides the embedded store's speed)")
	flag.StringVar(&o.out, "out", "", "write the Markdown results here as well as to stdout")
	flag.StringVar(&o.summary, "summary", "", "write the summary rows (figure | dirsync | reference | value | ratio | goal | pass) here")
	flag.StringVar(&o.command, "command", "", "the command line to print in the results (default: this one)")
	flag.StringVar(&o.mode, "mode", "apply", "apply (creates and suspensions) or reconcile (bench/reconcile.sh)")
	flag.IntVar(&o.rec.reenabled, "reenabled", 100, "reconcile: leavers re-enabled by hand")
	flag.IntVar(&o.rec.raised, "raised", 50, "reconcile: roles raised to admin by hand")
	flag.IntVar(&o.rec.orphans, "orphans", 20, "reconcile: accounts made by hand")
	flag.Parse()
	o.rec.n = o.n
	for _, b := range strings.Split(backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			o.backends = append(o.backends, b)
		}
	}
	if o.command == "" {
		o.command = strings.Join(os.Args, " ")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.mode == "reconcile" {
		var w io.Writer = os.Stdout
		if o.out != "" {
			f, err := os.Create(o.out)
			if err != nil {
				fmt.Fprintln(os.Stderr, "apply:", err)
				os.Exit(1)
			}
			defer f.Close()
			w = io.MultiWriter(os.Stdout, f)
		}
		if err := runReconcile(ctx, o, o.rec, w); err != nil {
			fmt.Fprintln(os.Stderr, "reconcile:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, o, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "apply:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, progress io.Writer) error {
	if o.n < 1 || o.rate <= 0 || o.maxRuns < 1 {
		return errors.New("-n, -rate and -max-runs must be positive")
	}
	rep := &report{o: o, started: time.Now().UTC()}
	if d, err := boltCommit(ctx, o.stateDir); err == nil {
		rep.commit = d
	}
	for _, b := range append(slices.Clone(o.backends), o.misBackend) {
		if b != "bolt" && b != "redis" {
			return fmt.Errorf("unknown state backend %q (bolt, redis)", b)
		}
	}
	for _, b := range o.backends {
		sc := scenario{backend: b, rateLimit: o.rate}
		fmt.Fprintf(progress, "apply: dirsync on %s, rate_limit %g\n", b, sc.rateLimit)
		res, err := runDirsync(ctx, o, sc, progress)
		if errors.Is(err, errNoRedis) {
			fmt.Fprintf(progress, "apply: %v: Redis scenario skipped\n", err)
			rep.notes = append(rep.notes, fmt.Sprintf("Redis scenario not run: %v.", err))
			continue
		}
		if err != nil {
			return fmt.Errorf("dirsync on %s: %w", b, err)
		}
		rep.dirsync = append(rep.dirsync, res)
	}
	if o.misconfig > 0 {
		sc := scenario{backend: o.misBackend, rateLimit: o.rate * o.misconfig, misconfigured: true}
		fmt.Fprintf(progress, "apply: dirsync on %s, rate_limit %g (above the application's %g)\n", sc.backend, sc.rateLimit, o.rate)
		res, err := runDirsync(ctx, o, sc, progress)
		if errors.Is(err, errNoRedis) {
			fmt.Fprintf(progress, "apply: %v: on bolt instead\n", err)
			sc.backend = "bolt"
			res, err = runDirsync(ctx, o, sc, progress)
		}
		if err != nil {
			return fmt.Errorf("dirsync, rate_limit %g: %w", sc.rateLimit, err)
		}
		rep.dirsync = append(rep.dirsync, res)
	}
	if o.naive {
		fmt.Fprintln(progress, "apply: naive sequential client")
		res, err := runNaive(ctx, o)
		if err != nil {
			return fmt.Errorf("naive client: %w", err)
		}
		rep.naive = &res
	}
	md := rep.markdown()
	fmt.Print(md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if o.summary != "" {
		if err := os.WriteFile(o.summary, []byte(rep.summaryRows()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// machine describes the host for the results.
func machine() string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	s := fmt.Sprintf("%d CPU", runtime.NumCPU())
	if model != "" {
		s += " (" + model + ")"
	}
	s += ", " + runtime.Version()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			s += ", load average " + strings.Join(f[:3], " ") + " at the start (other work on the machine slows every figure)"
		}
	}
	return s
}
