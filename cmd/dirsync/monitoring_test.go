package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/internal/testenv"
)

// Every metric the Grafana dashboard and the alerting rules query is one
// the daemon exposes on /metrics (after a run with a suspension and a
// failing source, so every labelled series exists).
func TestMonitoringMetricsExposed(t *testing.T) {
	const users = 30
	ce := startConsoleEnv(t, users)
	ce.writeUsers(users, map[int]bool{4: true})
	ce.d.Trigger(trigger{name: "schedule"})
	waitFor(t, func() bool {
		acts := ce.app.CallsFor("e004")
		return len(acts) > 0 && acts[len(acts)-1] == "suspend"
	})
	var b []byte
	waitFor(t, func() bool { // the decision is recorded just after the call
		resp, err := http.Get("http://" + *ce.d.addr.Load() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.Contains(string(b), `dirsync_offboarding_propagation_seconds_count{trigger="full"} 1`)
	})
	exposed := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exposed[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	re := regexp.MustCompile(`\bdirsync_[a-z0-9_]+`)
	dir := filepath.Join(testenv.RepoRoot(), "deploy", "monitoring")
	checked := 0
	for _, f := range []string{"dirsync-dashboard.json", "dirsync-rules.yaml", "prometheusrule.yaml"} {
		src, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range re.FindAllString(string(src), -1) {
			checked++
			if !exposed[name] {
				t.Errorf("%s queries %s, which /metrics does not expose", f, name)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d metric references found: is the pattern right?", checked)
	}
}
