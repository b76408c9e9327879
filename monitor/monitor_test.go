package monitor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func newTracker(t *testing.T, now *time.Time) (*Tracker, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	tr := New(reg, Options{Sources: []string{"corp-ad", "okta"}, Targets: []string{"netmaker", "ezeep"}, QuarantineAfter: 5,
		FullInterval: time.Hour, Now: func() time.Time { return *now },
		SourceKind: func(s string) string {
			if s == "okta" {
				return "scim_push"
			}
			return "ldap"
		}})
	return tr, reg
}

func TestRunsDecideHealthAndMetrics(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tr, reg := newTracker(t, &now)
	// A full run where corp-ad fails and netmaker's breaker opens.
	tr.RunStarting("schedule", now)
	tr.Decision(state.Decision{RunID: "R1", Trigger: "schedule", Time: now.Add(time.Second), Target: "ezeep", User: "*", Action: "run", Outcome: "skipped",
		Reason: "source corp-ad failed: nothing changed in ezeep this run", Error: "source corp-ad: ldap: connection refused"})
	tr.Decision(state.Decision{RunID: "R1", Trigger: "schedule", Time: now.Add(time.Second), Target: "netmaker", User: "*", Action: "circuit_open", Outcome: "failed", Reason: "circuit breaker open: 5 failures"})
	tr.RunFinished(state.Run{ID: "R1", Trigger: "schedule", Started: now, Finished: now.Add(2 * time.Second), Status: "partial", Sources: map[string]int{"okta": 40}})
	srcs, tgts, _, _ := tr.Snapshot()
	if srcs[0].Name != "corp-ad" || srcs[0].Failures != 1 || !strings.Contains(srcs[0].LastError, "connection refused") {
		t.Fatalf("corp-ad = %+v", srcs[0])
	}
	if srcs[1].Failures != 0 || srcs[1].Users != 40 {
		t.Fatalf("okta = %+v", srcs[1])
	}
	if tgts[0].Name != "netmaker" || tgts[0].Breaker == "" || tgts[1].RunError == "" {
		t.Fatalf("targets = %+v", tgts)
	}
	if v := testutil.ToFloat64(tr.m.breaker.WithLabelValues("netmaker")); v != 1 {
		t.Fatalf("breaker gauge %v", v)
	}
	if v := testutil.ToFloat64(tr.m.srcFailing.WithLabelValues("corp-ad")); v != 1 {
		t.Fatalf("source failures gauge %v", v)
	}
	// A SCIM push observed at t, suspension confirmed 300ms later; the next
	// full run reads everything and closes the breaker.
	pushed := now.Add(time.Minute)
	tr.RunStarting("incremental:okta", pushed)
	tr.Decision(state.Decision{RunID: "R2", Trigger: "incremental:okta", Time: pushed.Add(300 * time.Millisecond), Target: "netmaker", User: "jo", Action: "suspend", Outcome: "applied"})
	tr.Decision(state.Decision{RunID: "R2", Trigger: "incremental:okta", Time: pushed.Add(400 * time.Millisecond), Target: "netmaker", User: "jo", Action: "create", Outcome: "applied"})
	tr.RunFinished(state.Run{ID: "R2", Trigger: "incremental:okta", Started: pushed, Finished: pushed.Add(time.Second), Status: "ok"})
	tr.RunStarting("schedule", now.Add(time.Hour))
	tr.RunFinished(state.Run{ID: "R3", Trigger: "schedule", Started: now.Add(time.Hour), Finished: now.Add(time.Hour + time.Second), Status: "ok", Sources: map[string]int{"okta": 40, "corp-ad": 900}})
	if v := testutil.ToFloat64(tr.m.breaker.WithLabelValues("netmaker")); v != 0 {
		t.Fatalf("breaker gauge after a clean run %v", v)
	}
	if v := testutil.ToFloat64(tr.m.srcFailing.WithLabelValues("corp-ad")); v != 0 {
		t.Fatalf("source failures after a clean run %v", v)
	}
	if v := testutil.ToFloat64(tr.m.fullSuccess); v != float64(now.Add(time.Hour+time.Second).Unix()) {
		t.Fatalf("full success %v", v)
	}
	if n := testutil.CollectAndCount(reg, MetricPropagation); n != 1 {
		t.Fatalf("propagation series = %d, want 1 (scim_push)", n)
	}
	out, _ := reg.Gather()
	for _, mf := range out {
		if mf.GetName() == MetricPropagation {
			hh := mf.GetMetric()[0].GetHistogram()
			if hh.GetSampleCount() != 1 || hh.GetSampleSum() < 0.29 || hh.GetSampleSum() > 0.31 {
				t.Fatalf("propagation: %d samples, sum %v; want one of 0.3s", hh.GetSampleCount(), hh.GetSampleSum())
			}
		}
	}
}

