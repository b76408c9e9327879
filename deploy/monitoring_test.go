package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"testing"

	"github.com/dirsync/dirsync/internal/testenv"
	"go.yaml.in/yaml/v3"
)

// promtool checks the rules and runs their unit tests.
func TestPrometheusRulesWithPromtool(t *testing.T) {
	promtool := testenv.NeedBinary(t, "promtool")
	for _, args := range [][]string{{"check", "rules", "dirsync-rules.yaml"}, {"test", "rules", "dirsync-rules.test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "monitoring"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
}

// The PrometheusRule carries exactly the plain file's rules.
func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	var plain, crd struct {
		Kind string `yaml:"kind"`
		Spec any    `yaml:"spec"`
		Any  any    `yaml:"groups"`
	}
	read := func(p string, v any) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	read("monitoring/dirsync-rules.yaml", &plain)
	read("monitoring/prometheusrule.yaml", &crd)
	if crd.Kind != "PrometheusRule" {
		t.Fatalf("kind %q", crd.Kind)
	}
	if !reflect.DeepEqual(crd.Spec, map[string]any{"groups": plain.Any}) {
		t.Fatal("prometheusrule.yaml's spec.groups differ from dirsync-rules.yaml: regenerate it")
	}
}

var metricRe = regexp.MustCompile(`\bdirsync_[a-z0-9_]+`)

// The dashboard is valid JSON, every panel queries something, and it shows
// the metrics the issue asks for (cmd/dirsync's TestMonitoringMetricsExposed
// checks that /metrics exposes every name it queries).
func TestDashboardIsValidAndNamesMetrics(t *testing.T) {
	b, err := os.ReadFile("monitoring/dirsync-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			names = append(names, metricRe.FindAllString(q.Expr, -1)...)
		}
	}
	for _, want := range []string{"dirsync_offboarding_propagation_seconds_bucket", "dirsync_held_plans_waiting", "dirsync_quarantined_accounts",
		"dirsync_circuit_breaker_open", "dirsync_source_last_success_timestamp_seconds", "dirsync_target_last_success_timestamp_seconds"} {
		if !slices.Contains(names, want) {
			t.Errorf("the dashboard does not show %s", want)
		}
	}
}
