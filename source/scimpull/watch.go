package scimpull

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"go.uber.org/zap"
)

// cursorName is where the poll's resume time is kept in shared state.
func (s *Source) cursorName() string { return "scim_pull:" + s.name }

func (s *Source) saveCursor(ctx context.Context, since time.Time) {
	s.mu.Lock()
	s.since = since
	s.gen++
	s.mu.Unlock()
	if s.cur == nil {
		return
	}
	if err := s.cur.PutCursor(ctx, s.cursorName(), []byte(since.UTC().Format(time.RFC3339Nano))); err != nil {
		s.log.Warn("scim pull: cannot store the poll cursor (the next poll starts from memory)", zap.String("source", s.name), zap.Error(err))
	}
}

// Watch polls the provider every poll_interval for users (and groups) whose
// meta.lastModified is after the last read, and reports them as a Change:
// the engine runs for the people returned. A poll sees no deletions; the
// full read on the schedule does. Polling starts after the first Pull (it
// needs that read to resolve group changes). A provider that refuses the
// lastModified filter makes Watch return source.ErrWatchUnsupported, so the
// daemon re-reads the source in full on its incremental interval instead.
func (s *Source) Watch(ctx context.Context, notify func(source.Change)) error {
	iv := s.s.PollInterval.D()
	if iv <= 0 {
		return source.ErrWatchUnsupported
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		ch, err := s.Poll(ctx)
		switch {
		case errors.Is(err, errPollUnsupported):
			s.log.Warn("scim pull: the provider refuses meta.lastModified filters; changes are seen by full reads only", zap.String("source", s.name), zap.Error(err))
			return source.ErrWatchUnsupported
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("scimpull: %s: poll: %w", s.name, err)
		case ch != nil:
			notify(*ch)
		}
	}
}

var errPollUnsupported = errors.New("provider refuses the meta.lastModified filter")

// Poll reads what changed since the last read and returns it as a Change,
// or nil when nothing changed (or no full read has been made yet).
func (s *Source) Poll(ctx context.Context) (*source.Change, error) {
	s.mu.Lock()
	base, since, gen := s.idx, s.since, s.gen
	s.mu.Unlock()
	if base == nil {
		return nil, nil // the first Pull has not run: it reads everything
	}
	if since.IsZero() && s.cur != nil {
		if b, err := s.cur.Cursor(ctx, s.cursorName()); err == nil && len(b) > 0 {
			since, _ = time.Parse(time.RFC3339Nano, string(b))
		}
	}
	cond := fmt.Sprintf("meta.lastModified gt %q", since.UTC().Format(time.RFC3339Nano))
	userFilter := cond
	if s.s.Filter != "" {
		userFilter = "(" + s.s.Filter + ") and " + cond
	}
	_, pollStart, err := s.c.pagingMode(ctx)
	if err != nil {
		return nil, err
	}
	mode := PagingIndex // a poll returns few: index paging works everywhere
	users, err := s.c.list(ctx, "Users", userFilter, mode)
	if err != nil {
		if isInvalidFilter(err) {
			return nil, fmt.Errorf("%w: %v", errPollUnsupported, err)
		}
		return nil, err
	}
	var groups []resource
	if s.s.Groups == GroupsMembers {
		if groups, err = s.c.list(ctx, "Groups", cond, mode); err != nil {
			if isInvalidFilter(err) {
				return nil, fmt.Errorf("%w: %v", errPollUnsupported, err)
			}
			return nil, err
		}
	}
	next := base.clone()
	changed := map[string]bool{}
	for _, u := range users {
		if old, ok := base.users[u.ID]; ok && old.Modified.Equal(u.Modified) && !u.Modified.IsZero() {
			continue // seen by the last read: polled again only because of the margin
		}
		next.putUser(u)
		changed[u.ID] = true
	}
	groupsChanged := false
	for _, g := range groups {
		if old, ok := base.groups[g.ID]; ok && old.Modified.Equal(g.Modified) && !g.Modified.IsZero() {
			continue
		}
		next.putGroup(g)
		groupsChanged = true
	}
	var gcs []source.GroupChange
	if groupsChanged || (s.s.Groups == GroupsMembers && len(changed) > 0) {
		gcs = groupDiff(base, next)
		for _, gc := range gcs {
			for _, k := range gc.Added {
				changed[k] = true
			}
			for _, k := range gc.Removed {
				changed[k] = true
			}
		}
	}
	if s.s.Groups == GroupsUserGroups {
		gcs = nil // User.groups arrive with each changed user
	}
	newSince := since
	if !pollStart.IsZero() {
		newSince = pollStart.Add(-time.Second) // Date has whole seconds
	}
	for _, u := range users {
		if u.Modified.After(newSince) && pollStart.IsZero() {
			newSince = u.Modified
		}
	}
	s.mu.Lock()
	if s.gen == gen { // no full read replaced the index meanwhile
		s.idx = next
		s.since = newSince
	}
	s.mu.Unlock()
	if s.cur != nil && !newSince.Equal(since) {
		_ = s.cur.PutCursor(ctx, s.cursorName(), []byte(newSince.UTC().Format(time.RFC3339Nano)))
	}
	if len(changed) == 0 {
		return nil, nil
	}
	var userGroups map[string][]string
	if s.s.Groups == GroupsMembers {
		userGroups, _ = next.memberships()
	}
	ch := &source.Change{GroupChanges: gcs}
	for id := range changed {
		r, ok := next.users[id]
		if !ok {
			continue // a member outside the source's scope
		}
		var gs []string
		switch s.s.Groups {
		case GroupsMembers:
			gs = userGroups[id]
		case GroupsUserGroups:
			gs = userGroupNames(r)
		}
		ch.Upserts = append(ch.Upserts, toUser(s.name, r, gs))
	}
	slices.SortFunc(ch.Upserts, func(a, b identity.User) int { return strings.Compare(a.Key, b.Key) })
	ch.Reason = fmt.Sprintf("scim poll: %d users changed since %s", len(ch.Upserts), since.UTC().Format(time.RFC3339))
	if len(gcs) > 0 {
		ch.Reason += fmt.Sprintf(", %d groups", len(gcs))
	}
	return ch, nil
}

// groupDiff compares transitive memberships before and after.
func groupDiff(before, after *index) []source.GroupChange {
	_, ob := before.memberships()
	_, na := after.memberships()
	var out []source.GroupChange
	for id, g := range after.groups {
		added, removed := setDiff(ob[id], na[id])
		if len(added)+len(removed) > 0 {
			out = append(out, source.GroupChange{Key: id, Name: groupName(g), Added: added, Removed: removed})
		}
	}
	slices.SortFunc(out, func(a, b source.GroupChange) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// setDiff returns what is in b and not a, and in a and not b (both sorted).
func setDiff(a, b []string) (added, removed []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || (i < len(a) && a[i] < b[j]):
			removed = append(removed, a[i])
			i++
		case i >= len(a) || b[j] < a[i]:
			added = append(added, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return added, removed
}
