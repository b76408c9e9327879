package sync_test

// The reference model of the model-based test: what the sources say now
// (truth), which versions of it the engine may legitimately know, and what
// each application account must look like given a version.

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
)

const (
	srcAD  = "ad"  // the directory, pulled in full runs
	srcIdP = "idp" // an IdP pushing SCIM; higher precedence
)

// The model's groups: staff scopes "app", vpn scopes "vpn", admins gives
// the admin role, vpn and ops map to application groups in "app".
var modelGroups = []string{"staff", "vpn", "admins", "ops"}

// record is one source's record of a person.
type record struct {
	active     bool
	expires    *time.Time
	groups     []string // sorted
	mustChange bool
	given      string
	// email and uname, when set, replace the person's own: a successor
	// given a leaver's role mailbox or recycled username.
	email, uname string
}

// modelSuccessors are people the directory does not carry at first: a
// successor event brings one in with a leaver's email or username.
const modelSuccessors = 2

// strangerNames are accounts in app that no person has (the protected
// mechanism): an orphan, a protected service account and an allow-listed
// account, the last two bearing the emails of people 1 and 2.
var strangerNames = []string{"orphan-x", "svc-p01", "ext-p02"}

// strangerEmail returns a stranger account's email.
func strangerEmail(name string) string {
	switch name {
	case "svc-p01":
		return username(1) + "@example.test"
	case "ext-p02":
		return username(2) + "@example.test"
	}
	return name + "@example.test"
}

// familyName is a person's family name in every source: the model tells
// whose an account is by it (usernames and emails may be shared).
func familyName(p int) string { return fmt.Sprintf("Person%02d", p) }

func (r record) clone() record {
	r.groups = slices.Clone(r.groups)
	if r.expires != nil {
		t := *r.expires
		r.expires = &t
	}
	return r
}

// version is one source's content: person → record (absent: not carried).
type version map[int]record

func (v version) clone() version {
	out := make(version, len(v))
	for p, r := range v {
		out[p] = r.clone()
	}
	return out
}

// person names: every person has one username and email in all sources,
// and a key per source.
func username(p int) string              { return fmt.Sprintf("p%02d", p) }
func dupUsername(p int) string           { return "adm-" + username(p) }
func sourceKey(src string, p int) string { return fmt.Sprintf("%s-%02d", src, p) }

// personOf maps an application username back to a person; dup is true for
// the second (admin) record of a person in the directory.
func personOf(name string) (p int, dup, ok bool) {
	dup = strings.HasPrefix(name, "adm-")
	if _, err := fmt.Sscanf(strings.TrimPrefix(name, "adm-"), "p%d", &p); err != nil {
		return 0, false, false
	}
	return p, dup, true
}

// personOfAccount returns the person an account or call is about, by its
// family name (then its username); dup is true for the directory's second
// (admin) record of a person; ok is false for accounts no person has.
func personOfAccount(a identity.Account) (p int, dup, ok bool) {
	dup = strings.HasPrefix(a.Username, "adm-")
	if _, err := fmt.Sscanf(a.FamilyName, "Person%d", &p); err == nil {
		return p, dup, true
	}
	return personOf(a.Username)
}

// user is the identity.User a source returns for a record.
func (r record) user(src string, p int) identity.User {
	u := identity.User{Key: sourceKey(src, p), Source: src, Username: cmp.Or(r.uname, username(p)), Email: cmp.Or(r.email, username(p)+"@example.test"),
		GivenName: r.given, FamilyName: familyName(p), Active: r.active, Expires: r.expires, MustChangePassword: r.mustChange,
		Groups: slices.Clone(r.groups)}
	if src == srcIdP {
		// The IdP provisions from the directory: its externalId is the
		// directory's immutable key of the same person (invariant 9: the
		// evidence that a record is the same person, not an email).
		u.Attributes = map[string]string{"externalId": sourceKey(srcAD, p)}
	}
	return u
}

// merged is a person as the sources together describe them: a disable in
// any source wins, the earliest expiry wins, groups are the union.
type merged struct {
	present    bool
	active     bool
	expires    *time.Time
	groups     []string
	mustChange bool
}

func merge(recs ...*record) merged {
	var m merged
	for _, r := range recs {
		if r == nil {
			continue
		}
		if !m.present {
			m = merged{present: true, active: true}
		}
		m.active = m.active && r.active
		if r.expires != nil && (m.expires == nil || r.expires.Before(*m.expires)) {
			m.expires = r.expires
		}
		m.groups = identity.SortedSet(append(m.groups, r.groups...))
		m.mustChange = m.mustChange || r.mustChange
	}
	return m
}