func TestRefreshCountsHeldAndQuarantined(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tr, _ := newTracker(t, &now)
	st := memstore.New(memstore.Options{})
	ctx := context.Background()
	for i, f := range []int{0, 5, 7} {
		a := identity.Account{Key: string(rune('a' + i)), Username: "u", Exists: true, Failing: map[string]int{"set_groups": f}}
		if err := st.PutAccount(ctx, state.Fence{}, "ezeep", a); err != nil {
			t.Fatal(err)
		}
	}
	info := func(context.Context) ([]HeldInfo, error) {
		return []HeldInfo{{RunID: "R9", Created: now.Add(-20 * time.Minute), Targets: []string{"ezeep"}}}, nil
	}
	if err := tr.Refresh(ctx, st, info); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(tr.m.quarantined.WithLabelValues("ezeep")); v != 2 {
		t.Fatalf("quarantined = %v, want 2", v)
	}
	if v := testutil.ToFloat64(tr.m.heldWaiting); v != 1 {
		t.Fatalf("held waiting = %v", v)
	}
	if v := testutil.ToFloat64(tr.m.heldOldest); v != 1200 {
		t.Fatalf("oldest held = %v, want 1200", v)
	}
	_, tgts, held, _ := tr.Snapshot()
	if tgts[1].Accounts != 3 || tgts[1].Quarantined != 2 || len(held) != 1 {
		t.Fatalf("targets %+v held %+v", tgts, held)
	}
}

func TestTriggerKindNamesHowAChangeArrived(t *testing.T) {
	tr := New(prometheus.NewRegistry(), Options{SourceKind: func(s string) string {
		if s == "okta" {
			return "scim_push"
		}
		return "ldap"
	}})
	for trigger, want := range map[string]string{
		"incremental:corp:syncrepl": "syncrepl",
		"incremental:ad:usn":        "usn",
		"incremental:ad:notify":     "notify",
		"incremental:okta:scim":     "scim_push",
		"incremental:okta":          "scim_push",
		"incremental:corp":          "ldap",
		"expiry":                    TriggerExpiry,
		"schedule":                  TriggerFull,
	} {
		if got := tr.TriggerKind(trigger); got != want {
			t.Errorf("TriggerKind(%q) = %q, want %q", trigger, got, want)
		}
	}
}

// A watch that cannot reconnect counts failures at once, with no run; a
// poll that fails counts like a full run; a reconnect clears the watch's.
func TestWatchAndPollFailuresCount(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tr, _ := newTracker(t, &now)
	tr.Watch("corp-ad", nil)
	for range 3 {
		now = now.Add(2 * time.Second)
		tr.Watch("corp-ad", errors.New("ldapsrc: corp-ad: watch: connection refused"))
	}
	srcs, _, _, _ := tr.Snapshot()
	if srcs[0].Failing() != 3 || !strings.Contains(srcs[0].LastError, "connection refused") {
		t.Fatalf("corp-ad after 3 failed reconnects: %+v", srcs[0])
	}
	if v := testutil.ToFloat64(tr.m.srcFailing.WithLabelValues("corp-ad")); v != 3 {
		t.Fatalf("consecutive failures gauge %v, want 3", v)
	}
	// Targeted runs say nothing of the source.
	tr.RunStarting("incremental:corp-ad:syncrepl", now)
	tr.RunFinished(state.Run{ID: "R1", Trigger: "incremental:corp-ad:syncrepl", Started: now, Finished: now, Status: "ok"})
	if v := testutil.ToFloat64(tr.m.srcFailing.WithLabelValues("corp-ad")); v != 3 {
		t.Fatalf("a targeted run changed the gauge to %v", v)
	}
	tr.Watch("corp-ad", nil)
	if v := testutil.ToFloat64(tr.m.srcFailing.WithLabelValues("corp-ad")); v != 0 {
		t.Fatalf("after reconnecting the gauge is %v", v)
	}
	// A poll that cannot read okta.
	tr.RunStarting("incremental", now)
	tr.Decision(state.Decision{RunID: "R2", Trigger: "incremental", Time: now, Target: "ezeep", User: "*", Action: "run", Outcome: "failed",
		Error: "source okta: timeout"})
	tr.RunFinished(state.Run{ID: "R2", Trigger: "incremental", Started: now, Finished: now, Status: "failed"})
	if v := testutil.ToFloat64(tr.m.srcFailing.WithLabelValues("okta")); v != 1 {
		t.Fatalf("a failed poll left the gauge at %v", v)
	}
}

// After a restart the targets' last runs come from the journal.
func TestLastRunSurvivesRestart(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := memstore.New(memstore.Options{})
	at := now.Add(-time.Hour)
	if err := st.AppendDecisions(context.Background(), []state.Decision{{Time: at, RunID: "R1", Target: "netmaker", User: "jo", Action: "create", Outcome: "applied"}}); err != nil {
		t.Fatal(err)
	}
	tr, _ := newTracker(t, &now)
	if err := tr.Refresh(context.Background(), st, func(context.Context) ([]HeldInfo, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	_, tgts, _, _ := tr.Snapshot()
	if !tgts[0].LastRun.Equal(at) || !tgts[1].LastRun.IsZero() {
		t.Fatalf("targets after a restart: %+v", tgts)
	}
}
