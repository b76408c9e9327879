package scim

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
)

// maxReasons bounds the reasons kept for one pending batch of changes.
const maxReasons = 8

// hub fans accepted writes out to the running Watch calls. Publishing never
// blocks: each watcher has a pending set that writes add to, and a signal
// channel of capacity one; a slow watcher sees several writes merged into
// one Change, never a blocked SCIM request.
type hub struct {
	mu   sync.Mutex
	subs map[*watcher]struct{}
}

type watcher struct {
	mu       sync.Mutex
	pending  map[string]struct{} // user ids touched
	reasons  []string
	dropped  int
	signal   chan struct{}
	upserted map[string]struct{}
}

func newHub() *hub { return &hub{subs: map[*watcher]struct{}{}} }

func (h *hub) add() *watcher {
	w := &watcher{pending: map[string]struct{}{}, signal: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs[w] = struct{}{}
	h.mu.Unlock()
	return w
}

func (h *hub) remove(w *watcher) {
	h.mu.Lock()
	delete(h.subs, w)
	h.mu.Unlock()
}

func (h *hub) publish(ids []string, reason string) {
	if len(ids) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.subs {
		w.mu.Lock()
		for _, id := range ids {
			w.pending[id] = struct{}{}
		}
		if len(w.reasons) < maxReasons {
			w.reasons = append(w.reasons, reason)
		} else {
			w.dropped++
		}
		w.mu.Unlock()
		select {
		case w.signal <- struct{}{}:
		default:
		}
	}
}

func (w *watcher) take() ([]string, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := slices.Sorted(maps.Keys(w.pending))
	reason := strings.Join(w.reasons, "; ")
	if w.dropped > 0 {
		reason += fmt.Sprintf("; and %d more", w.dropped)
	}
	w.pending = map[string]struct{}{}
	w.reasons, w.dropped = nil, 0
	return ids, reason
}

// changed reports an accepted write to the watchers. prev and next are the
// resource before and after (nil for create and delete).
func (s *Server) changed(rt *resourceType, method string, prev, next *record) {
	if rt == s.users {
		id, what := "", ""
		switch {
		case next == nil:
			id, what = prev.ID, "user deleted"
		case prev == nil:
			id, what = next.ID, "user created"
			if a, ok := next.Attrs["active"].(bool); ok && !a {
				what += ", active=false"
			}
		default:
			id, what = next.ID, describeUserChange(prev, next)
		}
		reason := "scim " + method + " " + what
		s.log.Info("scim: user changed", zapID(id), zapReason(reason))
		s.hub.publish([]string{id}, reason)
		return
	}
	var before, after groupInfo
	if prev != nil {
		before = groupInfoOf(prev)
	}
	if next != nil {
		after = groupInfoOf(next)
	}
	var touched []string
	added, removed := 0, 0
	if before.name != after.name {
		// A rename (or create/delete) changes every member's groups.
		touched = append(touched, before.members...)
		touched = append(touched, after.members...)
	}
	was, is := before.set, after.set
	for m := range is {
		if _, ok := was[m]; !ok {
			touched = append(touched, m)
			added++
		}
	}
	for m := range was {
		if _, ok := is[m]; !ok {
			touched = append(touched, m)
			removed++
		}
	}
	name := after.name
	if next == nil {
		name = before.name
	}
	var what string
	switch {
	case next == nil:
		what = fmt.Sprintf("group %q deleted", name)
	case prev == nil:
		what = fmt.Sprintf("group %q created with %d members", name, len(after.members))
	case before.name != after.name:
		what = fmt.Sprintf("group %q renamed to %q", before.name, after.name)
	default:
		what = fmt.Sprintf("group %q members +%d -%d", name, added, removed)
	}
	reason := "scim " + method + " " + what
	gid := ""
	if next != nil {
		gid = next.ID
	} else {
		gid = prev.ID
	}
	s.log.Info("scim: group changed", zapID(gid), zapReason(reason))
	// Members may be nested groups: their users are touched too.
	s.hub.publish(s.expandMembers(touched), reason)
}

// expandMembers replaces group ids by their (transitive) user members.
func (s *Server) expandMembers(ids []string) []string {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	out := map[string]struct{}{}
	seen := map[string]struct{}{}
	var walk func(id string)
	walk = func(id string) {
		if _, ok := seen[id]; ok {
			return
		}
		seen[id] = struct{}{}
		if g, ok := s.idx.groups[id]; ok {
			for _, m := range g.members {
				walk(m)
			}
			return
		}
		out[id] = struct{}{}
	}
	for _, id := range ids {
		walk(id)
	}
	return slices.Sorted(maps.Keys(out))
}

func setOf(l []string) map[string]struct{} {
	m := make(map[string]struct{}, len(l))
	for _, x := range l {
		m[x] = struct{}{}
	}
	return m
}

// describeUserChange names what a write changed: "active=false" first (the
// change that matters most), then the other attributes touched.
func describeUserChange(prev, next *record) string {
	var parts []string
	pa, pok := prev.Attrs["active"].(bool)
	na, nok := next.Attrs["active"].(bool)
	if !pok {
		pa = true
	}
	if !nok {
		na = true
	}
	if pa != na {
		parts = append(parts, fmt.Sprintf("active=%t", na))
	}
	keys := map[string]struct{}{}
	for k := range prev.Attrs {
		keys[k] = struct{}{}
	}
	for k := range next.Attrs {
		keys[k] = struct{}{}
	}
	var other []string
	for k := range keys {
		if k == "active" {
			continue
		}
		// DeepEqual first: cheap, and only a differing pair is encoded.
		if a, b := prev.Attrs[k], next.Attrs[k]; !reflect.DeepEqual(a, b) && !jsonEqual(a, b) {
			if k == URNEnterpriseUser {
				k = "enterprise"
			}
			other = append(other, k)
		}
	}
	sort.Strings(other)
	parts = append(parts, other...)
	if len(parts) == 0 {
		return "user unchanged"
	}
	return strings.Join(parts, ",")
}

// Watch delivers a source.Change after every write this server accepts,
// until ctx ends. Delivery never blocks SCIM requests: writes made while
// notify runs are merged into the next Change (the latest state of each
// touched user). Changes are reported as soon as they are stored; the
// engine does the debouncing. Writes accepted by other replicas sharing the
// store are not reported here (the next Pull sees them).
func (s *Server) Watch(ctx context.Context, notify func(source.Change)) error {
	w := s.hub.add()
	defer s.hub.remove(w)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.signal:
		}
		ids, reason := w.take()
		if len(ids) == 0 {
			continue
		}
		ch, err := s.resolve(ctx, ids, reason)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The store failed: ask for a full pull rather than lose the change.
			s.log.Warn("scim: change not resolved; asking for a full pull", zapErr(err))
			notify(source.Change{Full: true, Reason: reason + " (could not read the changed users: full pull)"})
			continue
		}
		notify(ch)
	}
}

