// Package ezeeloginfake is a stand-in for Ezeelogin's documented API client,
// `php /usr/local/ezlogin/ezwapi.php <action> -api_url URL -secret S -user U
// [-expiry YYYY-MM-DD]`. It keeps the gateway's users in a JSON state file
// (locked, so parallel invocations are safe), answers `<code>: <json>` as
// the real client prints it, enforces the version gates (7.32.0 / 7.40.0 /
// 7.41.0) and the "set_user_expiry also unsuspends" rule, and records every
// call (with the secret redacted) so tests assert on what was sent.
//
// Three ways to run it: the ezwapi-fake program (cmd/ezwapi-fake, built by
// tests and usable by the demo as the connector's command), Main from any Go
// program (e.g. a hidden subcommand of the dirsync binary, so the demo can
// re-execute itself as the fake), and Exec, an in-process runner with the
// signature of ezeelogin.RunFunc.
//
// The state file is named by a leading `--state FILE` argument or the
// EZWAPI_FAKE_STATE environment variable.
package ezeeloginfake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The actions the client knows, with the version that introduced them.
const (
	ActSuspend             = "suspend_user"
	ActUnsuspend           = "unsuspend_user"
	ActForcePasswordChange = "force_user_password_change"
	ActSetExpiry           = "set_user_expiry"
	ActResetPassword       = "reset_user_password"
)

// MinVersion is the first Ezeelogin version that has each user action.
var minVersion = map[string]string{
	ActSuspend:             "0",
	ActUnsuspend:           "0",
	ActForcePasswordChange: "7.32.0",
	ActSetExpiry:           "7.40.0",
	ActResetPassword:       "7.41.0",
}

// MinVersion returns the first Ezeelogin version that has action, or "" for
// an action the client does not know.
func MinVersion(action string) string { return minVersion[action] }

// State is the fake gateway, as kept in the state file.
type State struct {
	// Version is the Ezeelogin version the fake pretends to be.
	Version string `json:"version"`
	// APIURL, when set, is the only -api_url that reaches the gateway; any
	// other fails as a connection error.
	APIURL string `json:"api_url,omitempty"`
	// SecretSHA256 is the hex SHA-256 of the API secret set under
	// Settings → API (the secret itself is not kept).
	SecretSHA256 string `json:"secret_sha256"`
	// DisabledActions are actions not enabled under Settings → API.
	DisabledActions []string `json:"disabled_actions,omitempty"`
	// PasswordResetAPI is Settings → Security → Enable Password Reset API.
	PasswordResetAPI bool `json:"password_reset_api"`
	// UnknownUserText is the error data answered for a user the gateway
	// does not know. The document never shows it: tests vary it (default
	// "Invalid user").
	UnknownUserText string           `json:"unknown_user_text,omitempty"`
	Users           map[string]*User `json:"users"`
	Calls           []Call           `json:"calls"`
	// Started lists the process ids of invocations that began (including
	// ones killed before answering), for timeout tests.
	Started []int  `json:"started,omitempty"`
	Faults  Faults `json:"faults"`
}

// User is one Ezeelogin user.
type User struct {
	Suspended bool `json:"suspended"`
	// Expiry is "YYYY-MM-DD 23:59:59", as the gateway stores it; empty for none.
	Expiry              string `json:"expiry,omitempty"`
	ForcePasswordChange bool   `json:"force_password_change"`
	// LiveSessions counts open sessions. The document does not say that
	// suspend_user ends them, so the fake leaves them open.
	LiveSessions int `json:"live_sessions"`
	// LastPassword is the last password reset_user_password generated
	// (kept so tests can check it never leaks).
	LastPassword   string `json:"last_password,omitempty"`
	PasswordResets int    `json:"password_resets"`
}

// Call is one recorded invocation.
type Call struct {
	Seq    int       `json:"seq"`
	Time   time.Time `json:"time"`
	Action string    `json:"action"`
	User   string    `json:"user,omitempty"`
	Expiry string    `json:"expiry,omitempty"`
	APIURL string    `json:"api_url,omitempty"`
	// SecretOK says whether the secret matched; the secret is not recorded.
	SecretOK bool `json:"secret_ok"`
	// Args are the arguments as received, the secret replaced by [REDACTED].
	Args   []string `json:"args"`
	Code   int      `json:"code"`
	Status string   `json:"status"`
}

// Faults make the fake misbehave, for tests.
type Faults struct {
	// Delay is slept before answering (a hung gateway), e.g. "5s".
	Delay string `json:"delay,omitempty"`
	// FailNext answers the next N calls with a 500 error.
	FailNext int `json:"fail_next,omitempty"`
	// Output, when set, is printed instead of an answer, with ExitCode.
	Output   string `json:"output,omitempty"`
	ExitCode int    `json:"exit_code,omitempty"`
	// EchoArgs prints every argument (the secret included) to stderr and
	// exits 255, like a crashing script dumping its command line.
	EchoArgs bool `json:"echo_args,omitempty"`
	// Only limits the faults to one action; empty means every action.
	Only string `json:"only,omitempty"`
}

