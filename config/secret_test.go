package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"
)

const (
	envSecret    = "env-Secret-7f3a"
	pluginSecret = "plugin-Secret-91bc"
	fileSecret   = "file-Secret-c0de"
	literal      = "literal-Secret-5e5e"
)

var allSecrets = []string{envSecret, pluginSecret, fileSecret, literal}

type pluginSettings struct {
	BaseURL string `yaml:"base_url" json:"base_url"`
	APIKey  Secret `yaml:"api_key" json:"api_key"`
	Nested  struct {
		Token Secret `yaml:"token" json:"token"`
	} `yaml:"nested" json:"nested"`
	hidden Secret // a plugin keeping a copy in an unexported field
}

func leakConfig(t *testing.T) (*Config, pluginSettings, Secret) {
	t.Helper()
	t.Setenv("DIRSYNC_TEST_REDIS_PASSWORD", envSecret)
	t.Setenv("DIRSYNC_TEST_API_KEY", pluginSecret)
	file := writeFile(t, fileSecret+"\n")
	c, err := Parse(strings.NewReader(`
state:
  backend: redis
  redis:
    addrs: [127.0.0.1:6379]
    password: ${DIRSYNC_TEST_REDIS_PASSWORD}
sources:
  - name: corp
    type: ldap
    bind_password: file:` + file + `
targets:
  - name: app
    type: x
    base_url: https://app.example.com
    api_key: ${DIRSYNC_TEST_API_KEY}
    nested:
      token: ` + literal + `
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	var s pluginSettings
	if err := c.Targets[0].Decode(&s); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	s.hidden = s.APIKey
	var src struct {
		BindPassword Secret `yaml:"bind_password"`
	}
	if err := c.Sources[0].Decode(&src); err != nil {
		t.Fatalf("source Decode: %v", err)
	}
	// The values are really there: the test would prove nothing otherwise.
	if c.State.Redis.Password.Value() != envSecret || s.APIKey.Value() != pluginSecret || s.Nested.Token.Value() != literal || src.BindPassword.Value() != fileSecret {
		t.Fatalf("secrets not loaded: %q %q %q %q", c.State.Redis.Password.Value(), s.APIKey.Value(), s.Nested.Token.Value(), src.BindPassword.Value())
	}
	return c, s, src.BindPassword
}

func checkNoLeak(t *testing.T, how, out string) {
	t.Helper()
	for _, sec := range allSecrets {
		if strings.Contains(out, sec) {
			t.Errorf("%s leaks a secret: %s", how, out)
		}
	}
}

// TestSecretsNeverPrinted: no way of printing or logging a config, its
// plugin settings or a Secret shows a secret value.
func TestSecretsNeverPrinted(t *testing.T) {
	c, s, fileSec := leakConfig(t)
	values := map[string]any{
		"*Config":        c,
		"Config":         *c,
		"Redis":          c.State.Redis,
		"Targets":        c.Targets,
		"Target":         c.Targets[0],
		"Sources":        c.Sources,
		"settings":       s,
		"*settings":      &s,
		"Secret":         s.APIKey,
		"*Secret":        &s.APIKey,
		"file Secret":    fileSec,
		"[]Secret":       []Secret{s.APIKey, fileSec},
		"map":            map[string]Secret{"k": s.Nested.Token},
		"unexported":     struct{ s Secret }{s.APIKey},
		"any in a slice": []any{s.APIKey, c.State.Redis.Password},
	}
	for name, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%T %[1]v"} {
			checkNoLeak(t, fmt.Sprintf("fmt %s of %s", verb, name), fmt.Sprintf(verb, v))
		}
		if b, err := json.Marshal(v); err == nil {
			checkNoLeak(t, "json.Marshal of "+name, string(b))
		}
		if b, err := yaml.Marshal(v); err == nil {
			checkNoLeak(t, "yaml.Marshal of "+name, string(b))
		}
		for _, enc := range []zapcore.Encoder{
			zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
			zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		} {
			var buf bytes.Buffer
			log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zap.DebugLevel))
			log.Info("config", zap.Any("any", v), zap.Reflect("reflect", v))
			log.Info("secret", zap.Any("s", s.APIKey), zap.Reflect("r", s.APIKey), zap.Stringer("str", s.APIKey), zap.Any("p", &s.APIKey))
			log.Sugar().Infow("sugar", "v", v, "cfg", c)
			log.Sugar().Infof("printf %v %+v", v, c)
			_ = log.Sync()
			checkNoLeak(t, "zap of "+name, buf.String())
		}
	}
}

// TestSecretRendering: a set secret prints as [REDACTED] everywhere (so a
// log shows that one is set), an unset one as empty.
func TestSecretRendering(t *testing.T) {
	s := NewSecret("hunter2")
	if s.Value() != "hunter2" || s.IsZero() {
		t.Fatalf("Value %q IsZero %v", s.Value(), s.IsZero())
	}
	var zero Secret
	if zero.Value() != "" || !zero.IsZero() || zero.String() != "" || NewSecret("").String() != "" {
		t.Errorf("zero secret: %q %v %q", zero.Value(), zero.IsZero(), zero.String())
	}
	if got := fmt.Sprintf("%v|%s|%d|%#v", s, s, s, s); got != "[REDACTED]|[REDACTED]|[REDACTED]|[REDACTED]" {
		t.Errorf("fmt: %s", got)
	}
	if b, _ := json.Marshal(struct{ S Secret }{s}); string(b) != `{"S":"[REDACTED]"}` {
		t.Errorf("json: %s", b)
	}
	if b, _ := yaml.Marshal(struct{ S Secret }{s}); string(b) != "s: '[REDACTED]'\n" {
		t.Errorf("yaml: %q", b)
	}
	var buf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg"}), zapcore.AddSync(&buf), zap.DebugLevel))
	log.Info("x", zap.Any("any", s), zap.Reflect("reflect", s), zap.Stringer("stringer", s))
	if got, want := strings.TrimSpace(buf.String()), `{"msg":"x","any":"[REDACTED]","reflect":"[REDACTED]","stringer":"[REDACTED]"}`; got != want {
		t.Errorf("zap:\n got %s\nwant %s", got, want)
	}
}

// TestSecretsNotInErrors: a secret value in the wrong place, or a broken
// secret reference, does not end up in the error message.
func TestSecretsNotInErrors(t *testing.T) {
	t.Setenv("DIRSYNC_TEST_API_KEY", pluginSecret)
	for _, y := range []string{
		"sources: [{name: a, type: b}]\ntargets:\n  - name: t\n    type: x\n    rate_limit: ${DIRSYNC_TEST_API_KEY}\n",
		"sources: [{name: a, type: b}]\ntargets:\n  - name: t\n    type: x\n    concurrency: ${DIRSYNC_TEST_API_KEY}\n",
		"sources: [{name: a, type: b}]\nstate:\n  redis:\n    db: ${DIRSYNC_TEST_API_KEY}\n",
		"sources: [{name: a, type: b}]\nsafety:\n  max_suspend_percent: ${DIRSYNC_TEST_API_KEY}\n",
	} {
		_, err := Parse(strings.NewReader(y))
		if err == nil {
			t.Errorf("Parse succeeded: %s", y)
			continue
		}
		checkNoLeak(t, "Parse error", err.Error())
	}
	c, err := Parse(strings.NewReader("sources: [{name: a, type: b}]\ntargets:\n  - name: t\n    type: x\n    page_size: ${DIRSYNC_TEST_API_KEY}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		PageSize int `yaml:"page_size"`
	}
	err = c.Targets[0].Decode(&s)
	if err == nil {
		t.Fatal("Decode succeeded")
	}
	checkNoLeak(t, "Decode error", err.Error())
}
