// Package config loads and validates dirsync's YAML configuration: ${ENV}
// expansion, file: secrets, unknown keys as errors, and every problem reported
// at once with the key path it belongs to.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	Log      Log      `yaml:"log"`
	State    State    `yaml:"state"`
	HTTP     HTTP     `yaml:"http"`
	Schedule Schedule `yaml:"schedule"`
	Safety   Safety   `yaml:"safety"`
	// JoinKey matches users across sources: email (default), username or key.
	JoinKey string   `yaml:"join_key"`
	Sources []Source `yaml:"sources"`
	Targets []Target `yaml:"targets"`
	// Notify sends notifications (held plans, failing sources, ...).
	Notify Notify `yaml:"notify"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // json (default) or console
}

// State configures the state store.
type State struct {
	Backend string `yaml:"backend"` // embedded (default) or redis
	Path    string `yaml:"path"`    // bbolt file for the embedded backend
	Redis   Redis  `yaml:"redis"`
	// JournalSize bounds the decision journal (default 100000 records).
	JournalSize int `yaml:"journal_size"`
	// LockTTL is the leader lock's lifetime; a replica that stops renewing
	// it is replaced after this long (default 15s).
	LockTTL Duration `yaml:"lock_ttl"`
	// Leases is how replicas share the work: "single" (default) — one
	// leader lease applies every target; "per_target" — a lease per target,
	// so N replicas split the targets (the leader lease still guards the
	// sources' shared state: snapshots, links, cursors, watchers).
	Leases string `yaml:"leases"`
}

// Lease modes (State.Leases).
const (
	LeasesSingle    = "single"
	LeasesPerTarget = "per_target"
)

// Redis configures the Redis backend (standalone, Sentinel or Cluster).
type Redis struct {
	Addrs      []string `yaml:"addrs"`
	Username   string   `yaml:"username"`
	Password   Secret   `yaml:"password"`
	DB         int      `yaml:"db"`
	MasterName string   `yaml:"master_name"`
	TLS        TLS      `yaml:"tls"`
	KeyPrefix  string   `yaml:"key_prefix"`
}

// TLS is a client or server TLS setting.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	ServerName         string `yaml:"server_name"`
}

// HTTP configures the daemon's listener (health, metrics, SCIM).
type HTTP struct {
	Listen string `yaml:"listen"` // default 127.0.0.1:8080
	TLS    TLS    `yaml:"tls"`
	// Console is the web console at /ui/ (off unless enabled).
	Console Console `yaml:"console"`
}

// Schedule says when runs happen.
type Schedule struct {
	Full        string   `yaml:"full"`        // cron spec; default "0 * * * *"
	Incremental Duration `yaml:"incremental"` // poll interval; default 30s; 0 disables
	Timezone    string   `yaml:"timezone"`    // IANA name; default UTC
	// Reconcile is the cron spec of reconcile runs, which read every live
	// account back from the applications that can list (drift, orphans,
	// missing accounts). Default daily at 03:00; "off" disables.
	Reconcile string `yaml:"reconcile"`
}

// Safety holds the guard's thresholds. A limit of 0 disables that limit;
// unset limits take the defaults.
type Safety struct {
	MaxSuspend        *int     `yaml:"max_suspend"`         // default 10 per target per run
	MaxSuspendPercent *float64 `yaml:"max_suspend_percent"` // default 5 (% of the target's accounts)
	MaxDelete         *int     `yaml:"max_delete"`          // default 10
	MaxDeletePercent  *float64 `yaml:"max_delete_percent"`  // default 5
	// MaxAccessRemoval: group removals, role downgrades and end dates set or
	// brought forward per target per run (counted like suspensions: a group
	// read as empty must not strip everyone). Default 10; MaxAccessRemovalPercent default 5.
	MaxAccessRemoval        *int     `yaml:"max_access_removal"`
	MaxAccessRemovalPercent *float64 `yaml:"max_access_removal_percent"`
	// MaxSourceShrinkPercent: a source whose user count drops by more than
	// this share since its last snapshot fails the run. Default 20.
	MaxSourceShrinkPercent *float64 `yaml:"max_source_shrink_percent"`
	// QuarantineAfter: runs in a row an account may fail before the engine
	// stops trying it (default 5).
	QuarantineAfter int `yaml:"quarantine_after"`
}

// Limits are Safety with defaults applied.
type Limits struct {
	MaxSuspend, MaxDelete               int
	MaxSuspendPercent, MaxDeletePercent float64
	MaxAccessRemoval                    int
	MaxAccessRemovalPercent             float64
	MaxSourceShrinkPercent              float64
	QuarantineAfter                     int
}

// Limits returns s with defaults filled in.
func (s Safety) Limits() Limits {
	l := Limits{MaxSuspend: 10, MaxDelete: 10, MaxSuspendPercent: 5, MaxDeletePercent: 5,
		MaxAccessRemoval: 10, MaxAccessRemovalPercent: 5, MaxSourceShrinkPercent: 20, QuarantineAfter: 5}
	if s.MaxAccessRemoval != nil {
		l.MaxAccessRemoval = *s.MaxAccessRemoval
	}
	if s.MaxAccessRemovalPercent != nil {
		l.MaxAccessRemovalPercent = *s.MaxAccessRemovalPercent
	}
	if s.MaxSuspend != nil {
		l.MaxSuspend = *s.MaxSuspend
	}
	if s.MaxDelete != nil {
		l.MaxDelete = *s.MaxDelete
	}
	if s.MaxSuspendPercent != nil {
		l.MaxSuspendPercent = *s.MaxSuspendPercent
	}
	if s.MaxDeletePercent != nil {
		l.MaxDeletePercent = *s.MaxDeletePercent
	}
	if s.MaxSourceShrinkPercent != nil {
		l.MaxSourceShrinkPercent = *s.MaxSourceShrinkPercent
	}
	if s.QuarantineAfter > 0 {
		l.QuarantineAfter = s.QuarantineAfter
	}
	return l
}

// Plugin is the part common to sources and targets: a name, a type, and the
// type-specific settings beside them, decoded later by the plugin's package.
type Plugin struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	node *yaml.Node
	path string
}

// Source is one entry of sources[].
type Source struct {
	Plugin `yaml:",inline"`
}

// sourceKeys are the keys every source has; the rest are type settings.
var sourceKeys = []string{"name", "type"}

// UnmarshalYAML keeps the whole node for the plugin to decode.
func (s *Source) UnmarshalYAML(n *yaml.Node) error {
	var p struct {
		Name string `yaml:"name"`
		Type string `yaml:"type"`
	}
	if err := n.Decode(&p); err != nil {
		return err
	}
	s.Name, s.Type, s.node = p.Name, p.Type, n
	return nil
}

// Decode decodes the source's type-specific settings into out, strictly.
func (s Source) Decode(out any) error {
	if out == nil {
		var none struct{}
		out = &none
	}
	return DecodeStrict(s.node, out, s.path, sourceKeys...).Err()
}

// Path is the key path of this source in the file ("sources[1]").
func (p Plugin) Path() string { return p.path }

// Target is one entry of targets[].
type Target struct {
	Plugin `yaml:",inline"`
	TargetCommon
}

// TargetCommon are the keys every target has, whatever its type.
type TargetCommon struct {
	// Sources the target takes users from, by name, in precedence order;
	// empty means every source.
	Sources []string `yaml:"sources"`
	// Scope lists groups whose (nested) members are in scope; empty means
	// every user of the sources.
	Scope []string `yaml:"scope"`
	// IncludeInactive keeps disabled users in scope (they get a suspended
	// account) instead of treating them as gone. Default true.
	IncludeInactive *bool `yaml:"include_inactive"`
	// Roles are ordered rules: the first whose group the user is in wins.
	Roles       []RoleRule `yaml:"roles"`
	DefaultRole string     `yaml:"default_role"`
	// Groups map directory groups to application groups.
	Groups []GroupRule `yaml:"groups"`
	// Username chooses the account username: username (default), email, or
	// attr:NAME for a source attribute.
	Username string `yaml:"username"`
	// Attributes maps account attribute names to source attribute names.
	Attributes  map[string]string `yaml:"attributes"`
	Deprovision Deprovision       `yaml:"deprovision"`
	RateLimit   *float64          `yaml:"rate_limit"` // calls per second; default 10
	Burst       int               `yaml:"burst"`
	Concurrency int               `yaml:"concurrency"` // default 4
	Timeout     Duration          `yaml:"timeout"`     // per call; default 30s
	MaxAttempts int               `yaml:"max_attempts"`
	// Order overrides the per-user action order.
	Order []string `yaml:"order"`
	// Protected are account names (usernames or emails, case-insensitive)
	// dirsync never acts on, whatever the sources say: break-glass and
	// service accounts. Acting on one is a skipped decision.
	Protected []string `yaml:"protected"`
	// Reconcile says what a reconcile run does with what it reads back.
	Reconcile Reconcile `yaml:"reconcile"`
	// PrivilegedRoles are the roles `dirsync report access --privileged`
	// lists (names or path.Match patterns); default: admin-like names.
	PrivilegedRoles []string `yaml:"privileged_roles"`
	// RoleRank orders the target's roles by privilege, most privileged
	// first. The guard judges a role change by it (a role lowered is an
	// access removal) instead of by the order of the role rules, which
	// says which rule wins, not which role is higher. A role it does not
	// list counts as the most privileged.
	RoleRank []string `yaml:"role_rank"`
	// RenamedFrom are names this target had before: the first run under
	// the new name carries their history (last-applied accounts, pending
	// deletions, the rules in effect) over, so no leaver is forgotten.
	RenamedFrom []string `yaml:"renamed_from"`
}

// Reconcile is a target's policy for reconcile runs.
type Reconcile struct {
	// Drift is what happens to a change made in the application by hand
	// that does not add access: fix (default: put it back) or report.
	// Drift that adds access (re-enabled, role raised, group added) is
	// always put back.
	Drift string `yaml:"drift"`
	// Orphans is what happens to a live account no source knows: report
	// (default), suspend or delete.
	Orphans string `yaml:"orphans"`
	// Allow lists account names (or path.Match patterns such as
	// "svc-*") that reconcile never reports or touches: service and
	// break-glass accounts.
	Allow []string `yaml:"allow"`
}

// RoleRule maps membership of a group to a role.
type RoleRule struct {
	Group string `yaml:"group"`
	Role  string `yaml:"role"`
}

// GroupRule maps a directory group to an application group.
type GroupRule struct {
	Group string `yaml:"group"` // directory group name
	As    string `yaml:"as"`    // application group name; default the same
}

// Deprovision says what "gone from scope" means for a target.
type Deprovision struct {
	Action      string   `yaml:"action"`       // suspend (default), delete, none
	DeleteAfter Duration `yaml:"delete_after"` // with suspend: delete after this delay
}

// UnmarshalYAML decodes the common keys and keeps the node for the plugin.
func (t *Target) UnmarshalYAML(n *yaml.Node) error {
	var p struct {
		Name         string `yaml:"name"`
		Type         string `yaml:"type"`
		TargetCommon `yaml:",inline"`
	}
	// Decode into a map-tolerant copy: unknown keys are the plugin's.
	if err := n.Decode(&p); err != nil {
		return err
	}
	t.Name, t.Type, t.TargetCommon, t.node = p.Name, p.Type, p.TargetCommon, n
	return nil
}

// Decode decodes the target's type-specific settings into out, strictly.
func (t Target) Decode(out any) error {
	if out == nil {
		var none struct{}
		out = &none
	}
	return decodeStrict(t.node, out, t.path, reflect.TypeOf(t.TargetCommon), []string{"name", "type"}).Err()
}

// Duration is a time.Duration that also accepts days ("30d").
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses "90s", "15m", "30d" or a plain number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML prints the duration.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ParseDuration is time.ParseDuration plus a "d" (24h) unit and bare seconds.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Second)), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return v, nil
}

// Load reads, expands and strictly decodes a config file, then applies
// defaults. It does not validate: call Validate.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Parse is Load from a reader.
func Parse(r io.Reader) (*Config, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("config: read: %w", err)
	}
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config: file is empty")
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var ps Problems
	expandEnv(&root, "", &ps)
	cfg := &Config{}
	ps = append(ps, DecodeStrict(&root, cfg, "")...)
	if len(ps) > 0 {
		return nil, ps
	}
	for i := range cfg.Sources {
		cfg.Sources[i].path = fmt.Sprintf("sources[%d]", i)
	}
	for i := range cfg.Targets {
		cfg.Targets[i].path = fmt.Sprintf("targets[%d]", i)
	}
	cfg.applyDefaults()
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.State.Backend == "" {
		c.State.Backend = "embedded"
	}
	if c.State.Backend == "embedded" && c.State.Path == "" {
		c.State.Path = "dirsync.db"
	}
	if c.State.Redis.KeyPrefix == "" {
		c.State.Redis.KeyPrefix = "dirsync:"
	}
	if c.State.Leases == "" {
		c.State.Leases = LeasesSingle
	}
	if c.State.LockTTL == 0 {
		c.State.LockTTL = Duration(15 * time.Second)
	}
	if c.State.JournalSize == 0 {
		c.State.JournalSize = 100000
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.Schedule.Full == "" {
		c.Schedule.Full = "0 * * * *"
	}
	if c.Schedule.Timezone == "" {
		c.Schedule.Timezone = "UTC"
	}
	if c.Schedule.Reconcile == "" {
		c.Schedule.Reconcile = "0 3 * * *"
	}
	if c.JoinKey == "" {
		c.JoinKey = "email"
	}
	for i := range c.Targets {
		t := &c.Targets[i].TargetCommon
		if t.Deprovision.Action == "" {
			t.Deprovision.Action = "suspend"
		}
		if t.Reconcile.Drift == "" {
			t.Reconcile.Drift = "fix"
		}
		if t.Reconcile.Orphans == "" {
			t.Reconcile.Orphans = "report"
		}
		if t.RateLimit == nil {
			v := 10.0
			t.RateLimit = &v
		}
		if t.Burst == 0 {
			t.Burst = max(1, int(*t.RateLimit))
		}
		if t.Concurrency == 0 {
			t.Concurrency = 4
		}
		if t.Timeout == 0 {
			t.Timeout = Duration(30 * time.Second)
		}
		if t.MaxAttempts == 0 {
			t.MaxAttempts = 4
		}
		if t.IncludeInactive == nil {
			v := true
			t.IncludeInactive = &v
		}
		if t.Username == "" {
			t.Username = "username"
		}
	}
}
