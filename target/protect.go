package target

import (
	"fmt"
	"strings"

	"github.com/dirsync/dirsync/identity"
)

// Protected is a set of account names (usernames or emails, compared
// case-insensitively) a connector never acts on, whatever the sources say:
// the application's owner, the account that owns the connector's own
// credential, and the target's configured `protected` list. Connectors ask
// it in Gate (a reason is a skipped decision) and again before sending.
type Protected struct {
	why map[string]string // lower-cased name → reason
}

// NewProtected returns the configured list (reason: "protected by config").
func NewProtected(names ...string) *Protected {
	p := &Protected{why: map[string]string{}}
	for _, n := range names {
		p.Add(n, "it is in the target's protected list")
	}
	return p
}

// Add protects name for reason; an empty name is ignored.
func (p *Protected) Add(name, reason string) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return
	}
	if _, ok := p.why[n]; !ok {
		p.why[n] = reason
	}
}

// Reason returns why a must not be touched, or "". It looks at the
// account's username, email and the application's own name for it
// (Remote["username"], Remote["email"]).
func (p *Protected) Reason(a identity.Account) string {
	if p == nil || len(p.why) == 0 {
		return ""
	}
	for _, n := range []string{a.Remote["username"], a.Remote["email"], a.Username, a.Email} {
		if why, ok := p.why[strings.ToLower(strings.TrimSpace(n))]; ok && n != "" {
			return fmt.Sprintf("%q is never touched by dirsync: %s", n, why)
		}
	}
	return ""
}

// Check returns a Skip error when a is protected, else nil: the last
// check before a connector sends anything for act.
func (p *Protected) Check(act Action, a identity.Account) error {
	if why := p.Reason(a); why != "" {
		return Skip("%s: %s", act, why)
	}
	return nil
}
