// Package scimmy starts the scimmy SCIM peer server (../shared/peers/scim,
// node + the npm packages scimmy, scimmy-routers and express) on a loopback
// port for a test, and stops it when the test ends.
package scimmy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testenv"
)

// Server is a running scimmy peer.
type Server struct {
	// Root is http://127.0.0.1:PORT; Base is the SCIM root (Root + /scim/v2).
	Root, Base string
}

// Dump is what the peer stores, read through its /_dump test hook.
type Dump struct {
	Users  []map[string]any `json:"Users"`
	Groups []map[string]any `json:"Groups"`
}

// Start starts scimmy accepting bearer token, skipping the test (or failing
// it under DIRSYNC_INTEGRATION=1) when node or the npm packages are missing.
func Start(t testing.TB, token string) Server {
	t.Helper()
	dir := testenv.ScimmyDir(t)
	node := testenv.NeedBinary(t, "node")
	port := testenv.FreePort(t)
	var out bytes.Buffer
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "TOKEN="+token, "QUIET=1")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start scimmy: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	s := Server{Root: fmt.Sprintf("http://127.0.0.1:%d", port)}
	s.Base = s.Root + "/scim/v2"
	for i := 0; i < 300; i++ {
		select {
		case <-exited:
			t.Fatalf("scimmy exited: %s", out.String())
		default:
		}
		req, _ := http.NewRequest("GET", s.Base+"/ServiceProviderConfig", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond) // waiting for readiness, not timing anything
	}
	t.Fatalf("scimmy not ready: %s", out.String())
	return s
}

// Dump reads what the peer stores.
func (s Server) Dump(t testing.TB) Dump {
	t.Helper()
	resp, err := http.Get(s.Root + "/_dump")
	if err != nil {
		t.Fatalf("scimmy dump: %v", err)
	}
	defer resp.Body.Close()
	var d Dump
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatalf("scimmy dump: %v", err)
	}
	return d
}
