package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/state"
)

// startTestDaemon writes cfgText to a config file in dir, starts a daemon
// on it and returns it with its listen address and a channel of every
// decision it makes. It stops when the test ends.
func startTestDaemon(t *testing.T, dir, cfgText string) (*daemon, string, chan state.Decision) {
	t.Helper()
	cfgPath := filepath.Join(dir, "dirsync.yaml")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	decisions := make(chan state.Decision, 1000)
	var logs safeBuffer
	a, err := newApp(context.Background(), cfg, appOptions{logOut: &logs, onDecision: func(d state.Decision) { decisions <- d }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	d := newDaemon(a)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr := make(chan string, 1)
	go d.serve(ctx, func(s string) { addr <- s })
	return d, <-addr, decisions
}

// scimCall sends one SCIM request with a bearer token and returns the
// decoded answer; a status of 300 or more fails the test.
func scimCall(t *testing.T, token, method, url, body string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d", method, url, resp.StatusCode)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}
