package config

import (
	"fmt"
	"os"
	"strings"

	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"
)

// Redacted is what a Secret prints instead of its value.
const Redacted = "[REDACTED]"

// Secret holds a credential. Every way of printing it (fmt verbs, JSON, YAML,
// zap) shows Redacted; only Value returns the real text. In YAML a secret may
// be a literal, "${ENV_VAR}", or "file:/path" (the file's content, trimmed).
type Secret struct{ v string }

// NewSecret wraps a value.
func NewSecret(v string) Secret { return Secret{v: v} }

// Value returns the secret text. Call it only where the secret is used.
func (s Secret) Value() string { return s.v }

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return s.v == "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return Redacted
}

// GoString implements fmt.GoStringer so %#v does not leak.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// Format makes every fmt verb print the redacted form.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalLogObject-free: zap uses Stringer via zap.Stringer; this method
// covers zap.Any and reflected encoders.
func (s Secret) MarshalLogArray(zapcore.ArrayEncoder) error { return nil }

// UnmarshalYAML reads a literal, an expanded env value, or a file: reference.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	var raw string
	if err := n.Decode(&raw); err != nil {
		return err
	}
	v, err := ResolveSecret(raw)
	if err != nil {
		return err
	}
	s.v = v
	return nil
}

// ResolveSecret turns "file:/path" into the file's trimmed content and
// returns other values unchanged.
func ResolveSecret(raw string) (string, error) {
	if p, ok := strings.CutPrefix(raw, "file:"); ok {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("read secret file %q: %w", p, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return raw, nil
}
