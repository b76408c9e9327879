// Package ezeelogin is the connector for Ezeelogin SSH gateways. It drives
// Ezeelogin's documented API client,
//
//	php /usr/local/ezlogin/ezwapi.php <action> -api_url URL -secret S -user U [-expiry YYYY-MM-DD]
//
// through a configurable command prefix (a local PHP, or an ssh hop to the
// gateway), always as an argument list, never through a local shell. The
// client prints `<HTTP code>: <JSON>`; an answer whose JSON has
// "status":"error" is a failure whatever the code.
//
// Capabilities: suspend (suspend_user; the document does not say whether it
// ends the user's open sessions, so they are not known to end), unsuspend
// (unsuspend_user), set expiry (set_user_expiry, Ezeelogin ≥
// 7.40.0) and force password change (force_user_password_change, ≥ 7.32.0).
// reset_user_password (≥ 7.41.0) is used only when reset_password is
// on_suspend: after each suspension the password is scrambled, and the new
// password the gateway returns is discarded — never logged, stored or put
// into an error. Actions the configured version lacks are refused by Gate,
// so the engine records a skipped decision.
//
// There is no create, delete, list or read: Ezeelogin creates its users from
// LDAP/AD itself and its API cannot read anything back. The connector
// therefore relies on dirsync's cache of what it last applied, which must be
// exact. The document never shows how the gateway answers for a user it
// does not know, so no answer text is taken to mean that: every
// {"status":"error"} answer is a failure that keeps the account (a text
// read wrongly would make dirsync forget a leaver's suspension).
//
// set_user_expiry also unsuspends the user ("will also make the user active
// if suspended"). The engine's order (and Order here) puts set_expiry
// before suspend, and SetExpiry is itself one unit: for an account that is
// suspended (a.Suspended) it re-sends suspend_user right after
// set_user_expiry. When that re-suspension fails, or set_user_expiry's
// answer is lost, the error leaves the account's suspension unknown
// (connector.LeftUnknown), so the engine sends the suspension again in
// every run until one is confirmed: the expiry step's failure can never
// leave a cache that says "suspended" over an active account.
//
// First contact: dirsync cannot see whether an administrator suspended a
// user by hand in the gateway, and set_user_expiry would lift such a
// suspension. Until dirsync has itself set an account's suspension (a
// confirmed suspend_user, unsuspend_user or set_user_expiry, recorded as
// Account.Remote["username"]), its suspension is unknown, and with
// first_contact: unknown (the default) set_user_expiry is not sent to it
// while the directory says it is active: a skipped decision says why, and
// dirsync itself suspends the account when the expiry passes (suspend_user
// needs no knowledge). first_contact: active takes such accounts to be
// active (only when nobody suspends Ezeelogin users by hand). A cleared
// expiry is not held: only an expiry dirsync set itself can be cleared.
//
// Expiry dates: Ezeelogin stores an expiry as 23:59:59 of a date in the
// gateway's time zone (timezone). With expiry_date: last_valid_day (the
// default) the date sent is the last day on which the directory still
// considers the account valid (an AD "end of 30 January" is
// accountExpires = 31 January 00:00, sent as 2025-01-30); with expiry_day it
// is simply the date of the expiry instant. The API cannot clear an expiry:
// when the directory clears one (a contract extended, a rehire) the far
// date never_expires (default 2099-12-31) is sent instead, so the person
// gets their access back, and the decision says so; never_expires: skip
// leaves the old date in place (a skipped decision).
//
// Security: the secret is passed as an argument, as the client requires, so
// it is visible in the process list of the machine running the command (the
// gateway, for an ssh hop). It never appears in logs or error messages (any
// output quoted in an error is scrubbed). Each call has a timeout
// (call_timeout); on expiry the whole process group is killed.
package ezeelogin

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// Sample is the documented YAML of an ezeelogin target.
//
//go:embed sample.yaml
var Sample string

// Type is the config type name.
const Type = "ezeelogin"

// The ezwapi.php actions.
const (
	actSuspend      = "suspend_user"
	actUnsuspend    = "unsuspend_user"
	actForceChange  = "force_user_password_change"
	actSetExpiry    = "set_user_expiry"
	actResetPasswd  = "reset_user_password"
	versionForce    = "7.32.0"
	versionExpiry   = "7.40.0"
	versionReset    = "7.41.0"
	defaultTimeout  = 30 * time.Second
	maxOutputQuoted = 300

	defaultNeverExpires = "2099-12-31"
	neverExpiresSkip    = "skip"
	firstContactUnknown = "unknown"
	firstContactActive  = "active"
)

