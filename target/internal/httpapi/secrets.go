package httpapi

import (
	"slices"
	"strings"
	"sync"

	"github.com/dirsync/dirsync/config"
)

// maxTokens bounds the remembered short-lived tokens (older ones have
// expired).
const maxTokens = 8

// Secrets is the set of credential values scrubbed from error text: the
// configured ones, and the most recent access tokens issued. The zero value
// is ready to use.
type Secrets struct {
	mu     sync.Mutex
	fixed  []string
	tokens []string
}

// NewSecrets returns a set holding vs.
func NewSecrets(vs ...string) *Secrets {
	s := &Secrets{}
	for _, v := range vs {
		s.Add(v)
	}
	return s
}

// Add remembers a configured secret.
func (s *Secrets) Add(v string) { s.put(v, false) }

// AddToken remembers an issued access token (only the last few are kept).
func (s *Secrets) AddToken(v string) { s.put(v, true) }

func (s *Secrets) put(v string, token bool) {
	if len(v) < 4 {
		return // too short to scrub without mangling messages; never a real credential
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.fixed, v) || slices.Contains(s.tokens, v) {
		return
	}
	if !token {
		s.fixed = append(s.fixed, v)
		return
	}
	s.tokens = append(s.tokens, v)
	if len(s.tokens) > maxTokens {
		s.tokens = slices.Delete(s.tokens, 0, len(s.tokens)-maxTokens)
	}
}

// Scrub replaces every known secret in msg with config.Redacted.
func (s *Secrets) Scrub(msg string) string {
	if s == nil {
		return msg
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all := slices.Concat(s.fixed, s.tokens)
	// Longest first, so a token that contains a secret is hidden whole.
	slices.SortStableFunc(all, func(a, b string) int { return len(b) - len(a) })
	for _, v := range all {
		msg = strings.ReplaceAll(msg, v, config.Redacted)
	}
	return msg
}
