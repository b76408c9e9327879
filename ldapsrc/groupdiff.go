package ldapsrc

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/ldapsrc/internal/wire"
	"github.com/dirsync/dirsync/source"
	"github.com/go-ldap/ldap/v3"
)

// maxGroupChangeUsers bounds the users one batch of group changes is
// resolved to; past it a full pull is cheaper than reading each user.
const maxGroupChangeUsers = 500

// memberIndex is the last known direct member list of every group in
// scope. Watch keeps it across reconnects, so a group change (seen by
// syncrepl, a USN poll or a notification) is turned into the users it adds
// and removes instead of a full pull. Reading it costs one group search
// (the groups half of a pull) per Watch start.
type memberIndex struct {
	mu     sync.Mutex
	built  bool
	polled bool // a poll has stored a cursor since the index was read

	usn    int64                  // AD: highestCommittedUSN just before the index was read
	groups map[string]*groupState // by normalized DN
	byKey  map[string]string      // group key → normalized DN
}

// groupState is one group as last read.
type groupState struct {
	key, name, rawDN string
	members          map[string]bool // normalized member DNs
	uids             map[string]bool // posixGroup memberUid values
}

func newGroupState(g *groupRec) *groupState {
	gs := &groupState{key: g.key, name: g.name, rawDN: g.rawDN, members: map[string]bool{}, uids: map[string]bool{}}
	for _, m := range g.others {
		gs.members[m] = true
	}
	for _, u := range g.uids {
		gs.uids[u] = true
	}
	return gs
}

