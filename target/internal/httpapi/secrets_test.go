package httpapi

import (
	"fmt"
	"testing"
)

func TestSecretsKeepConfiguredValuesAcrossManyTokens(t *testing.T) {
	var s Secrets
	s.Add("client-secret-1")
	s.Add("abc") // too short: ignored
	for i := range 3 * maxTokens {
		s.AddToken(fmt.Sprintf("token-%03d", i))
	}
	got := s.Scrub("client-secret-1 token-000 token-023 abc")
	if got != "[REDACTED] token-000 [REDACTED] abc" {
		t.Fatalf("scrub: %q", got)
	}
}

func TestSecretsLongestFirst(t *testing.T) {
	s := NewSecrets("secret", "secret-and-more")
	if got := s.Scrub("x secret-and-more y"); got != "x [REDACTED] y" {
		t.Fatalf("scrub: %q", got)
	}
}
