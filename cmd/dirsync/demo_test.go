package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the dirsync binary when the
// demo re-executes itself as Ezeelogin's API client.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "__ezwapi-fake" {
		os.Exit(runMain(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// The demo runs end to end: plan, apply, and the disabled person suspended
// in all four applications, reported in JSON.
func TestDemoOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	code := runMain(ctx, []string{"demo", "--once", "--output", "json"}, &out, &errb)
	if code != exitOK {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	events := map[string]int{}
	var summary map[string]any
	actions := map[string]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		ev, _ := m["event"].(string)
		events[ev]++
		if ev == "summary" {
			summary = m
		}
		if ev == "decision" {
			actions[m["target"].(string)+":"+m["action"].(string)] = true
		}
	}
	if events["plan"] == 0 || events["decision"] == 0 || events["propagation"] != 4 {
		t.Fatalf("events = %v", events)
	}
	if summary == nil || summary["suspended"].(float64) != 4 {
		t.Fatalf("summary = %v", summary)
	}
	for _, want := range []string{"ssh-gateway:set_expiry", "ssh-gateway:force_password_change", "vpn:create", "door-access:suspend", "printing:suspend"} {
		if !actions[want] {
			t.Errorf("no %s decision in the demo", want)
		}
	}
	t.Logf("propagation: %v ms", summary["max_ms"])
}
