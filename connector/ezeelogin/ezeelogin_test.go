package ezeelogin_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeelogin"
	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	apiURL = "https://gw.example.test/ezlogin"
	// secret has shell metacharacters on purpose.
	secret = `zidfji@#$!'"; rm -rf x`
)

// gw is one fake gateway with a connector wired to it.
type gw struct {
	state string
	tg    *ezeelogin.Target
	logs  *bytes.Buffer
}

func newState(t *testing.T, o ezeeloginfake.Options) string {
	t.Helper()
	if o.APIURL == "" {
		o.APIURL = apiURL
	}
	if o.Secret == "" {
		o.Secret = secret
	}
	path := filepath.Join(t.TempDir(), "state.json")
	if err := ezeeloginfake.Create(path, o); err != nil {
		t.Fatal(err)
	}
	return path
}

// debugLogger returns a JSON debug logger writing into a buffer.
func debugLogger() (*zap.Logger, *bytes.Buffer) {
	buf := &bytes.Buffer{}
	var mu sync.Mutex
	ws := zapcore.AddSync(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}))
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), ws, zapcore.DebugLevel)
	return zap.New(core), buf
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func settings(state string, mods ...func(*ezeelogin.Settings)) ezeelogin.Settings {
	s := ezeelogin.Settings{APIURL: apiURL, Secret: config.NewSecret(secret), Version: "7.41.0",
		Command: []string{fakeBin, "--state", state}, CallTimeout: config.Duration(20 * time.Second)}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func newGW(t *testing.T, o ezeeloginfake.Options, mods ...func(*ezeelogin.Settings)) *gw {
	t.Helper()
	state := newState(t, o)
	log, buf := debugLogger()
	tg, err := ezeelogin.New("gateway", settings(state, mods...), connector.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return &gw{state: state, tg: tg, logs: buf}
}

func (g *gw) calls(t *testing.T) []ezeeloginfake.Call {
	t.Helper()
	c, err := ezeeloginfake.Calls(g.state)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (g *gw) user(t *testing.T, name string) ezeeloginfake.User {
	t.Helper()
	u, ok, err := ezeeloginfake.GetUser(g.state, name)
	if err != nil || !ok {
		t.Fatalf("user %q: ok %v, %v", name, ok, err)
	}
	return u
}

func actions(calls []ezeeloginfake.Call) []string {
	var out []string
	for _, c := range calls {
		s := c.Action + " " + c.User
		if c.Expiry != "" {
			s += " " + c.Expiry
		}
		out = append(out, s)
	}
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func acct(name string) *identity.Account {
	return &identity.Account{Key: "k-" + name, Username: name, Exists: true}
}

func TestConformance(t *testing.T) {
	// Seed and Observe reach the fake through the state file of the
	// connector New built for the same test.
	var mu sync.Mutex
	states := map[*testing.T]string{}
	stateOf := func(t *testing.T) string {
		mu.Lock()
		defer mu.Unlock()
		return states[t]
	}
	targettest.Run(t, targettest.Harness{
		New: func(t *testing.T) connector.Connector {
			g := newGW(t, ezeeloginfake.Options{})
			mu.Lock()
			states[t] = g.state
			mu.Unlock()
			return g.tg
		},
		Seed: func(t *testing.T, a identity.Account) identity.Account {
			if err := ezeeloginfake.AddUser(stateOf(t), a.Username); err != nil {
				t.Fatal(err)
			}
			a.Exists = true
			return a
		},
		Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
			u, ok, err := ezeeloginfake.GetUser(stateOf(t), a.Username)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return identity.Account{}, false
			}
			return identity.Account{Username: a.Username, Suspended: u.Suspended, MustChangePassword: u.ForcePasswordChange}, true
		},
		Secrets: []string{secret},
	})
}

func TestActionsAsDocumented(t *testing.T) {
	g := newGW(t, ezeeloginfake.Options{Users: []string{"john", "alex"}})
	c := ctx(t)
	john := acct("john")
	if err := g.tg.Suspend(c, john); err != nil {
		t.Fatal(err)
	}
	if !g.user(t, "john").Suspended {
		t.Fatal("john is not suspended")
	}
	if err := g.tg.Unsuspend(c, john); err != nil {
		t.Fatal(err)
	}
	if err := g.tg.ForcePasswordChange(c, john); err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC) // AD "end of 30 January"
	john.Expires = &exp
	if err := g.tg.SetExpiry(c, john); err != nil {
		t.Fatal(err)
	}
	calls := g.calls(t)
	want := []string{"suspend_user john", "unsuspend_user john", "force_user_password_change john", "set_user_expiry john 2025-01-30"}
	if got := actions(calls); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("calls %q, want %q", got, want)
	}
	for _, call := range calls {
		if !call.SecretOK || call.APIURL != apiURL {
			t.Fatalf("call %+v: secret ok %v, api_url %q", call, call.SecretOK, call.APIURL)
		}
		wantArgs := []string{call.Action, "-api_url", apiURL, "-secret", "[REDACTED]", "-user", "john"}
		if strings.Join(call.Args[:7], " ") != strings.Join(wantArgs, " ") {
			t.Fatalf("args %q, want %q...", call.Args, wantArgs)
		}
	}
	u := g.user(t, "john")
	if u.Suspended || !u.ForcePasswordChange || u.Expiry != "2025-01-30 23:59:59" {
		t.Fatalf("john in the fake: %+v", u)
	}
}