// build reads every group in scope into the index.
func (ix *memberIndex) build(ctx context.Context, ss *session, usn int64) error {
	r := &reader{src: ss.s, p: ss.p}
	if err := r.readGroups(ctx, ss.c); err != nil {
		return fmt.Errorf("member index: %w", err)
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.groups, ix.byKey = map[string]*groupState{}, map[string]string{}
	for _, g := range r.groups {
		ix.groups[g.dn] = newGroupState(g)
		ix.byKey[g.key] = g.dn
	}
	ix.built, ix.usn, ix.polled = true, usn, false
	return nil
}

// hasKey reports whether key is a group the index knows (nil-safe).
func (ix *memberIndex) hasKey(key string) bool {
	if ix == nil {
		return false
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	_, ok := ix.byKey[key]
	return ok
}

// ensureIndex rebuilds the index after a failed or unresolvable change.
func (ss *session) ensureIndex(ctx context.Context) error {
	if ss.ix == nil || ss.ix.built {
		return nil
	}
	usn := int64(0)
	if ss.p.flavour == FlavourActiveDirectory {
		dse, err := readRootDSE(ctx, ss.c)
		if err != nil {
			return err
		}
		usn = dse.highestUSN
	}
	return ss.ix.build(ctx, ss, usn)
}

// usersUnder adds the member DNs (and "uid:" memberUid values) that are not
// groups, reached from dn through nested groups, to out.
func (ix *memberIndex) usersUnder(dn string, nested bool, seen, out map[string]bool) {
	g := ix.groups[dn]
	if g == nil {
		out[dn] = true
		return
	}
	if seen[dn] {
		return
	}
	seen[dn] = true
	for m := range g.members {
		if sub := ix.groups[m]; sub != nil && !nested {
			continue
		}
		ix.usersUnder(m, nested, seen, out)
	}
	for u := range g.uids {
		out["uid:"+u] = true
	}
}

// groupRef names a changed group: a base to re-read it from (a DN, or
// "<GUID=...>" on Active Directory) and, when known, its key.
type groupRef struct {
	base    string
	key     string
	deleted bool // known to be gone: no re-read
}

// groupChanges re-reads the changed groups on ss.c, diffs their members
// with the index and resolves the difference to users. ok is false when
// the change cannot be resolved (no index, a rename, too many users):
// the caller asks for a full pull.
func (ss *session) groupChanges(ctx context.Context, ix *memberIndex, m *mapper, refs []groupRef) (ch source.Change, ok bool, err error) {
	if ix == nil || !ix.built {
		return ch, false, nil
	}
	defer func() {
		if err != nil || !ok {
			// Part of the index may be newer than what was reported.
			ix.built = false
		}
	}()
	nested := ss.s.s.Groups.Nested != nestedNone
	type diff struct {
		key, name      string
		added, removed map[string]bool
		deleted        bool
	}
	var diffs []diff
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, ref := range refs {
		var cur *groupState
		if !ref.deleted {
			rp := ss.p
			rp.groupBase, rp.groupScope = ref.base, 0
			r := &reader{src: ss.s, p: rp}
			if err := r.readGroups(ctx, ss.c); err != nil && !wire.IsCode(err, wire.ResultNoSuchObject) {
				return ch, false, err
			}
			for _, g := range r.groups {
				if under([]byte(g.rawDN), ss.p.groupBase) {
					cur = newGroupState(g)
				}
			}
		}
		key := ref.key
		if cur != nil {
			key = cur.key
		}
		var old *groupState
		if dn, found := ix.byKey[key]; found {
			old = ix.groups[dn]
		}
		if old == nil && cur == nil {
			continue // not a group in scope, before or after
		}
		if old != nil && cur != nil && old.name != cur.name {
			return ch, false, nil // renamed: every member's groups change
		}
		// Members through nested groups, before and after.
		before, after := map[string]bool{}, map[string]bool{}
		if old != nil {
			ix.usersUnder(normDN(old.rawDN), nested, map[string]bool{}, before)
			delete(ix.groups, normDN(old.rawDN))
			delete(ix.byKey, old.key)
		}
		if cur != nil {
			ix.groups[normDN(cur.rawDN)] = cur
			ix.byKey[cur.key] = normDN(cur.rawDN)
			ix.usersUnder(normDN(cur.rawDN), nested, map[string]bool{}, after)
		}
		d := diff{key: key, added: map[string]bool{}, removed: map[string]bool{}, deleted: cur == nil}
		if cur != nil {
			d.name = cur.name
		} else {
			d.name = old.name
		}
		for u := range after {
			if !before[u] {
				d.added[u] = true
			}
		}
		for u := range before {
			if !after[u] {
				d.removed[u] = true
			}
		}
		if len(d.added)+len(d.removed) > 0 || d.deleted {
			diffs = append(diffs, d)
		}
	}
	// Resolve member DNs to users (each read once).
	users := map[string]*identity.User{} // member → user, nil when not a user in scope
	for _, d := range diffs {
		for u := range d.added {
			users[u] = nil
		}
		for u := range d.removed {
			users[u] = nil
		}
	}
	if len(users) > maxGroupChangeUsers {
		return ch, false, nil
	}
	var ps []pendingUser
	var from []string
	for _, member := range slices.Sorted(maps.Keys(users)) {
		got, err := ss.memberUser(ctx, m, member)
		if err != nil {
			return ch, false, err
		}
		for range got {
			from = append(from, member)
		}
		ps = append(ps, got...)
	}
	complete, err := ss.complete(ctx, ss.c, ps)
	if err != nil {
		return ch, false, err
	}
	for i := range complete {
		users[from[i]] = &complete[i]
	}
	keys := func(set map[string]bool) []string {
		var out []string
		for member := range set {
			if u := users[member]; u != nil {
				out = append(out, u.Key)
			}
		}
		return identity.SortedSet(out)
	}
	for _, d := range diffs {
		gc := source.GroupChange{Key: d.key, Name: d.name, Added: keys(d.added), Removed: keys(d.removed), Deleted: d.deleted}
		if len(gc.Added)+len(gc.Removed) > 0 || gc.Deleted {
			ch.GroupChanges = append(ch.GroupChanges, gc)
		}
	}
	ch.Upserts = complete
	return ch, true, nil
}

// memberUser reads the user behind a member value (a DN, or "uid:NAME"
// from a posixGroup); none when it is not a user in scope.
func (ss *session) memberUser(ctx context.Context, m *mapper, member string) ([]pendingUser, error) {
	req := wire.SearchRequest{BaseDN: member, Scope: wire.ScopeBase, Filter: ss.p.userFilter, Attributes: ss.userAttrs(m)}
	if len(member) > 4 && member[:4] == "uid:" {
		if ss.p.m.Username == "" {
			return nil, nil
		}
		req.BaseDN, req.Scope = ss.p.userBase, wire.Scope(ss.p.userScope)
		req.Filter = "(&" + ss.p.userFilter + "(" + ss.p.m.Username + "=" + ldap.EscapeFilter(member[4:]) + "))"
	}
	got, err := ss.collect(ctx, m, "users", req, func(e *wire.Entry) bool { return under(e.DN, ss.p.userBase) })
	if wire.IsCode(err, wire.ResultNoSuchObject) {
		return nil, nil
	}
	return got, err
}

// merge adds o's upserts (replacing records of the same key), deletes and
// group changes to ch.
func merge(ch *source.Change, o source.Change) {
	for _, u := range o.Upserts {
		if i := slices.IndexFunc(ch.Upserts, func(x identity.User) bool { return x.Key == u.Key }); i >= 0 {
			ch.Upserts[i] = u
		} else {
			ch.Upserts = append(ch.Upserts, u)
		}
	}
	ch.Deletes = append(ch.Deletes, o.Deletes...)
	ch.GroupChanges = append(ch.GroupChanges, o.GroupChanges...)
}
