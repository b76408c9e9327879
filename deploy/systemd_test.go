package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// unit is a parsed systemd unit: section → key → values (keys may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnit checks the unit's hardening and lifecycle settings.
func TestSystemdUnit(t *testing.T) {
	path := filepath.Join("systemd", "dirsync.service")
	u := parseUnit(t, path)
	svc := "Service"
	if !strings.Contains(u.get(svc, "ExecStart"), "dirsync run --config /etc/dirsync/config.yaml") {
		t.Errorf("ExecStart %q", u.get(svc, "ExecStart"))
	}
	if _, ok := u[svc]["ExecReload"]; ok {
		t.Error("ExecReload is set, but dirsync reads its config only at start")
	}
	if u.get(svc, "DynamicUser") != "yes" && u.get(svc, "User") == "" {
		t.Error("neither DynamicUser=yes nor a User: it would run as root")
	}
	if u := u.get(svc, "User"); u == "root" || u == "0" {
		t.Error("User=root")
	}
	for key, want := range map[string]string{
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"StateDirectory":          "dirsync",
		"WorkingDirectory":        "/var/lib/dirsync",
		"RestrictSUIDSGID":        "yes",
		"CapabilityBoundingSet":   "",
		"SystemCallArchitectures": "native",
		"Restart":                 "on-failure",
		"KillSignal":              "SIGTERM",
		"ProtectKernelTunables":   "yes",
		"ProtectControlGroups":    "yes",
		"RestrictNamespaces":      "yes",
		"LockPersonality":         "yes",
		"ProtectKernelModules":    "yes",
		"RestrictRealtime":        "yes",
		"PrivateDevices":          "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	} {
		if _, ok := u[svc][key]; !ok {
			t.Errorf("[Service] %s is not set (want %q)", key, want)
		} else if got := u.get(svc, key); got != want {
			t.Errorf("[Service] %s=%s, want %q", key, got, want)
		}
	}
	stop, err := time.ParseDuration(u.get(svc, "TimeoutStopSec"))
	if err != nil || stop < 60*time.Second {
		t.Errorf("TimeoutStopSec=%s: want at least 60s so the action in flight finishes", u.get(svc, "TimeoutStopSec"))
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("WantedBy=%q", u.get("Install", "WantedBy"))
	}
	if !strings.Contains(u.get("Unit", "After"), "network-online.target") {
		t.Error("After= lacks network-online.target")
	}
}

// TestSystemdAnalyze lets systemd check the unit when systemd-analyze is
// installed (an optional cross-check): no unknown keys or bad values, and an
// exposure score of at most 2.0 (systemd-analyze security; its --threshold
// counts tenths).
func TestSystemdAnalyze(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (optional cross-check)")
	}
	b, err := os.ReadFile(filepath.Join("systemd", "dirsync.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify wants ExecStart's program to exist.
	p := filepath.Join(t.TempDir(), "dirsync.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/dirsync", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", p).CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Errorf("systemd-analyze security: %v: %s", err, lines[len(lines)-1])
	}
}
