package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/console"
	"github.com/dirsync/dirsync/monitor"
	"github.com/dirsync/dirsync/notify"
	"github.com/dirsync/dirsync/scim"
	"github.com/dirsync/dirsync/state"
	cron "github.com/netresearch/go-cron"
	"go.uber.org/zap"
)

// fullInterval is the full schedule's interval (two consecutive firings).
func fullInterval(s config.Schedule) time.Duration {
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		loc = time.UTC
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor | cron.DowOrDom)
	sched, err := parser.Parse(s.Full)
	if err != nil {
		return 0
	}
	n1 := sched.Next(time.Now().In(loc))
	return sched.Next(n1).Sub(n1)
}

// newObservers builds the monitor and the notifier and returns the function
// the Recorder calls with every decision.
func (a *app) newObservers() func(state.Decision) {
	var srcNames, tgtNames []string
	kinds := map[string]string{}
	for _, s := range a.sources {
		srcNames = append(srcNames, s.Name())
	}
	for _, sc := range a.cfg.Sources {
		kinds[sc.Name] = sc.Type
		if sc.Type == scim.Type {
			kinds[sc.Name] = "scim_push"
		}
	}
	for _, t := range a.targets {
		tgtNames = append(tgtNames, t.Target.Name())
	}
	a.mon = monitor.New(a.reg, monitor.Options{Sources: srcNames, Targets: tgtNames, FullInterval: fullInterval(a.cfg.Schedule),
		QuarantineAfter: a.cfg.Safety.Limits().QuarantineAfter,
		SourceKind: func(s string) string {
			if k := kinds[s]; k != "" {
				return k
			}
			return "incremental"
		}})
	if len(a.cfg.Notify.Webhooks) > 0 {
		link := ""
		if a.cfg.HTTP.Console.Enabled {
			link = a.cfg.HTTP.Console.BaseURL
		}
		a.notifier = notify.New(notify.Options{Config: a.cfg.Notify, ConsoleURL: link, Logger: a.log.With(zap.String("part", "notify"))})
		a.notifier.Start(context.Background())
	}
	return func(d state.Decision) {
		// Plan-only runs (the console's re-check and explain, plan files)
		// still record run-level skips today; they are no run's outcome.
		switch d.Trigger {
		case "manual", "explain", "plan", "recheck":
			return
		}
		a.mon.Decision(d)
		if a.notifier != nil {
			a.notifier.Decision(d)
		}
	}
}

// watchHealth hands a source watch's connection outcome to the monitor
// (built after the sources, before any watch starts).
func (a *app) watchHealth(source string, err error) {
	if a.mon != nil {
		a.mon.Watch(source, err)
	}
}

// runFinished tells the monitor and the notifier how a run ended.
func (a *app) runFinished(ctx context.Context, runID string) {
	a.gen.Add(1) // the reads or the cache may have changed
	r, err := a.store.GetRun(ctx, runID)
	if err != nil {
		return
	}
	a.mon.RunFinished(r)
	if a.notifier != nil {
		for s := range r.Sources {
			a.notifier.SourceOK(s)
		}
		a.notifier.RunFinished(runID)
	}
}

// closeObservers lets queued notifications go out (up to 10s) before exit.
func (a *app) closeObservers() {
	if a.notifier != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.notifier.Close(ctx)
	}
}

