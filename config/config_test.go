package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBadConfigs: each file in testdata/bad breaks one rule; the error has
// exactly one problem and its message names the key path.
func TestBadConfigs(t *testing.T) {
	tests := []struct {
		file  string
		stage string // where the problem is found: parse (Load) or validate
		want  string
	}{
		{"rate_limit_zero.yaml", "validate", "targets[2].rate_limit: must be > 0"},
		{"rate_limit_string.yaml", "parse", "targets[2].rate_limit: must be a number, not a string"},
		{"unknown_key.yaml", "parse", `schedul: unknown key (did you mean "schedule"?)`},
		{"unknown_nested_key.yaml", "parse", `state.redis.adrs: unknown key (did you mean "addrs"?)`},
		{"concurrency_list.yaml", "parse", "targets[0].concurrency: must be an integer, not a list"},
		{"max_suspend_string.yaml", "parse", "safety.max_suspend: must be an integer, not a string"},
		{"sources_not_list.yaml", "parse", "sources: must be a list, not a mapping"},
		{"addrs_not_list.yaml", "parse", "state.redis.addrs: must be a list, not a string"},
		{"log_not_mapping.yaml", "parse", "log: must be a mapping (key: value), not a list"},
		{"secret_not_string.yaml", "parse", "state.redis.password: must be a string (a literal, ${ENV_VAR} or file:/path)"},
		{"unknown_source.yaml", "validate", `targets[0].sources[1]: unknown source "crop-ad"`},
		{"bad_deprovision.yaml", "validate", `targets[0].deprovision.action: must be suspend, delete or none (got "disable")`},
		{"delete_after_with_delete.yaml", "validate", "targets[0].deprovision.delete_after: only applies with action: suspend"},
		{"bad_delete_after.yaml", "parse", `targets[0].deprovision.delete_after: invalid duration "soon"`},
		{"bad_timezone.yaml", "validate", `schedule.timezone: unknown time zone "Europe/Atlantis"`},
		{"duration_list.yaml", "parse", "targets[0].deprovision.delete_after: must be a duration (90s, 15m, 30d), not a list"},
		{"bad_duration.yaml", "parse", `schedule.incremental: invalid duration "5 minutes"`},
		{"bad_cron.yaml", "validate", `schedule.full: must be a cron spec with 5 fields or a @descriptor (got "every hour")`},
		{"missing_env.yaml", "parse", "state.redis.password: environment variable DIRSYNC_TEST_UNSET_VAR is not set"},
		{"missing_secret_file.yaml", "parse", `state.redis.password: read secret file "/nonexistent/dirsync-test/redis-password": open /nonexistent/dirsync-test/redis-password: no such file or directory`},
		{"duplicate_target.yaml", "validate", `targets[1].name: duplicate name "a"`},
		{"bad_source_name.yaml", "validate", `sources[1].name: must not contain '/', ':' or spaces (got "h r")`},
		{"source_no_type.yaml", "validate", "sources[0].type: is required"},
		{"no_sources.yaml", "validate", "sources: at least one source is required"},
		{"bad_backend.yaml", "validate", `state.backend: must be embedded or redis (got "etcd")`},
		{"bad_leases.yaml", "validate", `state.leases: must be single or per_target (got "every_target")`},
		{"redis_no_addrs.yaml", "validate", "state.redis.addrs: at least one address is required for the redis backend"},
		{"bad_username.yaml", "validate", `targets[0].username: must be username, email or attr:NAME (got "upn")`},
		{"bad_percent.yaml", "validate", "safety.max_suspend_percent: must be between 0 and 100"},
		{"negative_max_delete.yaml", "validate", "safety.max_delete: must be >= 0"},
		{"bad_join_key.yaml", "validate", `join_key: must be email, username or key (got "upn")`},
		{"bad_log_level.yaml", "validate", `log.level: must be one of debug, info, warn, error (got "verbose")`},
		{"role_without_role.yaml", "validate", "targets[0].roles[0].role: is required"},
		{"negative_timeout.yaml", "validate", "targets[0].timeout: must be > 0"},
		{"empty_protected.yaml", "validate", "targets[0].protected[1]: is empty"},
		{"empty.yaml", "parse", "config: file is empty"},
		{"syntax_error.yaml", "parse", "config: yaml: line 1: did not find expected ',' or '}'"},
	}
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	t.Setenv("DIRSYNC_TEST_UNSET_VAR", "")
	os.Unsetenv("DIRSYNC_TEST_UNSET_VAR")
	for _, tc := range tests {
		covered[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", "bad", tc.file))
			stage := "parse"
			if err == nil {
				stage = "validate"
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			if stage != tc.stage {
				t.Errorf("found at %s, want at %s: %v", stage, tc.stage, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %q\nwant %q", err, tc.want)
			}
			var ps Problems
			if errors.As(err, &ps) && len(ps) != 1 {
				t.Errorf("%d problems, want 1: %v", len(ps), err)
			}
		})
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no test case", f)
		}
	}
}

