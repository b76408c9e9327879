// Package identity holds dirsync's canonical model: the people and groups read
// from every source, and the per-application account they are mapped to. It is
// shared by every other package and imports nothing of ours.
package identity

import (
	"sort"
	"strings"
	"time"
)

// Fact names used in User.Facts: the source-side reason behind a field's value,
// which the engine quotes in decision reasons ("corp-ad: userAccountControl
// ACCOUNTDISABLE set").
const (
	FactActive             = "active"
	FactExpires            = "expires"
	FactMustChangePassword = "must_change_password"
	FactGroups             = "groups"
)

// User is one person as a source sees them, normalised.
type User struct {
	// Key is stable across renames: objectGUID, entryUUID, a SCIM id. Never the username.
	Key                string            `json:"key"`
	Source             string            `json:"source"`
	Username           string            `json:"username"`
	Email              string            `json:"email,omitempty"`
	GivenName          string            `json:"given_name,omitempty"`
	FamilyName         string            `json:"family_name,omitempty"`
	DisplayName        string            `json:"display_name,omitempty"`
	Active             bool              `json:"active"`
	Expires            *time.Time        `json:"expires,omitempty"`
	MustChangePassword bool              `json:"must_change_password,omitempty"`
	Groups             []string          `json:"groups,omitempty"`
	Attributes         map[string]string `json:"attributes,omitempty"`
	// Facts maps a field name (FactActive, ...) to the source fact that set it,
	// e.g. "userAccountControl ACCOUNTDISABLE set". Optional; used in reasons.
	Facts map[string]string `json:"facts,omitempty"`
}