// RemoteUsername is kept in Account.Remote once dirsync has itself set the
// account's suspension in the gateway (a confirmed suspend_user,
// unsuspend_user or set_user_expiry): from then on the cache's suspension
// is known. Its value is the username it was set under: Ezeelogin's id.
const RemoteUsername = "username"

// Settings are the type-specific keys of an ezeelogin target.
type Settings struct {
	// APIURL is the gateway's API URL, without a trailing slash
	// (https://gw.example.com/ezlogin).
	APIURL string `yaml:"api_url"`
	// Secret is the API secret set under Settings → API.
	Secret config.Secret `yaml:"secret"`
	// Version is the gateway's Ezeelogin version ("7.41.0"); it gates
	// actions. Required.
	Version string `yaml:"version"`
	// Command is the command prefix the action and its arguments are
	// appended to. Default: [php, /usr/local/ezlogin/ezwapi.php].
	Command []string `yaml:"command"`
	// Quote: auto (default: quote when the command is ssh), always, never.
	// Quoting single-quotes every argument for a remote shell.
	Quote string `yaml:"quote"`
	// Timezone is the gateway's IANA time zone for expiry dates (default UTC).
	Timezone string `yaml:"timezone"`
	// ExpiryDate: last_valid_day (default) or expiry_day.
	ExpiryDate string `yaml:"expiry_date"`
	// NeverExpires is the date (YYYY-MM-DD) sent when the directory clears
	// an expiry (default 2099-12-31); "skip" leaves the old expiry.
	NeverExpires string `yaml:"never_expires"`
	// FirstContact says what an account dirsync has never suspended or
	// unsuspended is taken to be: unknown (default: set_user_expiry, which
	// lifts a suspension made by hand, is not sent while the directory
	// says it is active) or active.
	FirstContact string `yaml:"first_contact"`
	// CallTimeout bounds each invocation (default: the target's timeout).
	CallTimeout config.Duration `yaml:"call_timeout"`
	// ResetPassword: off (default) or on_suspend.
	ResetPassword string `yaml:"reset_password"`
	// Protected are further usernames never acted on (New only; a
	// configured target uses the common protected key).
	Protected []string `yaml:"-"`
}

// RunFunc runs one command (argv[0] is the program) and returns its output
// and exit code. err is for failures to run at all (not found, killed).
type RunFunc func(ctx context.Context, argv []string) (stdout, stderr []byte, exitCode int, err error)

// Target is the Ezeelogin connector.
type Target struct {
	name     string
	s        Settings
	protect  *connector.Protected
	leading  func() bool // deps.Leading: asked right before each call
	version  []int
	loc      *time.Location
	timeout  time.Duration
	quote    bool
	run      RunFunc
	log      *zap.Logger
	scrubber *strings.Replacer
}

var (
	_ connector.Suspender            = (*Target)(nil)
	_ connector.ExpirySetter         = (*Target)(nil)
	_ connector.PasswordChangeForcer = (*Target)(nil)
	_ connector.Gater                = (*Target)(nil)
	_ connector.Orderer              = (*Target)(nil)
	_ connector.Opener               = (*Target)(nil)
)

// Option adjusts a Target built by New.
type Option func(*Target)

// WithRunner replaces the process runner (tests and the demo use an
// in-process fake: ezeeloginfake.Exec).
func WithRunner(r RunFunc) Option { return func(t *Target) { t.run = r } }

// Factory builds an ezeelogin target from its config (type "ezeelogin").
// It validates and fills defaults only.
func Factory(cfg config.Target, deps connector.Deps) (connector.Connector, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	if s.CallTimeout == 0 {
		s.CallTimeout = cfg.Timeout
	}
	s.Protected = append(s.Protected, cfg.Protected...)
	return newTarget(cfg.Name, s, deps, cfg.Path())
}

// New builds a Target from decoded settings.
func New(name string, s Settings, deps connector.Deps, opts ...Option) (*Target, error) {
	return newTarget(name, s, deps, "", opts...)
}