// Options describe a new fake gateway.
type Options struct {
	Version          string // default 7.41.0
	APIURL           string
	Secret           string
	Users            []string
	PasswordResetAPI bool
	DisabledActions  []string
	// UnknownUserText: see State.UnknownUserText.
	UnknownUserText string
}

// Create writes a fresh state file at path.
func Create(path string, o Options) error {
	if o.Version == "" {
		o.Version = "7.41.0"
	}
	st := &State{Version: o.Version, APIURL: o.APIURL, SecretSHA256: hashSecret(o.Secret),
		PasswordResetAPI: o.PasswordResetAPI, DisabledActions: o.DisabledActions, UnknownUserText: o.UnknownUserText, Users: map[string]*User{}}
	for _, u := range o.Users {
		st.Users[u] = &User{}
	}
	return withLock(path, func() error { return save(path, st) })
}

// Load reads the state file.
func Load(path string) (*State, error) {
	var st *State
	err := withLock(path, func() error {
		var err error
		st, err = load(path)
		return err
	})
	return st, err
}

// Update changes the state file under its lock.
func Update(path string, fn func(*State) error) error {
	return withLock(path, func() error {
		st, err := load(path)
		if err != nil {
			return err
		}
		if err := fn(st); err != nil {
			return err
		}
		return save(path, st)
	})
}

// AddUser makes a user exist on the gateway (as if LDAP had created it).
func AddUser(path string, name string) error {
	return Update(path, func(s *State) error {
		if _, ok := s.Users[name]; !ok {
			s.Users[name] = &User{}
		}
		return nil
	})
}

// SetFaults replaces the fault settings.
func SetFaults(path string, f Faults) error {
	return Update(path, func(s *State) error { s.Faults = f; return nil })
}

// Calls returns the recorded calls.
func Calls(path string) ([]Call, error) {
	st, err := Load(path)
	if err != nil {
		return nil, err
	}
	return st.Calls, nil
}

// ResetCalls forgets the recorded calls.
func ResetCalls(path string) error {
	return Update(path, func(s *State) error { s.Calls = nil; return nil })
}

// GetUser returns one user's state.
func GetUser(path, name string) (User, bool, error) {
	st, err := Load(path)
	if err != nil {
		return User{}, false, err
	}
	u, ok := st.Users[name]
	if !ok {
		return User{}, false, nil
	}
	return *u, true, nil
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func load(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ezeeloginfake: read state: %w", err)
	}
	st := &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("ezeeloginfake: parse state %s: %w", path, err)
	}
	if st.Users == nil {
		st.Users = map[string]*User{}
	}
	return st, nil
}

// save writes atomically (temp file + rename) so a killed invocation never
// leaves a torn file.
func save(path string, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("ezeeloginfake: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ezwapi-state-*")
	if err != nil {
		return fmt.Errorf("ezeeloginfake: write state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("ezeeloginfake: write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("ezeeloginfake: write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("ezeeloginfake: write state: %w", err)
	}
	return nil
}

// Main runs the fake client with args (without the program name), as the
// ezwapi-fake program does, and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return run(context.Background(), args, stdout, stderr)
}

// Exec runs the fake in-process. argv[0] is the program name (ignored), as
// for a command prefix ["ezwapi-fake", "--state", FILE]. ctx cancels a
// configured delay.
func Exec(ctx context.Context, argv []string) (stdout, stderr []byte, exitCode int, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, -1, err
	}
	var o, e bytes.Buffer
	args := argv
	if len(args) > 0 {
		args = args[1:]
	}
	code := run(ctx, args, &o, &e)
	if err := ctx.Err(); err != nil && code == exitKilled {
		return o.Bytes(), e.Bytes(), -1, err
	}
	return o.Bytes(), e.Bytes(), code, nil
}

const exitKilled = 137