// set_user_expiry unsuspends: on an account that stays suspended the
// connector suspends it again, right after.
func TestSetExpiryResuspends(t *testing.T) {
	g := newGW(t, ezeeloginfake.Options{Users: []string{"john"}})
	c := ctx(t)
	john := acct("john")
	if err := g.tg.Suspend(c, john); err != nil {
		t.Fatal(err)
	}
	john.Suspended = true
	exp := time.Date(2030, 6, 30, 12, 0, 0, 0, time.UTC)
	john.Expires = &exp
	if err := ezeeloginfake.ResetCalls(g.state); err != nil {
		t.Fatal(err)
	}
	if err := g.tg.SetExpiry(c, john); err != nil {
		t.Fatal(err)
	}
	got := actions(g.calls(t))
	want := []string{"set_user_expiry john 2030-06-30", "suspend_user john"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("calls %q, want %q", got, want)
	}
	if u := g.user(t, "john"); !u.Suspended || u.Expiry != "2030-06-30 23:59:59" {
		t.Fatalf("john in the fake: %+v, want suspended with the expiry", u)
	}

	// When suspending again fails, the error says the account is active.
	if err := ezeeloginfake.Update(g.state, func(s *ezeeloginfake.State) error {
		s.DisabledActions = []string{ezeeloginfake.ActSuspend}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err := g.tg.SetExpiry(c, john)
	if err == nil || !strings.Contains(err.Error(), "ACTIVE") {
		t.Fatalf("SetExpiry with a failing re-suspend: %v", err)
	}
}

func TestExpiryDate(t *testing.T) {
	berlin := "Europe/Berlin"
	for _, tc := range []struct {
		mode, tz string
		at       time.Time
		want     string
	}{
		{"last_valid_day", "UTC", time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC), "2025-01-30"},
		{"expiry_day", "UTC", time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC), "2025-01-31"},
		{"last_valid_day", "UTC", time.Date(2025, 1, 30, 15, 0, 0, 0, time.UTC), "2025-01-30"},
		// 23:00 UTC on the 30th is midnight on the 31st in Berlin.
		{"last_valid_day", berlin, time.Date(2025, 1, 30, 23, 0, 0, 0, time.UTC), "2025-01-30"},
		{"expiry_day", berlin, time.Date(2025, 1, 30, 23, 0, 0, 0, time.UTC), "2025-01-31"},
		{"expiry_day", "UTC", time.Date(2025, 1, 30, 23, 0, 0, 0, time.UTC), "2025-01-30"},
	} {
		tg, err := ezeelogin.New("gw", settings("unused", func(s *ezeelogin.Settings) { s.ExpiryDate, s.Timezone = tc.mode, tc.tz }), connector.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.ExpiryDate(tc.at); got != tc.want {
			t.Errorf("%s in %s of %s = %s, want %s", tc.mode, tc.tz, tc.at, got, tc.want)
		}
	}
}

func TestVersionGates(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// john's suspension was set by dirsync before (Remote["username"]).
	a := identity.Account{Username: "john", Expires: &exp, Remote: map[string]string{ezeelogin.RemoteUsername: "john"}}
	for _, tc := range []struct {
		version          string
		expiry, pwChange bool // allowed
	}{
		{"7.31.9", false, false},
		{"7.32.0", false, true},
		{"7.39.12", false, true},
		{"7.40.0", true, true},
		{"7.41.2", true, true},
	} {
		g := newGW(t, ezeeloginfake.Options{Version: tc.version, Users: []string{"john"}}, func(s *ezeelogin.Settings) { s.Version = tc.version })
		if r := g.tg.Gate(connector.ActSetExpiry, a); (r == "") != tc.expiry {
			t.Errorf("%s: set_expiry gate %q", tc.version, r)
		}
		if r := g.tg.Gate(connector.ActForcePasswordChange, a); (r == "") != tc.pwChange {
			t.Errorf("%s: force_password_change gate %q", tc.version, r)
		}
		if r := g.tg.Gate(connector.ActSuspend, a); r != "" {
			t.Errorf("%s: suspend gate %q", tc.version, r)
		}
		// Called anyway, a gated action is a skip, and nothing is sent.
		err := g.tg.SetExpiry(ctx(t), &a)
		if !tc.expiry && connector.KindOf(err) != connector.KindSkipped {
			t.Errorf("%s: SetExpiry: %v, want skipped", tc.version, err)
		}
		if tc.expiry && err != nil {
			t.Errorf("%s: SetExpiry: %v", tc.version, err)
		}
		if !tc.expiry && len(g.calls(t)) != 0 {
			t.Errorf("%s: a gated action reached the gateway", tc.version)
		}
	}
	// The fake enforces the gates too: a connector configured with a newer
	// version than the gateway's gets a permanent error.
	g := newGW(t, ezeeloginfake.Options{Version: "7.39.0", Users: []string{"john"}})
	err := g.tg.SetExpiry(ctx(t), &a)
	if connector.KindOf(err) != connector.KindPermanent {
		t.Fatalf("set_user_expiry on a 7.39 gateway: %v", err)
	}
	// Clearing an expiry: a far date is sent (default 2099-12-31), so the
	// access comes back, and the decision says so; never_expires: skip
	// leaves the old date with a skipped decision.
	g = newGW(t, ezeeloginfake.Options{Users: []string{"john"}}, func(s *ezeelogin.Settings) { s.NeverExpires = "skip" })
	cleared := identity.Account{Username: "john", Remote: map[string]string{ezeelogin.RemoteUsername: "john"}}
	if r := g.tg.Gate(connector.ActSetExpiry, cleared); !strings.Contains(r, "cannot clear") {
		t.Fatalf("gate on clearing: %q", r)
	}
	g = newGW(t, ezeeloginfake.Options{Users: []string{"john"}})
	nctx, notes := connector.WithNotes(ctx(t))
	if err := g.tg.SetExpiry(nctx, &cleared); err != nil {
		t.Fatal(err)
	}
	if u := g.user(t, "john"); u.Expiry != "2099-12-31 23:59:59" {
		t.Fatalf("cleared expiry sent as %q", u.Expiry)
	}
	if !strings.Contains(notes.String(), "cannot clear an expiry: sent 2099-12-31") {
		t.Fatalf("notes %q", notes)
	}
}

func TestErrorsClassified(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   ezeeloginfake.Options
		faults ezeeloginfake.Faults
		mods   func(*ezeelogin.Settings)
		user   string
		want   connector.Kind
		msg    string
	}{
		// The document never shows how an unknown user is answered: no text
		// makes the engine forget the account.
		{name: "unknown user", user: "nobody", want: connector.KindPermanent, msg: "Invalid user"},
		{name: "wrong secret", user: "john", mods: func(s *ezeelogin.Settings) { s.Secret = config.NewSecret("wrong-" + secret) }, want: connector.KindPermanent, msg: "401"},
		{name: "action not enabled", user: "john", opts: ezeeloginfake.Options{DisabledActions: []string{"suspend_user"}}, want: connector.KindPermanent, msg: "not enabled"},
		{name: "server error", user: "john", faults: ezeeloginfake.Faults{FailNext: 1}, want: connector.KindRetryable, msg: "500"},
		{name: "unreachable gateway", user: "john", mods: func(s *ezeelogin.Settings) { s.APIURL = "https://other.example.test/ezlogin" }, want: connector.KindRetryable, msg: "Failed to connect"},
		{name: "garbage", user: "john", faults: ezeeloginfake.Faults{Output: "PHP Warning: something\n", ExitCode: 0}, want: connector.KindRetryable, msg: "unreadable"},
		{name: "error status with 200", user: "john", faults: ezeeloginfake.Faults{Output: `200: {"status":"error","data":"Something broke"}` + "\n"}, want: connector.KindPermanent, msg: "Something broke"},
		{name: "crash dumping argv", user: "john", faults: ezeeloginfake.Faults{EchoArgs: true}, want: connector.KindRetryable, msg: "exit status 255"},
		{name: "command missing", user: "john", mods: func(s *ezeelogin.Settings) { s.Command = []string{"/nonexistent/php"} }, want: connector.KindPermanent, msg: "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.Users = []string{"john"}
			mods := []func(*ezeelogin.Settings){}
			if tc.mods != nil {
				mods = append(mods, tc.mods)
			}
			g := newGW(t, o, mods...)
			if err := ezeeloginfake.SetFaults(g.state, tc.faults); err != nil {
				t.Fatal(err)
			}
			err := g.tg.Suspend(ctx(t), acct(tc.user))
			if err == nil {
				t.Fatal("no error")
			}
			if k := connector.KindOf(err); k != tc.want {
				t.Fatalf("kind %v, want %v: %v", k, tc.want, err)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "ezeelogin: suspend_user \""+tc.user+"\"") {
				t.Fatalf("error %q should start with the subject and mention %q", err, tc.msg)
			}
			assertNoSecret(t, err.Error(), g.logs.String())
		})
	}
}