// Resolve implements source.Resolver: the current records of these users
// (deleted ones as Deletes), with the group index read afresh — the change
// may have been made on another replica.
func (s *Server) Resolve(ctx context.Context, ids []string, reason string) (source.Change, error) {
	groups, err := s.listAll(ctx, s.groups)
	if err != nil {
		return source.Change{}, err
	}
	s.idx.resetGroups(groups, s.now())
	return s.resolve(ctx, ids, reason)
}

// resolve turns touched user ids into complete user records.
func (s *Server) resolve(ctx context.Context, ids []string, reason string) (source.Change, error) {
	if s.groupRefresh > 0 {
		s.idx.mu.RLock()
		stale := s.now().Sub(s.idx.groupsRead) > s.groupRefresh
		s.idx.mu.RUnlock()
		if stale {
			groups, err := s.listAll(ctx, s.groups)
			if err != nil {
				return source.Change{}, err
			}
			s.idx.resetGroups(groups, s.now())
		}
	}
	ch := source.Change{Reason: reason}
	for _, id := range ids {
		r, _, err := s.get(ctx, s.users, id)
		if isNotFound(err) {
			ch.Deletes = append(ch.Deletes, id)
			continue
		}
		if err != nil {
			return source.Change{}, err
		}
		ch.Upserts = append(ch.Upserts, s.toUser(r, s.idx.groupsOf(id)))
	}
	return ch, nil
}