// TestValidateReportsEverything: Validate returns every problem at once.
func TestValidateReportsEverything(t *testing.T) {
	c, err := Load("testdata/many_validate.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	err = c.Validate()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate: %v, want Problems", err)
	}
	want := []string{
		`log.level: must be one of debug, info, warn, error (got "loud")`,
		`log.format: must be json or console (got "xml")`,
		"state.redis.addrs: at least one address is required for the redis backend",
		`schedule.timezone: unknown time zone "Nowhere/City"`,
		`join_key: must be email, username or key (got "upn")`,
		`sources[1].name: duplicate name "hr"`,
		"sources[1].type: is required",
		`targets[0].sources[0]: unknown source "nope"`,
		`targets[0].deprovision.action: must be suspend, delete or none (got "wipe")`,
		"targets[0].rate_limit: must be > 0",
		"targets[0].concurrency: must be >= 1",
		`targets[1].name: duplicate name "a"`,
		"targets[1].type: is required",
		`targets[1].username: must be username, email or attr:NAME (got "upn")`,
	}
	checkProblems(t, ps, want)
}

// TestParseReportsEverything: decoding problems (unknown keys, wrong types,
// unset variables) are reported together too.
func TestParseReportsEverything(t *testing.T) {
	os.Unsetenv("DIRSYNC_TEST_UNSET_VAR")
	_, err := Load("testdata/many_parse.yaml")
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load: %v, want Problems", err)
	}
	checkProblems(t, ps, []string{
		"state.redis.password: environment variable DIRSYNC_TEST_UNSET_VAR is not set",
		`schedul: unknown key (did you mean "schedule"?)`,
		`state.redis.adrs: unknown key (did you mean "addrs"?)`,
		"state.redis.db: must be an integer, not a string",
		"targets[0].burst: must be an integer, not a string",
	})
}