func assertNoSecret(t *testing.T, texts ...string) {
	t.Helper()
	for _, s := range texts {
		for _, part := range []string{secret, `zidfji@#$!`, `rm -rf x`} {
			if strings.Contains(s, part) {
				t.Fatalf("the secret (or part of it, %q) leaked: %s", part, s)
			}
		}
	}
}

// The secret and a password returned by reset_user_password never reach a
// log line or an error, whatever happens.
func TestSecretAndPasswordNeverLeak(t *testing.T) {
	g := newGW(t, ezeeloginfake.Options{Users: []string{"john"}, PasswordResetAPI: true}, func(s *ezeelogin.Settings) { s.ResetPassword = "on_suspend" })
	c := ctx(t)
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	john := acct("john")
	note(g.tg.Suspend(c, john))
	u := g.user(t, "john")
	if u.PasswordResets != 1 || u.LastPassword == "" || !u.Suspended {
		t.Fatalf("suspend with reset_password on_suspend: %+v", u)
	}
	if got := actions(g.calls(t)); strings.Join(got, "|") != "suspend_user john|reset_user_password john" {
		t.Fatalf("calls %q", got)
	}
	password := u.LastPassword
	note(g.tg.Unsuspend(c, john))
	note(g.tg.ForcePasswordChange(c, john))
	note(g.tg.Suspend(c, acct("nobody")))
	for _, f := range []ezeeloginfake.Faults{{EchoArgs: true}, {FailNext: 1}, {Output: "garbage " + secret}, {Output: `200: {"status":"success","data":"` + password + `"` /* unterminated */, Only: "reset_user_password"}, {Output: "Fatal: " + password, ExitCode: 1, Only: "reset_user_password"}} {
		if err := ezeeloginfake.SetFaults(g.state, f); err != nil {
			t.Fatal(err)
		}
		note(g.tg.Suspend(c, john))
	}
	if len(errs) < 4 {
		t.Fatalf("expected several failures, got %q", errs)
	}
	logs := g.logs.String()
	if !strings.Contains(logs, "ezwapi call") {
		t.Fatalf("no debug lines logged: %q", logs)
	}
	assertNoSecret(t, append(errs, logs)...)
	for _, s := range append(errs, logs) {
		if strings.Contains(s, password) {
			t.Fatalf("the reset password leaked: %s", s)
		}
	}
	// The latest reset password is not in the logs either.
	if p := g.user(t, "john").LastPassword; strings.Contains(logs, p) {
		t.Fatal("the reset password leaked into the logs")
	}
}

