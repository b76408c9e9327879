package scimclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// groupLock serialises lookups and creation of one group name, so two
// accounts joining a new group at once create it once.
func (t *Target) groupLock(name string) *sync.Mutex {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.groupLocks[name]
	if !ok {
		l = &sync.Mutex{}
		t.groupLocks[name] = l
	}
	return l
}

func (t *Target) cachedGroup(name string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.groupIDs[name]
}

func (t *Target) cacheGroup(name, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id == "" {
		delete(t.groupIDs, name)
		return
	}
	t.groupIDs[name] = id
}

// groupID returns the id of the group with this displayName, from the cache
// or by `displayName eq` lookup; with create, a missing group is created
// (a 409 on create means someone else just did: look it up again). "" with
// a nil error means the group does not exist.
func (t *Target) groupID(ctx context.Context, subject, name string, create bool) (string, error) {
	if id := t.cachedGroup(name); id != "" {
		return id, nil
	}
	l := t.groupLock(name)
	l.Lock()
	defer l.Unlock()
	if id := t.cachedGroup(name); id != "" {
		return id, nil
	}
	m, ok, err := t.findOne(ctx, subject, "/Groups", "displayName", name)
	if err != nil {
		return "", err
	}
	if ok {
		t.cacheGroup(name, str(get(m, "id")))
		return str(get(m, "id")), nil
	}
	if !create {
		return "", nil
	}
	var created map[string]any
	_, err = t.send(ctx, fmt.Sprintf("%s: create group %q", subject, name), req{method: http.MethodPost, path: "/Groups",
		body: map[string]any{"schemas": []string{SchemaGroup}, "displayName": name}}, &created)
	if statusOf(err) == http.StatusConflict {
		m, ok, ferr := t.findOne(ctx, subject, "/Groups", "displayName", name)
		if ferr != nil {
			return "", ferr
		}
		if !ok {
			return "", err
		}
		created = m
	} else if err != nil {
		return "", err
	}
	id := str(get(created, "id"))
	if id == "" {
		return "", connector.Permanent(fmt.Errorf("%s: create group %q: the provider returned no id", subject, name))
	}
	t.log.Info("created scim group", zap.String("group", name), zap.String("id", id))
	t.cacheGroup(name, id)
	return id, nil
}

// setGroups makes the user's group membership exactly a.Groups: add to the
// groups in a.Groups but not in the current ones, remove from the others.
// The current groups are before.Groups, or read from the provider when the
// cache shows none (a new or adopted account) or an action was pending.
func (t *Target) setGroups(ctx context.Context, before identity.Account, a *identity.Account) error {
	subject := subjectOf("set groups", a)
	if err := t.inheritRemote(ctx, subject, before, a); err != nil {
		return err
	}
	return t.onUser(ctx, subject, a, func(uid string) error {
		cur := before.Groups
		if len(cur) == 0 || before.Pending != "" {
			var res map[string]any
			if _, err := t.send(ctx, subject, req{method: http.MethodGet, path: "/Users/" + url.PathEscape(uid)}, &res); err != nil {
				return err
			}
			var err error
			if cur, err = t.userGroups(ctx, subject, res); err != nil {
				return err
			}
		}
		want := identity.SortedSet(a.Groups)
		have := identity.SortedSet(cur)
		for _, g := range want {
			if slices.Contains(have, g) {
				continue
			}
			if err := t.member(ctx, subject, g, uid, true); err != nil {
				return err
			}
		}
		for _, g := range have {
			if slices.Contains(want, g) {
				continue
			}
			if err := t.member(ctx, subject, g, uid, false); err != nil {
				return err
			}
		}
		return nil
	})
}

// member adds uid to (or removes it from) the group named name. A cached
// group id that went stale (404) is looked up again once.
func (t *Target) member(ctx context.Context, subject, name, uid string, add bool) error {
	for attempt := 0; ; attempt++ {
		gid, err := t.groupID(ctx, subject, name, add)
		if err != nil {
			return err
		}
		if gid == "" {
			return nil // removing from a group that does not exist: done
		}
		verb := "remove from"
		o := op{Op: "remove", Path: "members[value eq " + quote(uid) + "]"}
		if add {
			verb = "add to"
			o = op{Op: "add", Path: "members", Value: []any{map[string]any{"value": uid}}}
		}
		err = t.modify(ctx, fmt.Sprintf("%s: %s group %q", subject, verb, name), "/Groups/"+url.PathEscape(gid), []op{o})
		if statusOf(err) == http.StatusNotFound && attempt == 0 {
			t.cacheGroup(name, "")
			continue
		}
		return err
	}
}

// userGroups returns the displayNames of the groups the user resource res
// belongs to: from its read-only "groups" attribute when the provider fills
// it, else by a `members.value eq` query on Groups, else (for providers
// that cannot filter on members) by scanning every group.
func (t *Target) userGroups(ctx context.Context, subject string, res map[string]any) ([]string, error) {
	uid := str(get(res, "id"))
	if gs, ok := res[keyOf(res, "groups")]; ok {
		var names []string
		for _, g := range arr(gs) {
			m := obj(g)
			name := str(get(m, "display"))
			gid := str(get(m, "value"))
			if name == "" && gid != "" {
				var gr map[string]any
				if _, err := t.send(ctx, subject, req{method: http.MethodGet, path: "/Groups/" + url.PathEscape(gid), query: url.Values{"excludedAttributes": {"members"}}}, &gr); err != nil {
					return nil, err
				}
				name = str(get(gr, "displayName"))
			}
			if name != "" {
				t.cacheGroup(name, gid)
				names = append(names, name)
			}
		}
		return identity.SortedSet(names), nil
	}
	t.mu.Lock()
	noQuery := t.noMemberQuery
	t.mu.Unlock()
	if !noQuery {
		var names []string
		q := url.Values{"filter": {eqFilter("members.value", uid)}, "attributes": {"displayName"}}
		err := t.list(ctx, subject+": groups", "/Groups", q, func(m map[string]any) error {
			t.cacheGroup(str(get(m, "displayName")), str(get(m, "id")))
			names = append(names, str(get(m, "displayName")))
			return nil
		})
		if err == nil {
			return identity.SortedSet(names), nil
		}
		if statusOf(err) != http.StatusBadRequest && statusOf(err) != http.StatusNotImplemented && statusOf(err) != http.StatusForbidden {
			return nil, err
		}
		t.log.Info("the provider cannot filter groups by member; scanning groups instead", zap.String("error", err.Error()))
		t.mu.Lock()
		t.noMemberQuery = true
		t.mu.Unlock()
	}
	all, err := t.memberships(ctx, subject)
	if err != nil {
		return nil, err
	}
	return all[uid], nil
}

// memberships scans every group and returns user id → group names.
func (t *Target) memberships(ctx context.Context, subject string) (map[string][]string, error) {
	out := map[string][]string{}
	err := t.list(ctx, subject+": groups", "/Groups", nil, func(m map[string]any) error {
		name := str(get(m, "displayName"))
		t.cacheGroup(name, str(get(m, "id")))
		for _, mem := range arr(get(m, "members")) {
			if v := str(get(obj(mem), "value")); v != "" {
				out[v] = append(out[v], name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k, v := range out {
		out[k] = identity.SortedSet(v)
	}
	return out, nil
}
