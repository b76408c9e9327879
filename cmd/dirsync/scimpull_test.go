package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/scimclient/scimfake"
	"github.com/dirsync/dirsync/internal/testsrv/scimserve"
)

const pullToken = "pull-token-1618"

// scimPullEnv is a CLI environment whose only source pulls a SCIM provider.
func scimPullEnv(t *testing.T, url, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "dirsync.yaml")}
	cfg := fmt.Sprintf(`log: {level: debug}
state: {backend: embedded, path: %s}
http: {listen: "127.0.0.1:0"}
schedule: {incremental: 1h}
sources:
  - name: hr-scim
    type: scim_pull
    url: %s
    token: %s
%s
targets:
  - name: app
    type: memory
    path: %s
`, filepath.Join(dir, "state.db"), url, pullToken, extra, filepath.Join(dir, "app.json"))
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func seedPullUsers(f *scimfake.Server, n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, f.SeedUser(map[string]any{"userName": fmt.Sprintf("user%03d", i), "active": true,
			"emails": []any{map[string]any{"value": fmt.Sprintf("user%03d@example.test", i), "primary": true}}}))
	}
	return ids
}

func appAccounts(t *testing.T, e *env) (total, suspended int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "app.json"))
	if err != nil {
		return 0, 0
	}
	return strings.Count(string(b), `"exists":true`), strings.Count(string(b), `"suspended":true`)
}

// A SCIM provider whose read comes back short decides nothing destructive:
// the source guard refuses the shrink, as for LDAP; a failed read fails the run untouched.
func TestScimPullShortOrFailedReadIsGuarded(t *testing.T) {
	fake := scimfake.New(scimfake.Options{Token: pullToken})
	srv := httptest.NewServer(fake.Handler())
	defer srv.Close()
	ids := seedPullUsers(fake, 40)
	e := scimPullEnv(t, srv.URL+fake.Prefix(), "    poll_interval: 0\n    retries: 0")
	if code, out, errb := e.run("sync"); code != exitOK || !strings.Contains(out, "40 applied") {
		t.Fatalf("first sync: exit %d: %s %s", code, out, errb)
	}
	before, _ := os.ReadFile(filepath.Join(e.dir, "app.json"))
	for _, id := range ids[:20] {
		req, _ := http.NewRequest("DELETE", srv.URL+fake.Prefix()+"/Users/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+pullToken)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
			t.Fatalf("delete %s: %v %v", id, resp, err)
		}
	}
	code, _, errb := e.run("sync")
	if code != exitFailed || !strings.Contains(errb, "source guard: 20 users, down from 40") {
		t.Fatalf("short read: exit %d, want %d (source guard): %s", code, exitFailed, errb)
	}
	after, _ := os.ReadFile(filepath.Join(e.dir, "app.json"))
	if !bytes.Equal(before, after) {
		t.Fatal("a short read changed the target")
	}
	fake.FailNext("GET", "/Users", scimfake.Fault{Status: 500, Body: `{"status":"500","detail":"database down"}`})
	if code, _, errb := e.run("sync"); code != exitFailed || !strings.Contains(errb, "500") {
		t.Fatalf("failed read: exit %d, want %d: %s", code, exitFailed, errb)
	}
	after, _ = os.ReadFile(filepath.Join(e.dir, "app.json"))
	if !bytes.Equal(before, after) {
		t.Fatal("a failed read changed the target")
	}
}

// A deactivation at a remote SCIM provider (dirsync's own SCIM server in a
// second process) reaches the application through the lastModified poll,
// as a targeted run, without waiting for the scheduled full read.
func TestScimPullPollSuspendsTheDeactivated(t *testing.T) {
	base := scimserve.Start(t, pullToken)
	var ids []string
	for i := range 20 {
		m := scimCall(t, pullToken, "POST", base+"/Users", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"user%03d","active":true,"emails":[{"value":"user%03d@example.test","primary":true}]}`, i, i))
		ids = append(ids, m["id"].(string))
	}
	dir := t.TempDir()
	e := scimPullEnv(t, base, "    poll_interval: 200ms")
	cfgText, _ := os.ReadFile(e.config)
	d, _, decisions := startTestDaemon(t, dir, strings.Replace(string(cfgText), filepath.Join(e.dir, "app.json"), filepath.Join(dir, "app.json"), 1))
	e.dir = dir
	waitFor(t, func() bool { n, _ := appAccounts(t, e); return n == 20 })
	runs := d.runCount.Load()
	time.Sleep(500 * time.Millisecond) // let the first polls after the full read pass
	start := time.Now()
	scimCall(t, pullToken, "PATCH", base+"/Users/"+ids[3], `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	waitFor(t, func() bool { _, s := appAccounts(t, e); return s == 1 })
	t.Logf("deactivation at the provider → suspended in the application: %v (poll interval 200ms)", time.Since(start))
	waitFor(t, func() bool { return d.runCount.Load() > runs })
	found := false
	deadline := time.After(30 * time.Second)
	for !found {
		select {
		case dec := <-decisions:
			if dec.Action == "suspend" && dec.Outcome == "applied" {
				found = true
				if b, _ := json.Marshal(dec); !strings.Contains(string(b), "user003") {
					t.Errorf("suspend decision for someone else: %s", b)
				}
			}
		case <-deadline:
			t.Fatal("no applied suspend decision within 30s")
		}
	}
}