// A remote shell (an ssh hop) parses the arguments again: quoting keeps the
// secret intact. sh -c 'eval "$*"' stands in for the remote shell; a
// symlink named ssh makes quote: auto switch quoting on.
func TestQuotingForRemoteShell(t *testing.T) {
	dir := t.TempDir()
	ssh := filepath.Join(dir, "ssh")
	if err := os.Symlink("/bin/sh", ssh); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		command []string
		quote   string
		ok      bool
	}{
		{"auto via ssh", []string{ssh, "-c", `eval "$*"`, "sh"}, "auto", true},
		{"always", []string{"/bin/sh", "-c", `eval "$*"`, "sh"}, "always", true},
		{"never breaks the secret", []string{"/bin/sh", "-c", `eval "$*"`, "sh"}, "never", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := newState(t, ezeeloginfake.Options{Users: []string{"john"}})
			log, buf := debugLogger()
			tg, err := ezeelogin.New("gw", settings(state, func(s *ezeelogin.Settings) {
				s.Command = append(tc.command, fakeBin, "--state", state)
				s.Quote = tc.quote
			}), connector.Deps{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			err = tg.Suspend(ctx(t), acct("john"))
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && err == nil {
				t.Fatal("an unquoted secret with shell characters went through a shell unharmed?")
			}
			calls, _ := ezeeloginfake.Calls(state)
			if tc.ok && (len(calls) != 1 || !calls[0].SecretOK || calls[0].User != "john") {
				t.Fatalf("calls %+v", calls)
			}
			if err != nil {
				assertNoSecret(t, err.Error(), buf.String())
			}
		})
	}
}