// newTarget validates s; problems are reported with key paths under path.
func newTarget(name string, s Settings, deps connector.Deps, path string, opts ...Option) (*Target, error) {
	var ps config.Problems
	bad := func(key, format string, args ...any) {
		if path != "" {
			key = path + "." + key
		}
		ps.Add(key, format, args...)
	}
	if name == "" {
		bad("name", "is required")
	}
	if s.APIURL == "" {
		bad("api_url", "is required")
	} else if !strings.HasPrefix(s.APIURL, "http://") && !strings.HasPrefix(s.APIURL, "https://") {
		bad("api_url", "%q must start with http:// or https://", s.APIURL)
	}
	s.APIURL = strings.TrimRight(s.APIURL, "/")
	if s.Secret.IsZero() {
		bad("secret", "is required")
	}
	var version []int
	if s.Version == "" {
		bad("version", `is required (the gateway's Ezeelogin version, e.g. "7.41.0"): it decides which actions exist`)
	} else if v, err := parseVersion(s.Version); err != nil {
		bad("version", "%v", err)
	} else {
		version = v
	}
	if len(s.Command) == 0 {
		s.Command = []string{"php", "/usr/local/ezlogin/ezwapi.php"}
	}
	if s.Command[0] == "" {
		bad("command", "the program (first element) is empty")
	}
	quote := false
	switch s.Quote {
	case "", "auto":
		s.Quote = "auto"
		quote = filepath.Base(s.Command[0]) == "ssh"
	case "always":
		quote = true
	case "never":
	default:
		bad("quote", "%q is not one of auto, always, never", s.Quote)
	}
	if s.Timezone == "" {
		s.Timezone = "UTC"
	}
	loc, err := time.LoadLocation(s.Timezone)
	if err != nil {
		bad("timezone", "%v", err)
	}
	switch s.ExpiryDate {
	case "":
		s.ExpiryDate = "last_valid_day"
	case "last_valid_day", "expiry_day":
	default:
		bad("expiry_date", "%q is not one of last_valid_day, expiry_day", s.ExpiryDate)
	}
	switch s.NeverExpires {
	case "":
		s.NeverExpires = defaultNeverExpires
	case neverExpiresSkip:
	default:
		if _, err := time.Parse("2006-01-02", s.NeverExpires); err != nil {
			bad("never_expires", "%q is not a YYYY-MM-DD date (or skip)", s.NeverExpires)
		}
	}
	switch s.FirstContact {
	case "":
		s.FirstContact = firstContactUnknown
	case firstContactUnknown, firstContactActive:
	default:
		bad("first_contact", "%q is not one of unknown, active", s.FirstContact)
	}
	switch s.ResetPassword {
	case "":
		s.ResetPassword = "off"
	case "off":
	case "on_suspend":
		if version != nil && compareVersion(version, versionReset) < 0 {
			bad("reset_password", "on_suspend needs Ezeelogin %s or later (version is %s)", versionReset, s.Version)
		}
	default:
		bad("reset_password", "%q is not one of off, on_suspend", s.ResetPassword)
	}
	if s.CallTimeout < 0 {
		bad("call_timeout", "must not be negative")
	}
	if len(ps) > 0 {
		if path != "" {
			return nil, ps
		}
		return nil, fmt.Errorf("ezeelogin: %w", ps)
	}
	timeout := s.CallTimeout.D()
	if timeout == 0 {
		timeout = defaultTimeout
	}
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	secret := s.Secret.Value()
	t := &Target{name: name, s: s, version: version, loc: loc, timeout: timeout, quote: quote, run: execRun,
		log: log.With(zap.String("target", name)), protect: connector.NewProtected(s.Protected...), leading: deps.Leading,
		scrubber: strings.NewReplacer(shellQuote(secret), config.Redacted, secret, config.Redacted)}
	for _, o := range opts {
		o(t)
	}
	return t, nil
}

// Name implements connector.Connector.
func (t *Target) Name() string { return t.name }

// Type implements connector.Connector.
func (t *Target) Type() string { return Type }

// Order implements connector.Orderer: set_user_expiry unsuspends, so it goes
// before suspend_user (and SetExpiry itself re-suspends an account that is
// already suspended).
func (t *Target) Order() []connector.Action {
	return []connector.Action{connector.ActUnsuspend, connector.ActSetExpiry, connector.ActForcePasswordChange, connector.ActSuspend}
}

// Open implements connector.Opener: it checks that the command's program can
// be found. It touches no network.
func (t *Target) Open(context.Context) error {
	if _, err := exec.LookPath(t.s.Command[0]); err != nil {
		return connector.Permanent(fmt.Errorf("ezeelogin: command %q: %w", t.s.Command[0], err))
	}
	return nil
}

