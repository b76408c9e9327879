package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/all"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/monitor"
	"github.com/dirsync/dirsync/notify"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/backends"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// app is a loaded configuration wired into running parts.
type app struct {
	cfg     *config.Config
	log     *zap.Logger
	store   state.Store
	sources []source.Source
	targets []dsync.TargetSpec
	engine  *dsync.Engine
	reg     *prometheus.Registry
	metrics *dsync.Metrics
	rec     *dsync.Recorder
	// fence is the current leader lease's fence (daemon); zero elsewhere.
	fence func() state.Fence
	// leading, when set, says whether this process's lease is still valid
	// by its own clock (daemon); nil means always.
	leading func() bool
	// onDecision, when set, sees every decision (demo output).
	onDecision func(state.Decision)
	extra      []source.Source // built outside the config (demo)
	// mon follows health and exports the console's metrics; notifier
	// (nil without webhooks) tells people what needs them.
	mon      *monitor.Tracker
	notifier *notify.Notifier
	progress dsync.Progress
}

// loadConfig loads and validates, returning every problem at once.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// newLogger builds the operational logger (sampled) and the decision logger
// (never sampled), both JSON lines (or console) on w.
func newLogger(c config.Log, w io.Writer) (*zap.Logger, *zap.Logger) {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	encCfg.TimeKey = "time"
	var enc zapcore.Encoder = zapcore.NewJSONEncoder(encCfg)
	if c.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	lvl := zapcore.InfoLevel
	_ = lvl.Set(c.Level)
	ws := zapcore.Lock(zapcore.AddSync(w))
	core := zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, ws, lvl), 1e9, 100, 100)
	return zap.New(core), dsync.UnsampledLogger(enc.Clone(), ws, zapcore.InfoLevel)
}

type appOptions struct {
	logOut io.Writer
	// extraSources are added to the configured ones (demo).
	extraSources []source.Source
	onDecision   func(state.Decision)
	noStore      bool
	// progress is told each target's number of steps (one-shot commands).
	progress dsync.Progress
}

// newApp opens the store and builds sources, targets and the engine. No
// network is touched except the state store.
func newApp(ctx context.Context, cfg *config.Config, o appOptions) (*app, error) {
	if o.logOut == nil {
		o.logOut = os.Stderr
	}
	log, declog := newLogger(cfg.Log, o.logOut)
	a := &app{cfg: cfg, log: log, fence: func() state.Fence { return state.Fence{} }, onDecision: o.onDecision, progress: o.progress}
	store, err := backends.Open(ctx, cfg.State, log)
	if err != nil {
		return nil, err
	}
	a.store = store
	if err := a.build(declog, o.extraSources); err != nil {
		store.Close()
		return nil, err
	}
	return a, nil
}

func (a *app) build(declog *zap.Logger, extra []source.Source) error {
	var problems []string
	for _, sc := range a.cfg.Sources {
		s, err := buildSource(sc, source.Deps{Logger: a.log.With(zap.String("source", sc.Name)), Cursors: a.store}, a.store)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		a.sources = append(a.sources, s)
	}
	a.sources = append(a.sources, extra...)
	for _, tc := range a.cfg.Targets {
		t, err := all.Build(tc, connector.Deps{Logger: a.log.With(zap.String("target", tc.Name)), Now: nil,
			// Asked by every connector right before each request it sends.
			Leading: func() bool { return a.leading == nil || a.leading() },
			// What the connector learns about its application survives restarts.
			Memory: state.NewConnectorMemory(a.store, tc.Name)})
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		a.targets = append(a.targets, dsync.TargetSpec{Target: t, Config: tc.TargetCommon})
	}
	if len(problems) > 0 {
		return fmt.Errorf("config:\n  %s", strings.Join(problems, "\n  "))
	}
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = dsync.NewMetrics(a.reg)
	observe := a.newObservers()
	a.rec = dsync.NewRecorder(declog, a.store, func(d state.Decision) {
		observe(d)
		if a.onDecision != nil {
			a.onDecision(d)
		}
	})
	a.engine = dsync.New(dsync.Options{
		Sources: a.sources, Targets: a.targets, Store: a.store, Logger: a.log, Recorder: a.rec,
		Limits: a.cfg.Safety.Limits(), JoinKey: identity.JoinKey(a.cfg.JoinKey), Metrics: a.metrics,
		Fence:    func() state.Fence { return a.fence() },
		Leading:  func() bool { return a.leading == nil || a.leading() },
		Progress: a.progress,
	})
	return nil
}

func (a *app) close() {
	a.closeObservers()
	_ = a.rec.Flush(context.Background())
	_ = a.store.Close()
	_ = a.log.Sync()
}

func (a *app) targetNames() []string {
	var out []string
	for _, t := range a.targets {
		out = append(out, t.Target.Name())
	}
	slices.Sort(out)
	return out
}
