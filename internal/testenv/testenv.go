// Package testenv holds the rules tests follow for real servers and peer
// tools: skip with a clear message when a binary is missing, unless
// DIRSYNC_INTEGRATION=1, where a missing binary fails the test instead.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Integration reports whether DIRSYNC_INTEGRATION=1 is set.
func Integration() bool { return os.Getenv("DIRSYNC_INTEGRATION") == "1" }

// NeedBinary returns the path of name (looked up in PATH and the sbin
// folders), skipping the test — or failing it under DIRSYNC_INTEGRATION=1 —
// when it is missing.
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	Missing(t, name+" is not installed (run ./scripts/test.sh, which installs it)")
	return ""
}

// Missing skips (or, under DIRSYNC_INTEGRATION=1, fails) with why.
func Missing(t testing.TB, why string) {
	t.Helper()
	if Integration() {
		t.Fatalf("DIRSYNC_INTEGRATION=1 but %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RepoRoot returns the repository's root folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// SharedDir returns ../shared beside the checkout (DIRSYNC_SHARED overrides),
// or "" when it does not exist.
func SharedDir() string {
	d := os.Getenv("DIRSYNC_SHARED")
	if d == "" {
		d = filepath.Join(RepoRoot(), "..", "shared")
	}
	if st, err := os.Stat(d); err == nil && st.IsDir() {
		return d
	}
	return ""
}

// ScimmyDir returns the folder of the scimmy peer server with its npm
// packages installed (scripts/npm-peers.sh), skipping or failing when absent.
func ScimmyDir(t testing.TB) string {
	t.Helper()
	NeedBinary(t, "node")
	d := os.Getenv("DIRSYNC_SCIMMY_DIR")
	if d == "" {
		d = filepath.Join(RepoRoot(), ".cache", "scimmy-server")
	}
	if _, err := os.Stat(filepath.Join(d, "node_modules", "scimmy")); err != nil {
		if SharedDir() == "" {
			// The peer material lives outside the repository; without it
			// there is nothing to install, integration run or not.
			t.Skip("skipping: ../shared/peers/scim (the scimmy peer) is not beside this checkout; set DIRSYNC_SHARED")
		}
		Missing(t, "the scimmy peer server is not installed in "+d+" (run scripts/npm-peers.sh)")
	}
	return d
}