// Pull returns every stored user and group. It also rebuilds the
// in-process index from what it read.
func (s *Server) Pull(ctx context.Context) (*identity.Snapshot, error) {
	taken := s.now().UTC()
	users, err := s.listAll(ctx, s.users)
	if err != nil {
		return nil, err
	}
	groups, err := s.listAll(ctx, s.groups)
	if err != nil {
		return nil, err
	}
	if s.ix == nil {
		s.idx.resetUsers(users)
	}
	s.idx.resetGroups(groups, s.now())
	s.loaded.Store(true)
	snap := &identity.Snapshot{Source: s.name, TakenAt: taken, Users: make([]identity.User, 0, len(users))}
	isUser := make(map[string]struct{}, len(users))
	for _, u := range users {
		isUser[u.ID] = struct{}{}
	}
	for _, u := range users {
		snap.Users = append(snap.Users, s.toUser(u, s.idx.groupsOf(u.ID)))
	}
	for _, g := range groups {
		members := s.expandMembers([]string{g.ID})
		var ms []string
		for _, m := range members {
			if _, ok := isUser[m]; ok {
				ms = append(ms, m)
			}
		}
		snap.Groups = append(snap.Groups, identity.Group{Key: g.ID, Name: g.str("displayName"), Members: ms})
	}
	return snap, nil
}

// Enterprise extension attributes copied into identity.User.Attributes.
var enterpriseAttrs = []string{"employeeNumber", "costCenter", "organization", "division", "department"}

// Core attributes copied into identity.User.Attributes.
var coreAttrs = []string{"externalId", "nickName", "title", "userType", "preferredLanguage", "locale", "timezone", "profileUrl"}

// toUser maps a stored SCIM user to the canonical model.
func (s *Server) toUser(r *record, groups map[string]string) identity.User {
	u := identity.User{
		Key:         r.ID,
		Source:      s.name,
		Username:    r.str("userName"),
		DisplayName: r.str("displayName"),
		Active:      true,
	}
	if a, ok := r.Attrs["active"].(bool); ok {
		u.Active = a
	}
	if !u.Active {
		u.Facts = map[string]string{identity.FactActive: "active=false"}
	}
	if n, ok := r.Attrs["name"].(map[string]any); ok {
		u.GivenName = asString(n["givenName"])
		u.FamilyName = asString(n["familyName"])
	}
	u.Email = primaryEmail(r.Attrs["emails"])
	attrs := map[string]string{}
	for _, k := range coreAttrs {
		if v := r.str(k); v != "" {
			attrs[k] = v
		}
	}
	if ext, ok := r.Attrs[URNEnterpriseUser].(map[string]any); ok {
		for _, k := range enterpriseAttrs {
			if v := asString(ext[k]); v != "" {
				attrs[k] = v
			}
		}
		if m, ok := ext["manager"].(map[string]any); ok {
			if v := asString(m["value"]); v != "" {
				attrs["manager"] = v
			}
			if v := asString(m["displayName"]); v != "" {
				attrs["managerDisplayName"] = v
			}
		}
	}
	if len(attrs) > 0 {
		u.Attributes = attrs
	}
	for _, name := range groups {
		if name != "" {
			u.Groups = append(u.Groups, name)
		}
	}
	return identity.Normalize(u)
}

// primaryEmail picks the primary email, else the work one, else the first.
func primaryEmail(v any) string {
	var first, work string
	for _, el := range asList(v) {
		m, ok := el.(map[string]any)
		if !ok {
			continue
		}
		val := asString(m["value"])
		if val == "" {
			continue
		}
		if isTrue(m["primary"]) {
			return val
		}
		if work == "" && strings.EqualFold(asString(m["type"]), "work") {
			work = val
		}
		if first == "" {
			first = val
		}
	}
	if work != "" {
		return work
	}
	return first
}