// overviewOf turns the monitor's state into the console's traffic lights.
// held is read from the store at each view (the monitor's copy may be a few
// seconds old).
func overviewOf(m *monitor.Tracker, cfg *config.Config, leader string, held []monitor.HeldInfo) console.Overview {
	srcs, tgts, _, _ := m.Snapshot()
	modes := map[string]string{}
	for _, sc := range cfg.Sources {
		switch sc.Type {
		case scim.Type:
			modes[sc.Name] = "SCIM push"
		case "ldap":
			modes[sc.Name] = "directory changes (syncrepl / USN)"
		default:
			modes[sc.Name] = "full runs"
		}
	}
	now := time.Now()
	stale := 2 * fullInterval(cfg.Schedule)
	ov := console.Overview{Leader: leader, Now: now}
	for _, s := range srcs {
		h := console.SourceHealth{Name: s.Name, LastPull: s.LastSuccess, Users: s.Users, LastError: s.LastError}
		h.Incremental = modes[s.Name]
		if !s.LastChange.IsZero() {
			h.Incremental += "; last change " + now.Sub(s.LastChange).Round(time.Second).String() + " ago"
		}
		switch {
		case s.WatchFailures > 0 && s.WatchFailures >= s.Failures:
			h.Status = console.Status{Level: "bad", Reason: fmt.Sprintf("the change watch cannot connect (%d attempt(s) failed)", s.WatchFailures)}
		case s.Failures > 0:
			h.Status = console.Status{Level: "bad", Reason: fmt.Sprintf("failed in the last %d run(s)", s.Failures)}
		case s.LastSuccess.IsZero():
			h.Status = console.Status{Level: "warn", Reason: "not read yet"}
		case stale > 0 && now.Sub(s.LastSuccess) > stale:
			h.Status = console.Status{Level: "warn", Reason: "no complete read for " + now.Sub(s.LastSuccess).Round(time.Minute).String()}
		default:
			h.Status = console.Status{Level: "ok", Reason: "read"}
			h.LastError = ""
		}
		ov.Sources = append(ov.Sources, h)
	}
	for _, t := range tgts {
		h := console.TargetHealth{Name: t.Name, Accounts: t.Accounts, LastRun: t.LastRun, Quarantined: t.Quarantined, Breaker: "closed", Reconcile: t.LastReconcile}
		for _, hp := range held {
			for _, n := range hp.Targets {
				if n == t.Name {
					h.Held++
				}
			}
		}
		switch {
		case t.Breaker != "":
			h.Breaker = t.Breaker
			h.Status = console.Status{Level: "bad", Reason: "circuit breaker opened"}
		case t.RunError != "":
			h.Status = console.Status{Level: "bad", Reason: t.RunError}
		case h.Held > 0:
			h.Status = console.Status{Level: "warn", Reason: "a plan waits for approval"}
		case t.Quarantined > 0:
			h.Status = console.Status{Level: "warn", Reason: fmt.Sprintf("%d account(s) quarantined", t.Quarantined)}
		default:
			h.Status = console.Status{Level: "ok", Reason: "in step"}
		}
		ov.Targets = append(ov.Targets, h)
	}
	return ov
}

// secretsOf lists the configured secret values, which no console page may show.
func secretsOf(cfg *config.Config) []string {
	out := []string{cfg.State.Redis.Password.Value(), cfg.HTTP.Console.AdminToken.Value(), cfg.HTTP.Console.SessionKey.Value(), cfg.HTTP.Console.OIDC.ClientSecret.Value()}
	for _, w := range cfg.Notify.Webhooks {
		out = append(out, w.URL.Value())
	}
	return append(out, pluginSecrets(cfg)...)
}

// mountConsole adds the console and the monitor's refresh loop to the daemon.
func (d *daemon) mountConsole(ctx context.Context) error {
	api := &consoleAPI{a: d.a, leading: d.a.leading, leader: func() string {
		if d.leader.Load() {
			return "this replica leads: it applies runs and approvals"
		}
		return "this replica is a standby: another replica leads"
	}, handOver: d.handOverApproval}
	go func() {
		// At most one refresh per 5s, so a burst of SCIM-triggered runs
		// does not re-read every target's accounts after each of them.
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			if err := d.a.mon.Refresh(ctx, d.a.store, api.heldInfos); err != nil {
				d.log.Debug("monitor refresh", zap.Error(err))
			}
			if d.a.cfg.HTTP.Console.Enabled {
				api.warm()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-d.refresh:
			}
		}
	}()
	con := d.a.cfg.HTTP.Console
	if !con.Enabled {
		return nil
	}
	srv, err := console.New(console.Options{Config: con, Backend: api, Logger: d.log.With(zap.String("part", "console")), Secrets: secretsOf(d.a.cfg), Sessions: d.a.store})
	if err != nil {
		return fmt.Errorf("http.console: %w", err)
	}
	h := srv.Handler()
	d.mux.Handle("/ui/", h)
	d.mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusFound))
	return nil
}

// pluginSecrets are the credentials in sources' and targets' settings.
func pluginSecrets(cfg *config.Config) []string {
	var out []string
	for _, s := range cfg.Sources {
		out = append(out, s.SecretValues()...)
	}
	for _, t := range cfg.Targets {
		out = append(out, t.SecretValues()...)
	}
	return out
}