// A hung client is killed at call_timeout, with everything it started.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	state := newState(t, ezeeloginfake.Options{Users: []string{"john"}})
	if err := ezeeloginfake.SetFaults(state, ezeeloginfake.Faults{Delay: "1h"}); err != nil {
		t.Fatal(err)
	}
	// sh stays the parent (the fake is a grandchild of the connector).
	tg, err := ezeelogin.New("gw", settings(state, func(s *ezeelogin.Settings) {
		s.Command = []string{"/bin/sh", "-c", `"$@"; exit $?`, "sh", fakeBin, "--state", state}
		s.CallTimeout = config.Duration(500 * time.Millisecond)
	}), connector.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	err = tg.Suspend(ctx(t), acct("john"))
	if k := connector.KindOf(err); k != connector.KindRetryable || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("hung call: kind %v: %v", k, err)
	}
	st, err := ezeeloginfake.Load(state)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Started) != 1 || len(st.Calls) != 0 {
		t.Fatalf("started %v, calls %+v", st.Started, st.Calls)
	}
	pid := st.Started[0]
	deadline := time.Now().Add(20 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the fake (pid %d) survived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie counts as dead).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func TestCancelledContextSendsNothing(t *testing.T) {
	g := newGW(t, ezeeloginfake.Options{Users: []string{"john"}})
	c, cancel := context.WithCancel(context.Background())
	cancel()
	err := g.tg.Suspend(c, acct("john"))
	if k := connector.KindOf(err); k != connector.KindRetryable {
		t.Fatalf("kind %v: %v", k, err)
	}
	if n := len(g.calls(t)); n != 0 {
		t.Fatalf("%d calls sent with a cancelled context", n)
	}
}

