package sync

// Account identity (invariant 9): which application account belongs to
// which person, and which accounts nothing may touch. Every path that can
// touch an account asks here — the plan (its gate), adoption in full runs
// and in reconcile runs, reconcile's matching and its orphans, takeovers of
// a returning person's account, and approvals and plan files (they re-plan)
// — so the rules are the same on every path:
//
//   - an account whose application id is on record is matched by that id
//     alone (appIDs);
//   - a protected or allow-listed account is never adopted nor acted on
//     (keepOff);
//   - email or username adopt an account only when exactly one person
//     claims it, no record holds it, and it is not kept off (adopt); a
//     record left out as a link conflict is a claimant too, never an
//     orphan;
//   - a returning person takes a gone person's account over only when they
//     are the same person: the link table, or a source's immutable id
//     (samePerson).

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	stdsync "sync"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

// isAppIDKey reports whether a Remote key holds the application's own id
// for an account (not a cached list or a tag, which many accounts share).
func isAppIDKey(k string) bool {
	switch k {
	case "id", "uuid", "user_id", "email_id", "username", "invitation":
		return true
	}
	return false
}

// appIDs returns the application ids an account carries, as "key=value",
// by the default id keys (isAppIDKey).
func appIDs(a identity.Account) []string { return appIDsBy(a, isAppIDKey) }