// Gate implements connector.Gater: actions the configured Ezeelogin version
// lacks, and clearing an expiry with never_expires: skip, are skipped.
func (t *Target) Gate(act connector.Action, a identity.Account) string {
	if why := t.protect.Reason(a); why != "" {
		return why
	}
	if a.Username == "" && (act == connector.ActSuspend || act == connector.ActUnsuspend || act == connector.ActSetExpiry || act == connector.ActForcePasswordChange) {
		return "the account has no username to give Ezeelogin"
	}
	switch act {
	case connector.ActSetExpiry:
		if compareVersion(t.version, versionExpiry) < 0 {
			return fmt.Sprintf("set_user_expiry needs Ezeelogin %s or later (configured version %s)", versionExpiry, t.s.Version)
		}
		if a.Expires == nil && t.s.NeverExpires == neverExpiresSkip {
			return "Ezeelogin's API cannot clear an expiry, and never_expires is skip: the old expiry stays (set never_expires to a far date to give the access back)"
		}

	case connector.ActForcePasswordChange:
		if compareVersion(t.version, versionForce) < 0 {
			return fmt.Sprintf("force_user_password_change needs Ezeelogin %s or later (configured version %s)", versionForce, t.s.Version)
		}
	}
	return ""
}

// known reports whether dirsync has itself set a's suspension in the
// gateway (or its cache says suspended, which only a confirmed suspension
// writes), so the cache's suspension can be trusted.
func (t *Target) known(a identity.Account) bool {
	return a.Suspended || (a.Username != "" && a.Remote[RemoteUsername] == a.Username)
}

// confirmed records that dirsync has set a's suspension.
func confirmed(a *identity.Account) {
	if a.Remote == nil {
		a.Remote = map[string]string{}
	}
	a.Remote[RemoteUsername] = a.Username
}

// Suspend implements connector.Suspender (suspend_user; whether it ends
// open sessions is not documented). With reset_password: on_suspend it
// then scrambles the password with reset_user_password and discards the
// result.
func (t *Target) Suspend(ctx context.Context, a *identity.Account) error {
	if _, err := t.call(ctx, actSuspend, a.Username); err != nil {
		return err
	}
	confirmed(a)
	if t.s.ResetPassword == "on_suspend" {
		if _, err := t.call(ctx, actResetPasswd, a.Username); err != nil {
			return fmt.Errorf("ezeelogin: suspended %q, but scrambling its password failed: %w", a.Username, err)
		}
	}
	return nil
}

// Unsuspend implements connector.Suspender (unsuspend_user).
func (t *Target) Unsuspend(ctx context.Context, a *identity.Account) error {
	if _, err := t.call(ctx, actUnsuspend, a.Username); err != nil {
		return err
	}
	confirmed(a)
	return nil
}

// ForcePasswordChange implements connector.PasswordChangeForcer
// (force_user_password_change). The engine sends it once per directory
// event (when MustChangePassword turns true), not every run.
func (t *Target) ForcePasswordChange(ctx context.Context, a *identity.Account) error {
	if reason := t.Gate(connector.ActForcePasswordChange, *a); reason != "" {
		return connector.Skip("ezeelogin: %s %q: %s", actForceChange, a.Username, reason)
	}
	_, err := t.call(ctx, actForceChange, a.Username)
	return err
}