// Parallel invocations of the fake keep every call (file locking).
func TestParallelCalls(t *testing.T) {
	var users []string
	for i := range 16 {
		users = append(users, fmt.Sprintf("user%02d", i))
	}
	g := newGW(t, ezeeloginfake.Options{Users: users})
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- g.tg.Suspend(ctx(t), acct(u))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(g.calls(t)); n != len(users) {
		t.Fatalf("%d calls recorded, want %d", n, len(users))
	}
	for _, u := range users {
		if !g.user(t, u).Suspended {
			t.Fatalf("%s not suspended", u)
		}
	}
}

func TestInProcessRunner(t *testing.T) {
	state := newState(t, ezeeloginfake.Options{Users: []string{"john"}})
	tg, err := ezeelogin.New("gw", settings(state, func(s *ezeelogin.Settings) {
		s.Command = []string{"ezwapi-fake", "--state", state}
	}), connector.Deps{}, ezeelogin.WithRunner(ezeeloginfake.Exec))
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.Suspend(ctx(t), acct("john")); err != nil {
		t.Fatal(err)
	}
	if u, _, _ := ezeeloginfake.GetUser(state, "john"); !u.Suspended {
		t.Fatal("not suspended")
	}
}

func TestCapabilities(t *testing.T) {
	g := newGW(t, ezeeloginfake.Options{})
	got := connector.Capabilities(g.tg)
	want := []connector.Action{connector.ActUnsuspend, connector.ActSetExpiry, connector.ActForcePasswordChange, connector.ActSuspend}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("capabilities %v, want %v", got, want)
	}
	for _, a := range []connector.Action{connector.ActCreate, connector.ActDelete, connector.ActSetRole, connector.ActSetGroups, connector.ActUpdate} {
		if connector.Supports(g.tg, a) {
			t.Fatalf("supports %s", a)
		}
	}
	if _, ok := any(g.tg).(connector.Lister); ok {
		t.Fatal("Ezeelogin cannot list")
	}
	order := g.tg.Order()
	idx := func(a connector.Action) int {
		for i, x := range order {
			if x == a {
				return i
			}
		}
		return -1
	}
	if idx(connector.ActSetExpiry) > idx(connector.ActSuspend) {
		t.Fatal("set_expiry must come before suspend")
	}
}

// A process that lost the leader lease runs nothing; a protected account
// is refused before anything runs.
func TestLeaseAndProtected(t *testing.T) {
	ran := 0
	runner := ezeelogin.WithRunner(func(context.Context, []string) ([]byte, []byte, int, error) {
		ran++
		return []byte(`200: {"status":"success","data":""}`), nil, 0, nil
	})
	leading := true
	s := settings("unused")
	s.Protected = []string{"root-admin"}
	tg, err := ezeelogin.New("gw", s, connector.Deps{Leading: func() bool { return leading }}, runner)
	if err != nil {
		t.Fatal(err)
	}
	c := context.Background()
	if err := tg.Suspend(c, &identity.Account{Username: "Root-Admin"}); connector.KindOf(err) != connector.KindSkipped || ran != 0 {
		t.Fatalf("protected: %v (ran %d)", err, ran)
	}
	if why := tg.Gate(connector.ActSuspend, identity.Account{Username: "root-admin"}); why == "" {
		t.Fatal("gate lets a protected account through")
	}
	leading = false
	if err := tg.Suspend(c, &identity.Account{Username: "jo"}); !errors.Is(err, connector.ErrNotLeading) || connector.KindOf(err) != connector.KindRetryable || ran != 0 {
		t.Fatalf("without the lease: %v (ran %d)", err, ran)
	}
	leading = true
	if err := tg.Suspend(c, &identity.Account{Username: "jo"}); err != nil || ran != 1 {
		t.Fatalf("with the lease: %v (ran %d)", err, ran)
	}
}