// appIDsBy returns the application ids an account carries under the Remote
// keys isID accepts, as "key=value".
func appIDsBy(a identity.Account, isID func(string) bool) []string {
	var out []string
	for k, v := range a.Remote {
		if v != "" && isID(k) {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// idKeys returns the test of which Remote keys identify an account of t:
// the ones the connector names (connector.RemoteIDer), else isAppIDKey.
func idKeys(t connector.Connector) func(string) bool {
	if r, ok := t.(connector.RemoteIDer); ok {
		ids := r.RemoteIDs()
		return func(k string) bool { return slices.Contains(ids, k) }
	}
	return isAppIDKey
}

// sameAppID reports whether a and b carry a common application id.
func sameAppID(a, b identity.Account) bool {
	for k, v := range a.Remote {
		if v != "" && isAppIDKey(k) && b.Remote[k] == v {
			return true
		}
	}
	return false
}

// fold lower-cases a name (email or username) for matching.
func fold(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// owners is one target's account rules in one run.
type owners struct {
	target  string
	protect *connector.Protected                            // the target's protected list
	allow   []string                                        // reconcile.allow
	conn    func(connector.Action, identity.Account) string // the connector's own gate, or nil
	isID    func(string) bool                               // which Remote keys identify an account

	// Built on first use (most runs never need them).
	once   stdsync.Once
	claims map[string][]string // folded email or username → people and conflicted records claiming it
	kinds  map[string]string   // claimant → "person" or "conflict"
	build  func() (map[string][]string, map[string]string)
}

// ids returns the application ids account a carries on this target.
func (o *owners) ids(a identity.Account) []string { return appIDsBy(a, o.isID) }

// keepOff returns why no path may adopt or act on a ("" when it may): it
// is protected (the target's protected list, or the connector's own: the
// application's owner, the account of dirsync's credential) or on the
// target's reconcile allow-list.
func (o *owners) keepOff(a identity.Account) string {
	if why := o.protect.Reason(a); why != "" {
		return why
	}
	if allowed(o.allow, a) {
		return fmt.Sprintf("%q is on %s's reconcile allow-list: never touched by dirsync", displayUser(a), o.target)
	}
	return ""
}

// gate is the plan's gate: kept-off accounts first, then the connector's
// own (protected accounts, version gates, names it cannot take).
func (o *owners) gate(act connector.Action, a identity.Account) string {
	if why := o.keepOff(a); why != "" {
		return why
	}
	if o.conn != nil {
		return o.conn(act, a)
	}
	return ""
}

// claimants returns who claims account a by its email or username: person
// ids, and records left out as link conflicts; sorted.
func (o *owners) claimants(a identity.Account) []string {
	o.once.Do(func() { o.claims, o.kinds = o.build() })
	var out []string
	for _, n := range []string{a.Email, a.Username, a.Remote["email"], a.Remote["username"]} {
		if n = fold(n); n != "" {
			out = append(out, o.claims[n]...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// holders indexes the cache records that hold accounts, by application id
// and by email and username, to tell whether a live account is already
// someone's.
type holders struct {
	byID, byName map[string]string
	isID         func(string) bool
}

func (o *owners) newHolders(cached map[string]identity.Account) *holders {
	h := &holders{byID: map[string]string{}, byName: map[string]string{}, isID: o.isID}
	for k, c := range cached {
		h.add(k, c)
	}
	return h
}

// add records that the cache record k holds account c (when it exists).
func (h *holders) add(k string, c identity.Account) {
	if !c.Exists || c.Orphan {
		return // an orphan's record is nobody's: it does not hold its names
	}
	for _, id := range appIDsBy(c, h.isID) {
		h.byID[id] = k
	}
	for _, n := range []string{c.Email, c.Username} {
		if n = fold(n); n != "" {
			h.byName[n] = k
		}
	}
}

// of returns the record holding live account a: the same application id,
// or the same email or username. "" when none.
func (h *holders) of(a identity.Account) string {
	for _, id := range appIDsBy(a, h.isID) {
		if k := h.byID[id]; k != "" {
			return k
		}
	}
	for _, n := range []string{a.Email, a.Username} {
		if k := h.byName[fold(n)]; n != "" && k != "" {
			return k
		}
	}
	return ""
}

// adopt decides whether a live account that no cache record matched may
// be adopted, and by whom (invariant 9). It returns the person, or "" and
// why not (a skipped decision naming the candidates); both empty means
// nobody claims it (an orphan).
func (o *owners) adopt(a identity.Account, held *holders) (pid, why string) {
	if why := o.keepOff(a); why != "" {
		return "", "not adopted: " + why
	}
	cs := o.claimants(a)
	var named []string
	for _, c := range cs {
		if o.kinds[c] == "conflict" {
			c += " (a record left out as a link conflict)"
		}
		named = append(named, c)
	}
	if k := held.of(a); k != "" {
		why = fmt.Sprintf("not adopted: it carries the email or username of %s's account on record, another account", k)
		if len(named) > 0 {
			why += "; it matches " + strings.Join(named, ", ")
		}
		return "", why + ": an account belongs to one person; left to an operator"
	}
	switch {
	case len(cs) == 0:
		return "", ""
	case len(cs) == 1 && o.kinds[cs[0]] == "person":
		return cs[0], ""
	}
	return "", fmt.Sprintf("not adopted: its email or username matches %s: an account is adopted only when exactly one person matches; left to an operator",
		strings.Join(named, ", "))
}

// mayMatchByName reports whether a live account may be matched, by email
// or username, to the cache record k, whose application id is unknown (an
// interrupted create, an account dirsync never read): that is adoption
// again, so the same rules hold — not kept off, and claimed by nobody but
// k's person.
func (o *owners) mayMatchByName(a identity.Account, k string) bool {
	if o.keepOff(a) != "" {
		return false
	}
	for _, c := range o.claimants(a) {
		if c != k {
			return false
		}
	}
	return true
}

// isTheAccount reports whether got, what the application answered when
// asked for the account of record c (matched by the connector by its id,
// email or username), is that account: the same application id where
// both carry one, and never a kept-off account.
func (o *owners) isTheAccount(c, got identity.Account) bool {
	if mine, its := o.ids(c), o.ids(got); len(mine) > 0 && len(its) > 0 && !slices.ContainsFunc(its, func(id string) bool { return slices.Contains(mine, id) }) {
		return false
	}
	return o.keepOff(got) == "" || o.keepOff(c) != ""
}

// owners returns the target's account rules; claims are indexed on first
// use from the people the target's sources give and the link conflicts.
func (rc *runCtx) owners(f *flow) *owners {
	o := &owners{target: f.name, protect: connector.NewProtected(f.spec.Config.Protected...), allow: f.spec.Config.Reconcile.Allow,
		isID: idKeys(f.spec.Target)}
	if g, ok := f.spec.Target.(connector.Gater); ok {
		o.conn = g.Gate
	}
	o.build = func() (map[string][]string, map[string]string) {
		claims := map[string][]string{}
		kinds := map[string]string{}
		add := func(who, kind string, names ...string) {
			kinds[who] = kind
			for _, n := range names {
				if n = fold(n); n != "" && !slices.Contains(claims[n], who) {
					claims[n] = append(claims[n], who)
				}
			}
		}
		for _, u := range f.known {
			k := u.Key
			names := []string{u.Email, u.Username}
			if d, ok := f.desired[k]; ok {
				names = append(names, d.Account.Username, d.Account.Email)
			}
			add(k, "person", names...)
		}
		for _, u := range conflicted(f) {
			add(identity.RecordID(u.Source, u.Key), "conflict", u.Email, u.Username)
		}
		return claims, kinds
	}
	return o
}

// conflicted returns the records of the target's sources left out as link
// conflicts.
func conflicted(f *flow) []identity.User {
	if len(f.linked.Conflicts) == 0 {
		return nil
	}
	want := map[string]bool{}
	for _, c := range f.linked.Conflicts {
		want[c.Record] = true
	}
	var out []identity.User
	for _, name := range slices.Sorted(maps.Keys(f.snaps)) {
		s := f.snaps[name]
		if s == nil {
			continue
		}
		for _, u := range s.Users {
			if u.Source == "" {
				u.Source = s.Source
			}
			if want[identity.RecordID(u.Source, u.Key)] {
				out = append(out, u)
			}
		}
	}
	return out
}

// samePerson returns the planner's test of whether a person is the one a
// gone record (a person no source knows any more) belonged to: only then
// may they take its account over. The link table already merged every
// record it links; beyond it, a source's immutable id must match: a key of
// one of the gone person's records (objectGUID, entryUUID, SCIM id) is a
// key of one of the person's records, or their externalId. An email or a
// username alone never makes two people one.
func (rc *runCtx) samePerson(f *flow) func(person, gone string) bool {
	var once stdsync.Once
	var recs map[string][]string // person id → its records' source keys
	return func(person, gone string) bool {
		if person == gone {
			return true
		}
		once.Do(func() {
			recs = map[string][]string{}
			for rec, pid := range rc.links {
				isKnown := f.known.Has(pid)
				if !isKnown || !f.cached[pid].Exists { // a gone person, or a person without an account yet
					if i := strings.IndexByte(rec, ':'); i >= 0 {
						recs[pid] = append(recs[pid], rec[i+1:])
					}
				}
			}
		})
		ids := map[string]bool{}
		for _, k := range recs[person] {
			ids[k] = true
		}
		if u, ok := f.known.Get(person); ok {
			for _, v := range u.ImmutableIDs() {
				ids[v] = true
			}
		}
		for _, k := range recs[gone] {
			if ids[k] {
				return true
			}
		}
		return false
	}
}
