package sync

import (
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus collectors. No label carries a user.
type Metrics struct {
	Runs        *prometheus.CounterVec
	RunDuration prometheus.Histogram
	Actions     *prometheus.CounterVec
	HeldRuns    prometheus.Counter
	SourceUsers *prometheus.GaugeVec
	SourcePull  *prometheus.HistogramVec
	SourceFails *prometheus.CounterVec
	LastRunOK   prometheus.Gauge
	// Reconcile: drift found by field, orphan accounts, last reconcile time.
	ReconcileDrift *prometheus.CounterVec
	OrphanAccounts *prometheus.GaugeVec
	LastReconcile  *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dirsync_runs_total", Help: "Sync runs by trigger and final status."}, []string{"trigger", "status"}),
		RunDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "dirsync_run_duration_seconds", Help: "Duration of sync runs.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
		Actions:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dirsync_actions_total", Help: "Actions by target, action and outcome."}, []string{"target", "action", "outcome"}),
		HeldRuns:    prometheus.NewCounter(prometheus.CounterOpts{Name: "dirsync_held_plans_total", Help: "Plans held by the safety guard."}),
		SourceUsers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dirsync_source_users", Help: "Users in each source's last snapshot."}, []string{"source"}),
		SourcePull: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "dirsync_source_pull_seconds", Help: "Duration of source pulls.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}, []string{"source"}),
		SourceFails: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dirsync_source_failures_total", Help: "Failed source pulls."}, []string{"source"}),
		LastRunOK:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "dirsync_last_run_success", Help: "1 if the last run finished ok or held, else 0."}),
	}
	m.ReconcileDrift = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dirsync_reconcile_drift_total",
		Help: "Changes found made in an application outside dirsync, by target and field."}, []string{"target", "field"})
	m.OrphanAccounts = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dirsync_orphan_accounts",
		Help: "Live accounts no source knows, as of the last reconcile."}, []string{"target"})
	m.LastReconcile = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dirsync_last_reconcile_timestamp_seconds",
		Help: "When each target was last reconciled against its live accounts."}, []string{"target"})
	reg.MustRegister(m.Runs, m.RunDuration, m.Actions, m.HeldRuns, m.SourceUsers, m.SourcePull, m.SourceFails, m.LastRunOK,
		m.ReconcileDrift, m.OrphanAccounts, m.LastReconcile)
	return m
}

func (m *Metrics) observeRun(r state.Run) {
	m.Runs.WithLabelValues(r.Trigger, r.Status).Inc()
	if !r.Finished.IsZero() {
		m.RunDuration.Observe(r.Finished.Sub(r.Started).Seconds())
	}
	if r.Status == "ok" || r.Status == "held" {
		m.LastRunOK.Set(1)
	} else if r.Status != "dry_run" {
		m.LastRunOK.Set(0)
	}
}

func (m *Metrics) observePull(src string, d time.Duration, snap *identity.Snapshot, err error) {
	m.SourcePull.WithLabelValues(src).Observe(d.Seconds())
	if err != nil {
		m.SourceFails.WithLabelValues(src).Inc()
		return
	}
	if snap != nil {
		m.SourceUsers.WithLabelValues(src).Set(float64(len(snap.Users)))
	}
}