// SetExpiry implements connector.ExpirySetter (set_user_expiry). Because
// set_user_expiry also unsuspends, an account that is suspended
// (a.Suspended) is suspended again right after, in the same step; when
// that fails (or set_user_expiry's answer is lost) the error leaves the
// suspension unknown, so the engine sends it again. A cleared expiry sends
// never_expires, and the decision says so.
func (t *Target) SetExpiry(ctx context.Context, a *identity.Account) error {
	if reason := t.Gate(connector.ActSetExpiry, *a); reason != "" {
		return connector.Skip("ezeelogin: %s %q: %s", actSetExpiry, a.Username, reason)
	}
	if a.Expires != nil && !a.Suspended && !t.known(*a) && t.s.FirstContact == firstContactUnknown {
		// Decided when sent, from the record as it stands then (a Remote
		// mark written by an earlier step of this run counts). A cleared
		// expiry is exempt: only an expiry dirsync set itself (a confirmed
		// set_user_expiry, which left the user active) can be cleared, and
		// clearing it gives the access back. A leaver seen for the first
		// time gets the suspension now and the expiry in the next run.
		return connector.Skip("ezeelogin: %s %q: set_user_expiry also lifts a suspension, and Ezeelogin cannot be read: whether this account was suspended by hand in the gateway is unknown (dirsync has never set its suspension), so it is not sent; dirsync suspends the account itself when the expiry passes (first_contact: active sends it)", actSetExpiry, a.Username)
	}
	date := t.s.NeverExpires
	if a.Expires != nil {
		date = t.ExpiryDate(*a.Expires)
	}
	if _, err := t.call(ctx, actSetExpiry, a.Username, "-expiry", date); err != nil {
		if a.Suspended && (connector.KindOf(err) == connector.KindRetryable || connector.KindOf(err) == connector.KindUncertain) {
			// Its answer was lost: it may have landed, and unsuspended.
			return connector.LeftUnknown(fmt.Errorf("%w (it may have landed, and set_user_expiry unsuspends: the suspension is sent again)", err), identity.FieldSuspended)
		}
		return err
	}
	if a.Expires == nil {
		connector.Note(ctx, "Ezeelogin's API cannot clear an expiry: sent %s (never_expires) instead, which gives the access back", date)
	}
	if !a.Suspended {
		confirmed(a) // set_user_expiry leaves the user active
		return nil
	}
	if _, err := t.call(ctx, actSuspend, a.Username); err != nil {
		t.log.Warn("set_user_expiry unsuspended the user and suspending again failed: the account is active until the suspension is re-sent",
			zap.String("user", a.Username), zap.Error(err))
		return connector.LeftUnknown(fmt.Errorf("ezeelogin: set expiry of %q to %s: applied, but it unsuspended the user and suspending again failed (the account is ACTIVE until the suspension, sent again in every run, is confirmed): %w", a.Username, date, err), identity.FieldSuspended)
	}
	confirmed(a)
	connector.Note(ctx, "set_user_expiry unsuspends: suspend_user re-sent after it")
	return nil
}

// ExpiryDate returns the date sent to set_user_expiry for an expiry instant.
func (t *Target) ExpiryDate(e time.Time) string {
	if t.s.ExpiryDate == "last_valid_day" {
		e = e.Add(-time.Nanosecond)
	}
	return e.In(t.loc).Format("2006-01-02")
}

// answer is a parsed client answer.
type answer struct {
	code   int
	status string
	data   string
}

var lineRe = regexp.MustCompile(`^\s*(\d{1,3})\s*:\s*(\{.*\})\s*$`)

// call runs one action and classifies the outcome.
func (t *Target) call(ctx context.Context, action, user string, extra ...string) (answer, error) {
	subject := fmt.Sprintf("ezeelogin: %s %q", action, user)
	if user == "" {
		return answer{}, connector.Permanent(fmt.Errorf("%s: the account has no username", subject))
	}
	if err := ctx.Err(); err != nil {
		return answer{}, connector.Retryable(fmt.Errorf("%s: %w", subject, err))
	}
	if why := t.protect.Reason(identity.Account{Username: user}); why != "" {
		return answer{}, connector.Skip("%s: %s", subject, why)
	}
	if t.leading != nil && !t.leading() {
		// This process lost the leader lease: another replica may be
		// sending now. Run nothing.
		return answer{}, connector.Retryable(fmt.Errorf("%s: %w", subject, connector.ErrNotLeading))
	}
	args := append([]string{action, "-api_url", t.s.APIURL, "-secret", t.s.Secret.Value(), "-user", user}, extra...)
	if t.quote {
		for i := range args {
			args[i] = shellQuote(args[i])
		}
	}
	argv := append(append([]string(nil), t.s.Command...), args...)
	cctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	start := time.Now()
	stdout, stderr, exit, err := t.run(cctx, argv)
	dur := time.Since(start)
	fields := []zap.Field{zap.String("action", action), zap.String("user", user), zap.Duration("duration", dur)}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = connector.Retryable(fmt.Errorf("%s: %w", subject, ctx.Err()))
		case errors.Is(cctx.Err(), context.DeadlineExceeded):
			err = connector.Retryable(fmt.Errorf("%s: no answer within %s; the process was killed", subject, t.timeout))
		case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
			err = connector.Permanent(fmt.Errorf("%s: command %q not found: %w", subject, t.s.Command[0], err))
		default:
			err = connector.Retryable(fmt.Errorf("%s: %s", subject, t.scrub(err.Error())))
		}
		t.log.Debug("ezwapi call failed", append(fields, zap.Error(err))...)
		return answer{}, err
	}
	ans, ok := parse(stdout)
	if !ok {
		msg := fmt.Sprintf("%s: unreadable answer (exit status %d)", subject, exit)
		if action != actResetPasswd { // its output may hold a password
			if q := t.quoteOutput(stderr, stdout); q != "" {
				msg += ": " + q
			}
		}
		// Every action is idempotent, so an unknown outcome is retried.
		err := connector.Retryable(errors.New(msg))
		t.log.Debug("ezwapi call failed", append(fields, zap.Int("exit", exit), zap.Error(err))...)
		return answer{}, err
	}
	fields = append(fields, zap.Int("code", ans.code), zap.String("status", ans.status))
	if ans.status == "success" && ans.code >= 200 && ans.code < 300 {
		t.log.Debug("ezwapi call", fields...)
		return ans, nil
	}
	err = t.classify(subject, action, ans)
	t.log.Debug("ezwapi call failed", append(fields, zap.Error(err))...)
	return answer{}, err
}