// want is what one application account must be.
type want struct {
	present   bool
	suspended bool
	role      string
	groups    []string
	expires   *time.Time
}

// targetModel is one target's configured rules, as the model reads them.
type targetModel struct {
	name string
	// scope: the group a person needs to be in scope ("" = everyone).
	scope string
	// includeInactive: disabled people keep a suspended account.
	includeInactive bool
	roles           bool // admins → admin, others → user
	groups          bool // vpn, ops → application groups
	// deleteGone: people out of scope are deleted (else suspended).
	deleteGone bool
	// creates: the target creates accounts (else they exist already).
	creates bool
	// byUsername: the application addresses accounts by username.
	byUsername bool
	// roleVariant picks the role rules (roleVariantNames).
	roleVariant int
}

// roleRules returns the target's role rules: group → role, first match.
func (tm targetModel) roleRules() [][2]string {
	switch tm.roleVariant {
	case 1:
		return [][2]string{{"staff", "user"}, {"admins", "admin"}}
	case 2:
		return [][2]string{{"ops", "lead"}, {"admins", "admin"}}
	case 3:
		return [][2]string{{"admins", "admin"}, {"ops", "lead"}}
	case 4:
		return nil
	}
	return [][2]string{{"admins", "admin"}}
}

// privilege ranks roles by what they allow, whatever the rules' order.
func privilege(role string) int {
	return map[string]int{"user": 1, "lead": 2, "admin": 3}[role]
}

func (tm targetModel) want(m merged, now time.Time) want {
	if !m.present || (tm.scope != "" && !slices.Contains(m.groups, tm.scope)) || (!m.active && !tm.includeInactive) {
		return want{}
	}
	w := want{present: true, expires: m.expires}
	w.suspended = !m.active || (m.expires != nil && !now.Before(*m.expires))
	if tm.roles {
		w.role = "user"
		for _, rr := range tm.roleRules() {
			if slices.Contains(m.groups, rr[0]) {
				w.role = rr[1]
				break
			}
		}
	}
	if tm.groups {
		for _, g := range []string{"ops", "vpn"} {
			if slices.Contains(m.groups, g) {
				w.groups = append(w.groups, g)
			}
		}
	}
	return w
}

// reference is the truth of the sources and what the engine may know of it.
type reference struct {
	truth map[string]version
	// dups are people the directory carries twice (a second, admin record
	// with the same email): a conflict, never a merge.
	dups map[int]bool
	// history holds, per source, every version since the engine last
	// stored one equal to the truth: what it may legitimately act on.
	history map[string][]version
	// pwdEvents counts each person's must-change-password events (the
	// merged flag turning on).
	pwdEvents map[int]int
	// shared marks people whose record arrived with the email or username
	// of another person the sources carried (a leaver returning after a
	// successor took their mailbox): the model does not say which of them
	// an application serves.
	shared map[int]bool
	// conflicted marks two people whose records came to share an email
	// while both were carried (a conflict, invariants 5 and 10): no
	// expectation of what they get, but no access of theirs is reduced
	// unless the sources call for it.
	conflicted map[int]bool
	// sharedWith marks the established people a newcomer shared an
	// identifier with: when the engine first saw both at once, it may
	// leave both out as a conflict, so they may have no account.
	sharedWith map[int]bool
	// recycled marks a leaver and the successor given their username: an
	// application that knows accounts by username (Ezeelogin) has one
	// account for both, so the model does not judge them there.
	recycled map[int]bool
}

// noteArrival marks p as a newcomer sharing an identifier when p's
// record just appeared in src with the email or username of another
// person the sources carry.
func (r *reference) noteArrival(src string, p int) {
	rec, ok := r.truth[src][p]
	if !ok {
		return
	}
	u := rec.user(src, p)
	for _, s := range []string{srcAD, srcIdP} {
		for q, other := range r.truth[s] {
			if q == p {
				continue
			}
			o := other.user(s, q)
			if strings.EqualFold(o.Email, u.Email) || o.Username == u.Username {
				r.shared[p] = true
				r.sharedWith[q] = true
			}
		}
	}
}

func newReference(ad, idp version) *reference {
	r := &reference{truth: map[string]version{srcAD: ad, srcIdP: idp}, dups: map[int]bool{},
		history: map[string][]version{}, pwdEvents: map[int]int{}, shared: map[int]bool{}, recycled: map[int]bool{}, conflicted: map[int]bool{}, sharedWith: map[int]bool{}}
	for _, src := range []string{srcAD, srcIdP} {
		r.history[src] = []version{r.truth[src].clone()}
	}
	for p := range r.people() {
		if r.merged(p).mustChange {
			r.pwdEvents[p]++
		}
	}
	return r
}