// ImmutableIDs returns the values of u's attributes that carry the
// person's immutable id in another directory: an IdP pushing SCIM with the
// AD objectGUID as its externalId, an objectGUID or entryUUID copied into
// another source. Unlike an email or a username, they say two records are
// one person.
func (u User) ImmutableIDs() []string {
	var out []string
	for _, k := range []string{"externalId", "objectGUID", "entryUUID"} {
		if v := u.Attributes[k]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Group is a directory group with its resolved (transitive) members, by user Key.
type Group struct {
	Key     string   `json:"key"`
	Name    string   `json:"name"`
	Members []string `json:"members,omitempty"`
}

// Snapshot is one complete read of a source. A source returns a Snapshot only
// when the read was complete; a partial read is an error, never a Snapshot.
type Snapshot struct {
	Source  string    `json:"source"`
	TakenAt time.Time `json:"taken_at"`
	Users   []User    `json:"users"`
	Groups  []Group   `json:"groups,omitempty"`
}

// Normalize returns u with whitespace trimmed, the email lower-cased, groups
// sorted and de-duplicated, and an empty display name filled from the parts.
func Normalize(u User) User {
	u.Key = strings.TrimSpace(u.Key)
	u.Username = strings.TrimSpace(u.Username)
	u.Email = strings.ToLower(strings.TrimSpace(u.Email))
	u.GivenName = strings.TrimSpace(u.GivenName)
	u.FamilyName = strings.TrimSpace(u.FamilyName)
	u.DisplayName = strings.TrimSpace(u.DisplayName)
	if u.DisplayName == "" {
		u.DisplayName = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
	}
	if u.Expires != nil {
		t := u.Expires.UTC()
		u.Expires = &t
	}
	u.Groups = SortedSet(u.Groups)
	return u
}

// SortedSet returns the distinct values of in, sorted; nil for an empty
// input. When in already is such a set it is returned as is (not copied).
func SortedSet(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	if sortedDistinct(in) {
		return in // already a set: no copy (the common case on every run)
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]struct{}, len(in))
	for _, s := range in {
		if s == "" {
			continue
		}
		if _, ok := seen[s]; ok {
			continue
		}
		seen[s] = struct{}{}
		out = append(out, s)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

func sortedDistinct(in []string) bool {
	for i, s := range in {
		if s == "" || (i > 0 && in[i-1] >= s) {
			return false
		}
	}
	return true
}

// Account is what one application account should look like (desired) or last
// looked like when dirsync applied it (cached). Fields a target does not
// support are left empty by the planner.
type Account struct {
	// Key is the User.Key it was built from (the join winner's key).
	Key         string     `json:"key"`
	Username    string     `json:"username"`
	Email       string     `json:"email,omitempty"`
	GivenName   string     `json:"given_name,omitempty"`
	FamilyName  string     `json:"family_name,omitempty"`
	DisplayName string     `json:"display_name,omitempty"`
	Suspended   bool       `json:"suspended,omitempty"`
	Expires     *time.Time `json:"expires,omitempty"`
	Role        string     `json:"role,omitempty"`
	Groups      []string   `json:"groups,omitempty"`
	// Attributes are extra values a target asked for (computer usernames,
	// smartcards, enterprise-extension fields), already mapped to its names.
	Attributes map[string]string `json:"attributes,omitempty"`
	// MustChangePassword mirrors the source flag. The engine sends
	// force_password_change only when it turns from false to true.
	MustChangePassword bool `json:"must_change_password,omitempty"`
	// Remote holds identifiers the application assigned (uuid, email_id, ...),
	// written by connectors and kept in the cache.
	Remote map[string]string `json:"remote,omitempty"`
	// Exists is false for an account dirsync has not created (or has deleted).
	Exists bool `json:"exists"`
	// SuspendedAt is when dirsync deprovisioned the account by suspension; the
	// two-stage deprovisioning deletes it after the configured delay.
	SuspendedAt *time.Time `json:"suspended_at,omitempty"`
	// Deprovisioned is true when the account is suspended or stripped because
	// the person left the target's scope (as opposed to being disabled).
	Deprovisioned bool `json:"deprovisioned,omitempty"`
	// Orphan marks the record of an account no source knows that a
	// reconcile acted on (reconcile.orphans): only that policy decides
	// what happens to it, never a person's deprovisioning.
	Orphan bool `json:"orphan,omitempty"`
	// Failing counts, per action, the consecutive runs in which that action
	// failed on this account. Past the quarantine threshold the engine stops
	// retrying that action (never an access-reducing one: a leaver's
	// suspension is retried until it is confirmed).
	Failing map[string]int `json:"failing,omitempty"`
	// Pending names the action that was sent to the application but not yet
	// confirmed when this record was written. After a crash the engine
	// re-reads the account (where the target can) before retrying it.
	Pending string `json:"pending,omitempty"`
	// Unknown lists fields (FieldSuspended, FieldRole, ...) whose value in the
	// application is not known: a call that changes them was interrupted and
	// the application could not be read back. The planner re-sends whatever
	// the desired value is, so an uncertain unsuspend can never leave a
	// later suspension unsent.
	Unknown []string `json:"unknown,omitempty"`
}

// Fields of an account that an uncertain call can leave unknown.
const (
	FieldSuspended = "suspended"
	FieldRole      = "role"
	FieldGroups    = "groups"
	FieldExpires   = "expires"
	FieldProfile   = "profile"
	// FieldExists: a create or delete whose answer was lost.
	FieldExists = "exists"
)

// IsUnknown reports whether field f of a is marked unknown.
func (a Account) IsUnknown(f string) bool {
	for _, u := range a.Unknown {
		if u == f {
			return true
		}
	}
	return false
}

// WithUnknown returns a's unknown list with f added (sorted, distinct).
func (a Account) WithUnknown(f ...string) []string {
	return SortedSet(append(append([]string(nil), a.Unknown...), f...))
}

// WithoutUnknown returns a's unknown list without f.
func (a Account) WithoutUnknown(f string) []string {
	var out []string
	for _, u := range a.Unknown {
		if u != f {
			out = append(out, u)
		}
	}
	return out
}

// Clone returns a deep copy of a.
func (a Account) Clone() Account {
	b := a
	if a.Expires != nil {
		t := *a.Expires
		b.Expires = &t
	}
	if a.SuspendedAt != nil {
		t := *a.SuspendedAt
		b.SuspendedAt = &t
	}
	b.Groups = append([]string(nil), a.Groups...)
	if a.Groups == nil {
		b.Groups = nil
	}
	b.Unknown = append([]string(nil), a.Unknown...)
	if a.Unknown == nil {
		b.Unknown = nil
	}
	if a.Failing != nil {
		b.Failing = make(map[string]int, len(a.Failing))
		for k, v := range a.Failing {
			b.Failing[k] = v
		}
	}
	if a.Attributes != nil {
		b.Attributes = make(map[string]string, len(a.Attributes))
		for k, v := range a.Attributes {
			b.Attributes[k] = v
		}
	}
	if a.Remote != nil {
		b.Remote = make(map[string]string, len(a.Remote))
		for k, v := range a.Remote {
			b.Remote[k] = v
		}
	}
	return b
}

// SameDay reports whether two optional expiry times are equal (both nil, or
// the same instant).
func SameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}
