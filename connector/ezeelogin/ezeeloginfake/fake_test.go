package ezeeloginfake_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
)

const secret = `s3cr'et$`

func setup(t *testing.T, o ezeeloginfake.Options) string {
	t.Helper()
	o.Secret = secret
	path := filepath.Join(t.TempDir(), "state.json")
	if err := ezeeloginfake.Create(path, o); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(path string, args ...string) (string, int) {
	var out, errb bytes.Buffer
	code := ezeeloginfake.Main(append([]string{"--state", path}, args...), &out, &errb)
	return out.String() + errb.String(), code
}

func call(path, action, user string, extra ...string) string {
	out, _ := run(path, append([]string{action, "-api_url", "http://gw/ezlogin", "-secret", secret, "-user", user}, extra...)...)
	return strings.TrimSpace(out)
}

func TestAnswersAsDocumented(t *testing.T) {
	path := setup(t, ezeeloginfake.Options{Users: []string{"john"}, PasswordResetAPI: true})
	if out, code := run(path, "-help"); code != 0 || !strings.Contains(out, "set_user_expiry will also make the user active") && !strings.Contains(out, "'set_user_expiry' will also make the user active") {
		t.Fatalf("help: %d %q", code, out)
	}
	for _, tc := range []struct{ action, user, want string }{
		{"suspend_user", "john", `200: {"status":"success","data":"Success"}`},
		{"unsuspend_user", "john", `200: {"status":"success","data":"Success"}`},
		{"force_user_password_change", "john", `200: {"status":"success","data":"Success"}`},
		{"suspend_user", "nobody", `200: {"status":"error","data":"Invalid user"}`},
		{"delete_user", "john", `400: {"status":"error","data":"Invalid action"}`},
	} {
		if got := call(path, tc.action, tc.user); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.action, tc.user, got, tc.want)
		}
	}
	// set_user_expiry also unsuspends.
	call(path, "suspend_user", "john")
	if got := call(path, "set_user_expiry", "john", "-expiry", "2025-01-30"); got != `200: {"status":"success","data":"Success"}` {
		t.Fatal(got)
	}
	u, _, _ := ezeeloginfake.GetUser(path, "john")
	if u.Suspended || u.Expiry != "2025-01-30 23:59:59" {
		t.Fatalf("after set_user_expiry: %+v", u)
	}
	// reset_user_password returns the password in data.
	got := call(path, "reset_user_password", "john")
	u, _, _ = ezeeloginfake.GetUser(path, "john")
	if got != `200: {"status":"success","data":"`+u.LastPassword+`"}` {
		t.Fatalf("reset: %q", got)
	}
	// Wrong secret.
	out, _ := run(path, "suspend_user", "-api_url", "http://gw/ezlogin", "-secret", "nope", "-user", "john")
	if !strings.HasPrefix(out, "401:") {
		t.Fatalf("wrong secret: %q", out)
	}
	// The state file keeps neither the secret nor its calls' secrets.
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), secret) {
		t.Fatal("the state file holds the secret")
	}
	calls, _ := ezeeloginfake.Calls(path)
	if len(calls) != 9 || !calls[0].SecretOK || calls[len(calls)-1].SecretOK {
		t.Fatalf("calls %+v", calls)
	}
}

func TestVersionGates(t *testing.T) {
	for version, want := range map[string][3]bool{
		"7.31.0": {false, false, false},
		"7.32.0": {true, false, false},
		"7.40.0": {true, true, false},
		"7.41.0": {true, true, true},
	} {
		path := setup(t, ezeeloginfake.Options{Version: version, Users: []string{"john"}, PasswordResetAPI: true})
		for i, action := range []string{"force_user_password_change", "set_user_expiry", "reset_user_password"} {
			got := call(path, action, "john", "-expiry", "2030-01-01")
			if ok := strings.Contains(got, `"success"`); ok != want[i] {
				t.Errorf("%s on %s: %q", action, version, got)
			}
		}
	}
}

func TestExecInProcess(t *testing.T) {
	path := setup(t, ezeeloginfake.Options{Users: []string{"john"}})
	out, _, code, err := ezeeloginfake.Exec(context.Background(), []string{"ezwapi-fake", "--state", path, "suspend_user", "-api_url", "http://gw/ezlogin", "-secret", secret, "-user", "john"})
	if err != nil || code != 0 || !strings.Contains(string(out), "success") {
		t.Fatalf("%q %d %v", out, code, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, _, err := ezeeloginfake.Exec(ctx, []string{"ezwapi-fake", "--state", path, "-help"}); err == nil {
		t.Fatal("a cancelled context ran")
	}
}
