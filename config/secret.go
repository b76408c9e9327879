package config

import (
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Redacted is what a Secret prints instead of its value.
const Redacted = "[REDACTED]"

// Secret holds a credential. Every way of printing it (fmt verbs, JSON, YAML,
// zap.Any and zap.Stringer as a string, zap.Reflect through JSON) shows
// Redacted; only Value returns the real text. In YAML a secret may be a
// literal, "${ENV_VAR}", or "file:/path" (the file's content, trimmed).
//
// The text is held behind a pointer so that even where fmt cannot call
// Secret's methods (a Secret in an unexported field printed with %v) only an
// address is shown.
type Secret struct{ v *string }

// NewSecret wraps a value.
func NewSecret(v string) Secret { return Secret{v: &v} }

// Value returns the secret text. Call it only where the secret is used.
func (s Secret) Value() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return s.Value() == "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s.IsZero() {
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
	*s = NewSecret(v)
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