func usage(w io.Writer, action string) {
	switch action {
	case "":
		fmt.Fprintln(w, "Usage:\nezwapi.php -help <action>\naction : API action\n(list_servers/add_server/update_server/remove_server/reset_fingerprint/add_user_server_acl/suspend_user/unsuspend_user/force_user_password_change/set_user_expiry)")
		fmt.Fprintln(w, "\nNOTE: 'set_user_expiry' will also make the user active if suspended")
	case ActSetExpiry:
		fmt.Fprintln(w, "Usage:\nezwapi.php set_user_expiry -api_url <API URL> -secret <API secret> -user <username> -expiry <YYYY-MM-DD>")
	default:
		fmt.Fprintf(w, "Usage:\nezwapi.php %s -api_url <API URL> -secret <API secret> -user <username>\n", action)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	path := os.Getenv("EZWAPI_FAKE_STATE")
	if len(args) >= 2 && args[0] == "--state" {
		path, args = args[1], args[2:]
	}
	if path == "" {
		fmt.Fprintln(stderr, "ezwapi-fake: no state file (--state FILE or EZWAPI_FAKE_STATE)")
		return 2
	}
	if len(args) == 0 || args[0] == "-help" {
		a := ""
		if len(args) > 1 {
			a = args[1]
		}
		usage(stdout, a)
		return 0
	}
	action := args[0]
	params := map[string]string{}
	for i := 1; i < len(args); i++ {
		k := args[i]
		if !strings.HasPrefix(k, "-") || i+1 >= len(args) {
			usage(stdout, action)
			return 1
		}
		params[strings.TrimPrefix(k, "-")] = args[i+1]
		i++
	}
	// Note the start (and consume a FailNext) before any delay.
	var faults Faults
	failThis := false
	err := Update(path, func(s *State) error {
		s.Started = append(s.Started, os.Getpid())
		faults = s.Faults
		if faults.Only != "" && faults.Only != action {
			faults = Faults{}
			return nil
		}
		if s.Faults.FailNext > 0 {
			s.Faults.FailNext--
			failThis = true
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if faults.Delay != "" {
		d, err := time.ParseDuration(faults.Delay)
		if err == nil && d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return exitKilled
			case <-t.C:
			}
		}
	}
	if faults.EchoArgs {
		fmt.Fprintf(stderr, "PHP Fatal error: Uncaught Exception in ezwapi.php: argv = %s\n", strings.Join(args, " "))
		return 255
	}
	if faults.Output != "" {
		fmt.Fprint(stdout, faults.Output)
		return faults.ExitCode
	}
	var code int
	var status, data string
	var connErr string
	err = Update(path, func(s *State) error {
		code, status, data, connErr = s.handle(action, params, failThis)
		redacted := slices.Clone(args)
		for i := range redacted {
			if redacted[i] == "-secret" && i+1 < len(redacted) {
				redacted[i+1] = "[REDACTED]"
			}
		}
		s.Calls = append(s.Calls, Call{Seq: len(s.Calls) + 1, Time: time.Now().UTC(), Action: action, User: params["user"],
			Expiry: params["expiry"], APIURL: params["api_url"], SecretOK: hashSecret(params["secret"]) == s.SecretSHA256,
			Args: redacted, Code: code, Status: status})
		return nil
	})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if connErr != "" {
		fmt.Fprintln(stderr, connErr)
		return 1
	}
	b, _ := json.Marshal(struct {
		Status string `json:"status"`
		Data   string `json:"data"`
	}{status, data})
	fmt.Fprintf(stdout, "%d: %s\n", code, b)
	return 0
}

// handle applies one call and returns the answer.
func (s *State) handle(action string, p map[string]string, fail bool) (code int, status, data, connErr string) {
	if _, known := minVersion[action]; !known {
		return 400, "error", "Invalid action", ""
	}
	if p["api_url"] == "" || p["secret"] == "" || p["user"] == "" || (action == ActSetExpiry && p["expiry"] == "") {
		return 400, "error", "Missing parameters", ""
	}
	if s.APIURL != "" && strings.TrimRight(p["api_url"], "/") != s.APIURL {
		return 0, "", "", fmt.Sprintf("cURL error 7: Failed to connect to %s", p["api_url"])
	}
	if strings.HasSuffix(p["api_url"], "/") {
		return 404, "error", "Not Found", ""
	}
	if fail {
		return 500, "error", "Internal Server Error", ""
	}
	if hashSecret(p["secret"]) != s.SecretSHA256 {
		return 401, "error", "Invalid API secret", ""
	}
	if compareVersions(s.Version, minVersion[action]) < 0 {
		return 400, "error", "Invalid action", ""
	}
	if slices.Contains(s.DisabledActions, action) {
		return 200, "error", "API action not enabled", ""
	}
	u, ok := s.Users[p["user"]]
	if !ok {
		text := s.UnknownUserText
		if text == "" {
			text = "Invalid user"
		}
		return 200, "error", text, ""
	}
	switch action {
	case ActSuspend:
		u.Suspended = true
	case ActUnsuspend:
		u.Suspended = false
	case ActForcePasswordChange:
		u.ForcePasswordChange = true
	case ActSetExpiry:
		d, err := time.Parse("2006-01-02", p["expiry"])
		if err != nil {
			return 200, "error", "Invalid expiry date", ""
		}
		u.Expiry = d.Format("2006-01-02") + " 23:59:59"
		u.Suspended = false // documented: setting expiry also makes the user active
	case ActResetPassword:
		if !s.PasswordResetAPI {
			return 200, "error", "Password reset API is disabled", ""
		}
		u.LastPassword = randomPassword()
		u.PasswordResets++
		u.ForcePasswordChange = false
		return 200, "success", u.LastPassword, ""
	}
	return 200, "success", "Success", ""
}

func randomPassword() string {
	const chars = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789*#%"
	b := make([]byte, 12)
	for i := range b {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
		b[i] = chars[n.Int64()]
	}
	return string(b)
}

// compareVersions compares dotted versions numerically ("7.40.0" > "7.32.1").
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Usernames returns the users' names, sorted.
func (s *State) Usernames() []string {
	out := make([]string, 0, len(s.Users))
	for n := range s.Users {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