func checkProblems(t *testing.T, ps Problems, want []string) {
	t.Helper()
	var got []string
	for _, p := range ps {
		got = append(got, p.Error())
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing problem %q", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidConfig: ${ENV} expansion (with defaults), file: secrets and the
// defaults.
func TestValidConfig(t *testing.T) {
	tricky := `p@ss: w0rd # not a comment, [x] {y} "q" 'z' *star &anchor !tag %pct`
	t.Setenv("DIRSYNC_TEST_REDIS_HOST", "redis.internal")
	t.Setenv("DIRSYNC_TEST_REDIS_PASSWORD", tricky)
	t.Setenv("DIRSYNC_TEST_API_KEY", "0123")
	t.Setenv("DIRSYNC_TEST_SECRET_FILE", writeFile(t, "bind: {pw}\n"))
	os.Unsetenv("DIRSYNC_TEST_PREFIX")
	c, err := Load("testdata/valid.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := c.State.Redis.Password.Value(); got != tricky {
		t.Errorf("redis password %q, want %q", got, tricky)
	}
	if got := c.State.Redis.Addrs; !slices.Equal(got, []string{"redis.internal:6379"}) {
		t.Errorf("addrs %q", got)
	}
	if got := c.State.Redis.KeyPrefix; got != "dirsync:test:" {
		t.Errorf("key prefix %q, want the ${VAR:-default} default", got)
	}
	if c.Schedule.Incremental.D() != 45*time.Second || c.Schedule.Timezone != "Europe/Berlin" {
		t.Errorf("schedule %+v", c.Schedule)
	}
	l := c.Safety.Limits()
	if l.MaxSuspend != 0 || l.MaxDeletePercent != 2.5 || l.MaxDelete != 10 || l.MaxSuspendPercent != 5 {
		t.Errorf("limits %+v", l)
	}
	if len(c.Sources) != 2 || c.Sources[1].Path() != "sources[1]" || c.Targets[0].Path() != "targets[0]" {
		t.Fatalf("sources %+v targets %+v", c.Sources, c.Targets)
	}
	tg := c.Targets[0]
	if *tg.RateLimit != 5 || tg.Burst != 5 || tg.Concurrency != 4 || tg.Timeout.D() != 30*time.Second || tg.MaxAttempts != 4 ||
		!*tg.IncludeInactive || tg.Username != "username" || tg.Deprovision.DeleteAfter.D() != 30*24*time.Hour {
		t.Errorf("target defaults %+v", tg.TargetCommon)
	}

	var ldap struct {
		URL          string `yaml:"url"`
		BindPassword Secret `yaml:"bind_password"`
	}
	if err := c.Sources[0].Decode(&ldap); err != nil {
		t.Fatalf("source Decode: %v", err)
	}
	if ldap.BindPassword.Value() != "bind: {pw}" {
		t.Errorf("file: secret %q, want the file's content without the newline", ldap.BindPassword.Value())
	}
	var nm struct {
		APIKey  Secret `yaml:"api_key"`
		BaseURL string `yaml:"base_url"`
		Tuning  struct {
			PageSize int `yaml:"page_size"`
		} `yaml:"tuning"`
	}
	if err := tg.Decode(&nm); err != nil {
		t.Fatalf("target Decode: %v", err)
	}
	if nm.APIKey.Value() != "0123" {
		t.Errorf("api key %q: an expanded value must stay a string (not the number 123)", nm.APIKey.Value())
	}
	if nm.BaseURL != "https://netmaker.example.com" || nm.Tuning.PageSize != 50 {
		t.Errorf("target settings %+v", nm)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("DIRSYNC_TEST_A", "alpha")
	t.Setenv("DIRSYNC_TEST_B", "- item\nkey: value")
	t.Setenv("DIRSYNC_TEST_NUM", "42")
	t.Setenv("DIRSYNC_TEST_FALSE", "false")
	os.Unsetenv("DIRSYNC_TEST_UNSET_VAR")
	yaml := `
state:
  path: "/var/lib/${DIRSYNC_TEST_A}/${DIRSYNC_TEST_UNSET_VAR:-state}.db"
  journal_size: ${DIRSYNC_TEST_NUM}
http:
  listen: ${DIRSYNC_TEST_B}
sources:
  - {name: "${DIRSYNC_TEST_A}", type: file}
targets:
  - name: t
    type: memory
    rate_limit: ${DIRSYNC_TEST_NUM}.5
    include_inactive: ${DIRSYNC_TEST_FALSE}
    concurrency: "${DIRSYNC_TEST_NUM}"
`
	_, err := Parse(strings.NewReader(yaml))
	if want := "targets[0].concurrency: must be an integer, not a string"; err == nil || err.Error() != want {
		t.Fatalf("Parse: %v; want %q (a quoted value stays a string)", err, want)
	}
	c, err := Parse(strings.NewReader(strings.Replace(yaml, `"${DIRSYNC_TEST_NUM}"`, "${DIRSYNC_TEST_NUM}", 1)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.State.Path != "/var/lib/alpha/state.db" {
		t.Errorf("path %q", c.State.Path)
	}
	if c.State.JournalSize != 42 || *c.Targets[0].RateLimit != 42.5 || *c.Targets[0].IncludeInactive || c.Targets[0].Concurrency != 42 {
		t.Errorf("typed values from env: journal %d rate %v include_inactive %v concurrency %d", c.State.JournalSize, *c.Targets[0].RateLimit, *c.Targets[0].IncludeInactive, c.Targets[0].Concurrency)
	}
	if c.HTTP.Listen != "- item\nkey: value" {
		t.Errorf("listen %q: a value with YAML syntax must stay one string", c.HTTP.Listen)
	}
	if c.Sources[0].Name != "alpha" {
		t.Errorf("source name %q", c.Sources[0].Name)
	}
}

// TestEnvStringsStayVerbatim: whatever a variable holds, a string field (or
// a Secret) gets exactly that text: not a number, not null, not YAML.
func TestEnvStringsStayVerbatim(t *testing.T) {
	for _, v := range []string{"0123", "null", "~", "true", "2026-01-01", "1e3", "0x1F", ".inf", "a: b", "- x", "#c", "[1, 2]", "{k: v}", "*ref", "&anchor", "!!int", "%TAG", "  padded  ", "multi\nline", `quote"s'`} {
		t.Setenv("DIRSYNC_TEST_V", v)
		c, err := Parse(strings.NewReader("sources: [{name: a, type: b}]\nstate:\n  path: ${DIRSYNC_TEST_V}\n  redis:\n    password: ${DIRSYNC_TEST_V}\n    username: x${DIRSYNC_TEST_V}\n"))
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		if c.State.Path != v || c.State.Redis.Password.Value() != v || c.State.Redis.Username != "x"+v {
			t.Errorf("%q: path %q, password %q, username %q", v, c.State.Path, c.State.Redis.Password.Value(), c.State.Redis.Username)
		}
	}
}

func TestResolveSecret(t *testing.T) {
	p := writeFile(t, "s3cr3t\r\n")
	for _, tc := range []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"file:" + p, "s3cr3t", ""},
		{"file:/nonexistent/x", "", `read secret file "/nonexistent/x"`},
		{"", "", ""},
	} {
		got, err := ResolveSecret(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ResolveSecret(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestPluginDecodeStrict: type-specific settings decode strictly, with
// errors at their key paths, beside the common target keys.
func TestPluginDecodeStrict(t *testing.T) {
	type settings struct {
		BaseURL string `yaml:"base_url"`
		APIKey  Secret `yaml:"api_key"`
		Limits  struct {
			PageSize int `yaml:"page_size"`
		} `yaml:"limits"`
		Tags []string `yaml:"tags"`
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"ok with common keys", "{name: t, type: x, base_url: u, roles: [{group: g, role: r}], deprovision: {action: delete}, limits: {page_size: 5}}", nil},
		{"unknown key", "{name: t, type: x, base_ur: u}", []string{`targets[1].base_ur: unknown key (did you mean "base_url"?)`}},
		{"unknown nested key", "{name: t, type: x, limits: {pagesize: 5}}", []string{`targets[1].limits.pagesize: unknown key (did you mean "page_size"?)`}},
		{"unknown key in a common rule", "{name: t, type: x, roles: [{grop: g, role: r}]}", []string{`targets[1].roles[0].grop: unknown key (did you mean "group"?)`}},
		{"wrong type", "{name: t, type: x, limits: {page_size: big}, tags: solo}", []string{"targets[1].limits.page_size: must be an integer, not a string", "targets[1].tags: must be a list, not a string"}},
		{"missing secret file", "{name: t, type: x, api_key: 'file:/nonexistent/dirsync/key'}", []string{`targets[1].api_key: read secret file "/nonexistent/dirsync/key"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(strings.NewReader("sources: [{name: s, type: file}]\ntargets:\n  - {name: first, type: memory}\n  - " + tc.yaml + "\n"))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var s settings
			err = c.Targets[1].Decode(&s)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if s.BaseURL != "u" || s.Limits.PageSize != 5 {
					t.Errorf("settings %+v", s)
				}
				return
			}
			if err == nil {
				t.Fatal("Decode succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			var ps Problems
			if errors.As(err, &ps) && len(ps) != len(tc.want) {
				t.Errorf("%d problems, want %d: %v", len(ps), len(tc.want), err)
			}
		})
	}

	// A plugin without settings rejects any extra key; sources too.
	c, err := Parse(strings.NewReader("sources: [{name: s, type: file, pth: x}]\ntargets: [{name: t, type: memory, url: x}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Targets[0].Decode(nil); err == nil || err.Error() != "targets[0].url: unknown key" {
		t.Errorf("Decode(nil) = %v", err)
	}
	var src struct {
		Path string `yaml:"path"`
	}
	if err := c.Sources[0].Decode(&src); err == nil || err.Error() != `sources[0].pth: unknown key (did you mean "path"?)` {
		t.Errorf("source Decode = %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "90": 90 * time.Second, "1.5": 1500 * time.Millisecond, "15m": 15 * time.Minute, "30d": 30 * 24 * time.Hour, "0.5d": 12 * time.Hour, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "5 minutes", "d", "xd"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

// Config errors are matched by their type and keys, not by their text.
func TestNamesKeysUnder(t *testing.T) {
	var ps Problems
	ps.Add("targets[0].token", "is required")
	ps.Add("targets[0]", "bad")
	if !NamesKeysUnder(ps, "targets[0]") || !NamesKeysUnder(fmt.Errorf("wrapped: %w", ps), "targets[0]") {
		t.Fatal("problems under targets[0] not recognised")
	}
	if NamesKeysUnder(ps, "targets[1]") || NamesKeysUnder(fmt.Errorf("targets[0]: plain"), "targets[0]") {
		t.Fatal("recognised what is not under the key, or not Problems")
	}
	var other Problems
	other.Add("targets[01].x", "no")
	if NamesKeysUnder(other, "targets[0]") {
		t.Fatal("targets[01] is not under targets[0]")
	}
}