// unknownUserRe matches answers that look like "no such user". The
// document never shows one, so a match is not taken as proof that the
// account is gone (that would make the engine forget it): it only adds a
// hint to the error.
var unknownUserRe = regexp.MustCompile(`(?i)(invalid|unknown|no such)\s+user|user\s+(not found|does not exist|doesn't exist)`)

func (t *Target) classify(subject, action string, ans answer) error {
	detail := fmt.Sprintf("%d %s", ans.code, ans.status)
	if action != actResetPasswd || ans.status == "error" {
		// An error's data is a message; a reset's success data is the
		// password and is never quoted.
		detail += ": " + t.bound(t.scrub(ans.data))
	}
	err := fmt.Errorf("%s: %s", subject, detail)
	switch {
	case ans.status == "error" && unknownUserRe.MatchString(ans.data):
		return connector.Permanent(fmt.Errorf("%w (the gateway may not know this user: check that it exists in Ezeelogin; the account is kept, since the document does not say how an unknown user is answered)", err))
	case ans.code == 429:
		return connector.RateLimited(err, 0)
	case ans.code >= 500 || ans.code == 408 || ans.code == 0:
		return connector.Retryable(err)
	case ans.code == 401 || ans.code == 403:
		return connector.Permanent(fmt.Errorf("%w (check the API secret and that the action is enabled under Settings → API)", err))
	default:
		return connector.Permanent(err)
	}
}

// parse finds the last `<code>: <json>` line of the client's output.
func parse(out []byte) (answer, bool) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		m := lineRe.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		code, _ := strconv.Atoi(m[1])
		var body struct {
			Status string `json:"status"`
			Data   any    `json:"data"`
		}
		if err := json.Unmarshal([]byte(m[2]), &body); err != nil {
			continue
		}
		data := ""
		switch d := body.Data.(type) {
		case string:
			data = d
		case nil:
		default:
			b, _ := json.Marshal(d)
			data = string(b)
		}
		return answer{code: code, status: strings.ToLower(body.Status), data: data}, true
	}
	return answer{}, false
}

func (t *Target) scrub(s string) string { return t.scrubber.Replace(s) }

func (t *Target) bound(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxOutputQuoted {
		s = s[:maxOutputQuoted] + "…"
	}
	return s
}

// quoteOutput returns a bounded, scrubbed excerpt of stderr (or stdout).
func (t *Target) quoteOutput(stderr, stdout []byte) string {
	s := strings.TrimSpace(string(stderr))
	if s == "" {
		s = strings.TrimSpace(string(stdout))
	}
	return t.bound(t.scrub(s))
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func parseVersion(v string) ([]int, error) {
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".")
	out := make([]int, 0, len(parts))
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a version like 7.41.0", v)
		}
		out = append(out, n)
	}
	return out, nil
}

// compareVersion compares a parsed version with a dotted one.
func compareVersion(have []int, want string) int {
	w, _ := parseVersion(want)
	for i := 0; i < max(len(have), len(w)); i++ {
		var x, y int
		if i < len(have) {
			x = have[i]
		}
		if i < len(w) {
			y = w[i]
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
