package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/state"
)

// An Entra-style PATCH active "False" suspends the user in the target within
// 5 s, without waiting for the schedule, with a decision naming the source.
func TestEntraDisableSuspendsWithinSeconds(t *testing.T) {
	dir := t.TempDir()
	const token = "entra-test-token-123"
	t.Setenv("ENTRA_TOKEN", token)
	cfgPath := filepath.Join(dir, "dirsync.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`state: {backend: embedded, path: %s}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@daily"}
sources:
  - name: entra
    type: scim
    tokens: ["${ENTRA_TOKEN}"]
targets:
  - name: app
    type: memory
    path: %s
`, filepath.Join(dir, "state.db"), filepath.Join(dir, "app.json"))), 0o600)
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var logs safeBuffer
	decisions := make(chan state.Decision, 100)
	a, err := newApp(context.Background(), cfg, appOptions{logOut: &logs, onDecision: func(d state.Decision) { decisions <- d }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	d := newDaemon(a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrCh := make(chan string, 1)
	go d.serve(ctx, func(addr string) { addrCh <- addr })
	base := "http://" + <-addrCh + "/scim/entra/v2"
	do := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	code, u := do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alex@example.test","externalId":"a1",
		"name":{"givenName":"Alex","familyName":"Wu"},"emails":[{"value":"alex@example.test","type":"work","primary":true}],"active":true}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, u)
	}
	id, _ := u["id"].(string)
	waitDecision(t, decisions, "create", 5*time.Second)

	start := time.Now()
	code, _ = do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`)
	if code != 200 && code != 204 {
		t.Fatalf("patch: %d", code)
	}
	dec := waitDecision(t, decisions, "suspend", 5*time.Second)
	took := time.Since(start)
	if dec.Outcome != "applied" || !strings.Contains(dec.Reason, "entra") {
		t.Fatalf("decision = %+v, want an applied suspend naming the entra source", dec)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "app.json"))
	if !strings.Contains(string(b), `"suspended":true`) {
		t.Fatalf("target not suspended: %s", b)
	}
	t.Logf("PATCH active=False to suspend applied: %v", took)
	if strings.Contains(logs.String(), token) {
		t.Fatal("the SCIM token reached the log")
	}
}

func waitDecision(t *testing.T, ch chan state.Decision, action string, within time.Duration) state.Decision {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case d := <-ch:
			if d.Action == action {
				return d
			}
		case <-deadline:
			t.Fatalf("no %s decision within %s", action, within)
		}
	}
}
