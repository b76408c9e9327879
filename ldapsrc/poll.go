package ldapsrc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/ldapsrc/internal/wire"
	"github.com/dirsync/dirsync/source"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// poll runs one polling mode every poll_interval until ctx ends.
func (ss *session) poll(ctx context.Context, mode string, emit func(source.Change)) error {
	t := time.NewTicker(ss.s.pollEvery(mode))
	defer t.Stop()
	m := newMapper(ss.s.name, ss.p, ss.s.s.Users.ExtraAttributes, ss.s.s.Users.Lockout == lockoutInactive)
	for {
		var err error
		// The index can tell what a group change changed once a poll has
		// stored a cursor newer than it (changes from before the index
		// have no "before").
		ss.ixTrusted = ss.ix != nil && ss.ix.built && ss.ix.polled
		switch mode {
		case IncUSN:
			err = ss.pollUSN(ctx, m, emit)
		case IncDirSync:
			err = ss.pollDirSync(ctx, m, emit)
		default:
			err = ss.pollTimestamp(ctx, m, emit)
		}
		if err == nil && ss.ix != nil {
			ss.ix.mu.Lock()
			ss.ix.polled = ss.ix.built
			ss.ix.mu.Unlock()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		ss.s.hook("poll")
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// collect runs a paged search and maps every entry to a pending user.
func (ss *session) collect(ctx context.Context, m *mapper, what string, req wire.SearchRequest, each func(e *wire.Entry) bool) ([]pendingUser, error) {
	r := &reader{src: ss.s, p: ss.p}
	var out []pendingUser
	err := r.paged(ctx, ss.c, what, req, ss.s.s.PageSize, func(e *wire.Entry) error {
		if each != nil && !each(e) {
			return nil
		}
		p, err := ss.pending(m, e)
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// count returns how many entries a search finds (no attributes read).
func (ss *session) count(ctx context.Context, base string, scope int, filter string, controls ...wire.Control) (int, error) {
	r := &reader{src: ss.s, p: ss.p}
	n := 0
	req := wire.SearchRequest{BaseDN: base, Scope: wire.Scope(scope), Filter: filter, Attributes: []string{"1.1"}, Controls: controls}
	err := r.paged(ctx, ss.c, "groups", req, ss.s.s.Groups.PageSize, func(*wire.Entry) error { n++; return nil })
	return n, err
}

// ---- Active Directory: uSNChanged on one domain controller ----

// usnCursor pins USN polling to one domain controller: USNs are local to a
// DC, and a restored DC gets a new invocationId.
type usnCursor struct {
	DSA          string `json:"dsa"`
	InvocationID string `json:"invocation_id"`
	USN          int64  `json:"usn"`
}

func (ss *session) readUSN(ctx context.Context) (usnCursor, *rootDSE, error) {
	dse, err := readRootDSE(ctx, ss.c)
	if err != nil {
		return usnCursor{}, nil, err
	}
	if dse.dsServiceName == "" {
		return usnCursor{}, nil, errors.New("usn: the root DSE has no dsServiceName (not Active Directory?)")
	}
	cur := usnCursor{DSA: dse.dsServiceName, USN: dse.highestUSN}
	_, err = ss.c.Search(ctx, &wire.SearchRequest{BaseDN: dse.dsServiceName, Scope: wire.ScopeBase, Filter: "(objectClass=*)",
		Attributes: []string{"invocationId"}}, wire.Handlers{Entry: func(e *wire.Entry) error {
		if v := e.First("invocationId"); len(v) == 16 {
			cur.InvocationID = formatGUID(v)
		}
		return nil
	}})
	if err != nil {
		return usnCursor{}, nil, fmt.Errorf("usn: read invocationId: %w", err)
	}
	return cur, dse, nil
}

func (ss *session) pollUSN(ctx context.Context, m *mapper, emit func(source.Change)) error {
	now, dse, err := ss.readUSN(ctx)
	if err != nil {
		return err
	}
	raw, err := ss.s.loadCursor(ctx, "usn")
	if err != nil {
		return err
	}
	save := func() error {
		b, _ := json.Marshal(now)
		return ss.s.saveCursor(ctx, "usn", b)
	}
	if raw == nil {
		return save()
	}
	var cur usnCursor
	if err := json.Unmarshal(raw, &cur); err != nil {
		ss.s.log.Warn("ldap: unreadable USN cursor: starting over", zap.Error(err))
		return save()
	}
	switch {
	case cur.DSA != now.DSA:
		emit(source.Change{Full: true, Reason: fmt.Sprintf("usn: reading from domain controller %q instead of %q", now.DSA, cur.DSA)})
		return save()
	case cur.InvocationID != now.InvocationID:
		emit(source.Change{Full: true, Reason: fmt.Sprintf("usn: domain controller %q has a new invocationId (restored?)", now.DSA)})
		return save()
	case now.USN < cur.USN:
		emit(source.Change{Full: true, Reason: fmt.Sprintf("usn: highestCommittedUSN went back from %d to %d (restored?)", cur.USN, now.USN)})
		return save()
	case now.USN == cur.USN:
		return nil
	}
	if err := ss.ensureIndex(ctx); err != nil {
		return err
	}
	ch, err := ss.usnChanges(ctx, m, cur.USN, dse.defaultNC)
	if err != nil {
		return err
	}
	if ch.Full || len(ch.Upserts)+len(ch.Deletes)+len(ch.GroupChanges) > 0 {
		if !ch.Full {
			ch.Reason = fmt.Sprintf("usn: %d users changed, %d deleted, %d groups changed since USN %d on %s",
				len(ch.Upserts), len(ch.Deletes), len(ch.GroupChanges), cur.USN, now.DSA)
		}
		emit(ch)
	}
	return save()
}

// usnChanges reads what changed after USN from: users (complete records),
// deleted users (through the Show Deleted control) and groups (resolved to
// their members' changes through the member index, else a full pull).
func (ss *session) usnChanges(ctx context.Context, m *mapper, from int64, nc string) (source.Change, error) {
	var ch source.Change
	since := "(uSNChanged>=" + strconv.FormatInt(from+1, 10) + ")"
	r := &reader{src: ss.s, p: ss.p}
	if !ss.s.s.Groups.Disabled {
		var refs []groupRef
		req := wire.SearchRequest{BaseDN: ss.p.groupBase, Scope: wire.Scope(ss.p.groupScope), Filter: "(&" + ss.p.groupFilter + since + ")", Attributes: []string{"objectGUID"}}
		err := r.paged(ctx, ss.c, "groups", req, ss.s.s.Groups.PageSize, func(e *wire.Entry) error {
			refs = append(refs, groupRef{base: string(e.DN)})
			return nil
		})
		if err != nil {
			return ch, err
		}
		delReq := wire.SearchRequest{BaseDN: nc, Scope: wire.ScopeSub, Filter: "(&(objectClass=group)(isDeleted=TRUE)" + since + ")",
			Attributes: []string{"objectGUID"}, Controls: []wire.Control{wire.ShowDeleted()}}
		err = r.paged(ctx, ss.c, "deleted groups", delReq, ss.s.s.Groups.PageSize, func(e *wire.Entry) error {
			if g := e.First("objectGUID"); len(g) == 16 {
				refs = append(refs, groupRef{key: formatGUID(g), deleted: true})
			}
			return nil
		})
		if err != nil {
			return ch, err
		}
		if len(refs) > 0 {
			ix := ss.ix
			if ix != nil && from < ix.usn {
				ix = nil // changes from before the index was read: no "before"
			}
			gc, ok, err := ss.groupChanges(ctx, ix, m, refs)
			if err != nil {
				return ch, err
			}
			if !ok {
				return source.Change{Full: true, Reason: fmt.Sprintf("usn: %d groups changed since USN %d", len(refs), from)}, nil
			}
			ch = gc
		}
	}
	ps, err := ss.collect(ctx, m, "users", wire.SearchRequest{BaseDN: ss.p.userBase, Scope: wire.Scope(ss.p.userScope),
		Filter: "(&" + ss.p.userFilter + since + ")", Attributes: ss.userAttrs(m)}, nil)
	if err != nil {
		return ch, err
	}
	// Deleted users, through the Show Deleted control.
	full := false
	delReq := wire.SearchRequest{BaseDN: nc, Scope: wire.ScopeSub, Filter: "(&(objectClass=user)(isDeleted=TRUE)" + since + ")",
		Attributes: []string{ss.p.m.Key}, Controls: []wire.Control{wire.ShowDeleted()}}
	err = r.paged(ctx, ss.c, "deleted users", delReq, ss.s.s.PageSize, func(e *wire.Entry) error {
		if k := e.First(ss.p.m.Key); k != nil {
			ch.Deletes = append(ch.Deletes, formatKey(k, true))
		} else {
			full = true
		}
		return nil
	})
	if err != nil {
		return ch, err
	}
	if full {
		return source.Change{Full: true, Reason: fmt.Sprintf("usn: users deleted since USN %d whose key %s is gone", from, ss.p.m.Key)}, nil
	}
	users, err := ss.complete(ctx, ss.c, ps)
	if err != nil {
		return ch, err
	}
	merge(&ch, source.Change{Upserts: users})
	return ch, nil
}

// ---- Active Directory: DirSync ----

func (ss *session) pollDirSync(ctx context.Context, m *mapper, emit func(source.Change)) error {
	cookie, err := ss.s.loadCursor(ctx, "dirsync")
	if err != nil {
		return err
	}
	baseline := cookie == nil
	attrs := append(ss.userAttrs(m), "isDeleted", "objectClass", "member", ss.s.s.Groups.NameAttribute)
	var changed [][]byte // objectGUIDs to re-read
	var deletes []string
	var refs []groupRef // changed and deleted groups
	full := false
	for {
		var more bool
		req := &wire.SearchRequest{BaseDN: ss.dse.defaultNC, Scope: wire.ScopeSub,
			Filter:     "(|(objectClass=user)(objectClass=group))",
			Attributes: attrs, Controls: []wire.Control{wire.DirSync(wire.DirSyncObjectSecurity, wire.DirSyncDefaultMaxBytes, cookie)}}
		d, err := ss.c.Search(ctx, req, wire.Handlers{
			Entry: func(e *wire.Entry) error {
				if baseline {
					return nil
				}
				guid := e.First("objectGUID")
				if len(guid) != 16 {
					return nil
				}
				if strings.EqualFold(string(e.First("isDeleted")), "TRUE") {
					isGroup := slices.ContainsFunc(e.Get("objectClass"), func(v []byte) bool { return strings.EqualFold(string(v), "group") })
					if isGroup || ss.ix.hasKey(formatGUID(guid)) {
						refs = append(refs, groupRef{key: formatGUID(guid), deleted: true})
						return nil
					}
					if strings.EqualFold(ss.p.m.Key, "objectGUID") {
						deletes = append(deletes, formatGUID(guid))
					} else {
						full = true
					}
					return nil
				}
				changed = append(changed, append([]byte(nil), guid...))
				return nil
			},
			Reference: (&reader{src: ss.s, p: ss.p}).references(),
		})
		if err != nil {
			return fmt.Errorf("dirsync: %w", err)
		}
		more, ck, err := wire.DirSyncResponse(d)
		if err != nil {
			return fmt.Errorf("dirsync: %w", err)
		}
		cookie = append([]byte(nil), ck...)
		if !more {
			break
		}
	}
	if !baseline {
		var ps []pendingUser
		for _, g := range changed {
			base := "<GUID=" + formatGUID(g) + ">"
			got, err := ss.collect(ctx, m, "users", wire.SearchRequest{BaseDN: base, Scope: wire.ScopeBase, Filter: ss.p.userFilter, Attributes: ss.userAttrs(m)},
				func(e *wire.Entry) bool { return under(e.DN, ss.p.userBase) })
			if err != nil && !wire.IsCode(err, wire.ResultNoSuchObject) {
				return err
			}
			if len(got) > 0 {
				ps = append(ps, got...)
				continue
			}
			if ss.s.s.Groups.Disabled {
				continue
			}
			r := &reader{src: ss.s, p: ss.p}
			err = r.paged(ctx, ss.c, "groups", wire.SearchRequest{BaseDN: base, Scope: wire.ScopeBase, Filter: ss.p.groupFilter, Attributes: []string{"1.1"}},
				ss.s.s.Groups.PageSize, func(e *wire.Entry) error {
					if under(e.DN, ss.p.groupBase) {
						refs = append(refs, groupRef{base: base, key: formatGUID(g)})
					}
					return nil
				})
			if err != nil && !wire.IsCode(err, wire.ResultNoSuchObject) {
				return err
			}
		}
		if ss.s.s.Groups.Disabled {
			refs = nil
		}
		ch, ok, err := ss.polledGroups(ctx, m, refs)
		if err != nil {
			return err
		}
		switch {
		case full || !ok:
			emit(source.Change{Full: true, Reason: fmt.Sprintf("dirsync: %d groups changed", len(refs))})
		case len(ps) > 0 || len(deletes) > 0 || len(ch.GroupChanges) > 0:
			users, err := ss.complete(ctx, ss.c, ps)
			if err != nil {
				return err
			}
			merge(&ch, source.Change{Upserts: users, Deletes: deletes})
			ch.Reason = fmt.Sprintf("dirsync: %d users changed, %d deleted, %d groups changed", len(ch.Upserts), len(ch.Deletes), len(ch.GroupChanges))
			emit(ch)
		}
	}
	return ss.s.saveCursor(ctx, "dirsync", cookie)
}

// polledGroups resolves groups a poll found changed through the member
// index; ok is false when it cannot (the caller asks for a full pull).
func (ss *session) polledGroups(ctx context.Context, m *mapper, refs []groupRef) (source.Change, bool, error) {
	if len(refs) == 0 {
		return source.Change{}, true, nil
	}
	if !ss.ixTrusted {
		return source.Change{}, false, nil
	}
	return ss.groupChanges(ctx, ss.ix, m, refs)
}

// under reports whether dn is base or below it.
func under(dn []byte, base string) bool {
	d := appendNormDN(nil, dn)
	b := []byte(normDN(base))
	return bytes.Equal(d, b) || bytes.HasSuffix(d, append([]byte{','}, b...))
}

// ---- modifyTimestamp polling (any LDAP server) ----

// tsCursor is the newest modifyTimestamp seen and the entry versions seen
// at it (so the ">=" query does not report them again, while a second
// change within the same second, which modifyTimestamp cannot tell apart,
// still is).
type tsCursor struct {
	TS   string   `json:"ts"`
	Keys []string `json:"keys,omitempty"`
}

const genTime = "20060102150405Z"

func (ss *session) pollTimestamp(ctx context.Context, m *mapper, emit func(source.Change)) error {
	raw, err := ss.s.loadCursor(ctx, "modify_timestamp")
	if err != nil {
		return err
	}
	var cur tsCursor
	if raw != nil {
		if err := json.Unmarshal(raw, &cur); err != nil {
			ss.s.log.Warn("ldap: unreadable modifyTimestamp cursor: starting over", zap.Error(err))
			raw = nil
		}
	}
	save := func(c tsCursor) error {
		b, _ := json.Marshal(c)
		return ss.s.saveCursor(ctx, "modify_timestamp", b)
	}
	// The first poll only records where to start: what it finds already
	// happened (the full pull is the reference).
	baseline := raw == nil
	if baseline {
		cur = tsCursor{TS: ss.s.now().UTC().Format(genTime)}
	}
	seen := map[string]bool{}
	for _, k := range cur.Keys {
		seen[k] = true
	}
	next := tsCursor{TS: cur.TS}
	track := func(ts, key string) bool {
		if ts == cur.TS && seen[key] {
			return false
		}
		switch {
		case ts > next.TS:
			next.TS, next.Keys = ts, []string{key}
		case ts == next.TS:
			next.Keys = append(next.Keys, key)
		}
		return true
	}
	since := "(modifyTimestamp>=" + ldap.EscapeFilter(cur.TS) + ")"
	var refs []groupRef
	if !ss.s.s.Groups.Disabled {
		r := &reader{src: ss.s, p: ss.p}
		req := wire.SearchRequest{BaseDN: ss.p.groupBase, Scope: wire.Scope(ss.p.groupScope), Filter: "(&" + ss.p.groupFilter + since + ")",
			Attributes: append(r.groupAttrs(0), "modifyTimestamp")}
		err := r.paged(ctx, ss.c, "groups", req, ss.s.s.Groups.PageSize, func(e *wire.Entry) error {
			if track(string(e.First("modifyTimestamp")), "group:"+entryVersion(e)) {
				refs = append(refs, groupRef{base: string(e.DN)})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	attrs := append(ss.userAttrs(m), "modifyTimestamp")
	ps, err := ss.collect(ctx, m, "users", wire.SearchRequest{BaseDN: ss.p.userBase, Scope: wire.Scope(ss.p.userScope),
		Filter: "(&" + ss.p.userFilter + since + ")", Attributes: attrs}, func(e *wire.Entry) bool {
		return track(string(e.First("modifyTimestamp")), entryVersion(e))
	})
	if err != nil {
		return err
	}
	var ch source.Change
	ok := true
	if !baseline {
		if ch, ok, err = ss.polledGroups(ctx, m, refs); err != nil {
			return err
		}
	}
	switch {
	case baseline:
	case !ok:
		emit(source.Change{Full: true, Reason: fmt.Sprintf("modify_timestamp: %d groups changed since %s", len(refs), cur.TS)})
	case len(ps) > 0 || len(ch.GroupChanges) > 0:
		users, err := ss.complete(ctx, ss.c, ps)
		if err != nil {
			return err
		}
		merge(&ch, source.Change{Upserts: users})
		ch.Reason = fmt.Sprintf("modify_timestamp: %d users changed, %d groups changed since %s", len(ch.Upserts), len(ch.GroupChanges), cur.TS)
		emit(ch)
	}
	if next.TS == cur.TS {
		next.Keys = append(next.Keys, cur.Keys...)
		next.Keys = identity.SortedSet(next.Keys)
	}
	return save(next)
}

// entryVersion identifies an entry's content: its DN and a hash of its
// attributes.
func entryVersion(e *wire.Entry) string {
	h := fnv.New64a()
	for _, a := range e.Attrs {
		h.Write(a.Name)
		for _, v := range a.Vals {
			h.Write([]byte{0})
			h.Write(v)
		}
		h.Write([]byte{1})
	}
	return fmt.Sprintf("%s@%016x", e.DN, h.Sum64())
}
