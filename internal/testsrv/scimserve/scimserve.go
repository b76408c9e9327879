// Package scimserve runs dirsync's own SCIM server (the scim/cmd/scimserve
// command, in-memory store) as a separate process on a loopback port, for
// tests that need a SCIM service provider in another process.
package scimserve

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testenv"
)

// Start builds and starts scimserve accepting bearer token, and returns its
// SCIM root (http://127.0.0.1:PORT/scim/corp/v2). It stops with the test.
func Start(t testing.TB, token string) string {
	t.Helper()
	goTool := testenv.NeedBinary(t, "go")
	bin := filepath.Join(t.TempDir(), "scimserve")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/dirsync/dirsync/scim/cmd/scimserve").CombinedOutput(); err != nil {
		t.Fatalf("build scimserve: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "-source", "corp")
	cmd.Env = append(os.Environ(), "SCIM_TOKEN="+token)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start scimserve: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if _, url, ok := strings.Cut(sc.Text(), "listening on "); ok {
				ready <- strings.TrimSpace(url)
			}
		}
	}()
	select {
	case u := <-ready:
		return u
	case <-time.After(2 * time.Minute):
		t.Fatal("scimserve did not start within 2 minutes")
	}
	return ""
}