// people returns every person either source carries or ever carried.
func (r *reference) people() map[int]bool {
	out := map[int]bool{}
	for _, src := range []string{srcAD, srcIdP} {
		for _, v := range r.history[src] {
			for p := range v {
				out[p] = true
			}
		}
		for p := range r.truth[src] {
			out[p] = true
		}
	}
	return out
}

func (r *reference) merged(p int) merged {
	var recs []*record
	for _, src := range []string{srcIdP, srcAD} {
		if rec, ok := r.truth[src][p]; ok {
			recs = append(recs, &rec)
		}
	}
	return merge(recs...)
}

// change applies fn to a source's record of p (nil when absent; returning
// nil removes it) and records the new version.
func (r *reference) change(src string, p int, fn func(*record) *record) {
	before := r.merged(p).mustChange
	var cur *record
	if rec, ok := r.truth[src][p]; ok {
		c := rec.clone()
		cur = &c
	}
	next := r.truth[src].clone()
	if n := fn(cur); n != nil {
		next[p] = n.clone()
	} else {
		delete(next, p)
	}
	r.truth[src] = next
	r.history[src] = append(r.history[src], next.clone())
	if cur == nil {
		r.noteArrival(src, p)
	}
	if !before && r.merged(p).mustChange {
		r.pwdEvents[p]++
	}
}

// stored tells the reference what the engine stored for a source: when it
// equals the truth, older versions stop being a justification; other
// content the engine read (a short read) becomes one.
func (r *reference) stored(src string, v version, equalsTruth bool) {
	if equalsTruth {
		r.history[src] = []version{r.truth[src].clone()}
		return
	}
	r.history[src] = append(r.history[src], v.clone())
}

// settled reports whether the engine stored the truth of every source.
func (r *reference) settled() bool {
	return len(r.history[srcAD]) == 1 && len(r.history[srcIdP]) == 1
}

// justified reports whether some combination of the versions the engine
// may know gives an account of target tm for person p that satisfies ok.
func (r *reference) justified(tm targetModel, p int, now time.Time, ok func(want) bool) bool {
	for _, a := range distinct(r.history[srcAD], p) {
		for _, i := range distinct(r.history[srcIdP], p) {
			if ok(tm.want(merge(i, a), now)) {
				return true
			}
		}
	}
	return false
}

// justifiedByRead reports whether the directory content ad (a read the
// engine acts on), with any IdP version the engine may know, gives an
// account of tm for p that satisfies ok.
func (r *reference) justifiedByRead(tm targetModel, p int, now time.Time, ad version, ok func(want) bool) bool {
	var a *record
	if rec, in := ad[p]; in {
		a = &rec
	}
	for _, i := range distinct(r.history[srcIdP], p) {
		if ok(tm.want(merge(i, a), now)) {
			return true
		}
	}
	return false
}

// wantNow is the account the truth gives.
func (r *reference) wantNow(tm targetModel, p int, now time.Time) want {
	return tm.want(r.merged(p), now)
}

// distinct returns the distinct records of p across versions (nil: absent).
func distinct(vs []version, p int) []*record {
	seen := map[string]bool{}
	var out []*record
	for _, v := range vs {
		var rec *record
		if r, ok := v[p]; ok {
			rec = &r
		}
		k := fmt.Sprint(rec != nil, rec)
		if rec != nil {
			k = fmt.Sprint(rec.active, fmtTime(rec.expires), rec.groups, rec.mustChange, rec.email, rec.uname)
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, rec)
		}
	}
	return out
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format("01-02T15:04")
}

// fingerprint summarises users by the fields the model sets, to tell
// whether a stored snapshot equals a version.
func fingerprint(users []identity.User) string {
	lines := make([]string, 0, len(users))
	for _, u := range users {
		lines = append(lines, fmt.Sprint(u.Key, u.Active, fmtTime(u.Expires), identity.SortedSet(u.Groups), u.MustChangePassword, u.GivenName, u.Email, u.Username))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// users returns a source's users for a version (and the directory's
// duplicate records).
func (r *reference) users(src string, v version) []identity.User {
	out := make([]identity.User, 0, len(v))
	for _, p := range slices.Sorted(maps.Keys(v)) {
		out = append(out, v[p].user(src, p))
		if src == srcAD && r.dups[p] {
			d := v[p].user(src, p)
			d.Key, d.Username = d.Key+"-adm", dupUsername(p)
			d.Groups = identity.SortedSet(append(d.Groups, "admins"))
			out = append(out, d)
		}
	}
	return out
}
