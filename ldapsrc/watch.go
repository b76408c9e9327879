package ldapsrc

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/ldapsrc/internal/wire"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// Watch reports changes between full pulls until ctx ends: syncrepl on
// OpenLDAP, change notifications, uSNChanged polling (or DirSync) on Active Directory,
// modifyTimestamp polling elsewhere, as configured. Cursors are kept
// through Options.Cursors so a restart resumes where it stopped. Network
// failures are retried with a growing delay; Watch returns nil when ctx
// ends and an error for failures a redial cannot fix.
func (s *Source) Watch(ctx context.Context, notify func(source.Change)) error {
	if s.s.Inc.Mode == IncNone {
		// Full pulls only: the daemon re-reads the source on its
		// incremental interval instead.
		return source.ErrWatchUnsupported
	}
	var mu sync.Mutex
	emit := func(ch source.Change) {
		mu.Lock()
		defer mu.Unlock()
		for i := range ch.Upserts {
			if ch.Upserts[i].Source == "" {
				ch.Upserts[i].Source = s.name
			}
		}
		s.log.Info("ldap: change", zap.String("reason", ch.Reason), zap.Int("upserts", len(ch.Upserts)),
			zap.Int("deletes", len(ch.Deletes)), zap.Bool("full", ch.Full))
		notify(ch)
	}
	// The member index outlives reconnects: a catch-up after one diffs
	// groups against what was known before it.
	var ix *memberIndex
	if !s.s.Groups.Disabled {
		ix = &memberIndex{}
	}
	delay := time.Second
	noNotify := false
	for {
		started := s.now()
		err := s.watchOnce(ctx, ix, noNotify, emit)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errNotifyRefused) && s.s.Inc.Mode == IncAuto && !noNotify {
			// Advertised but refused (rights, limits): auto falls back to
			// USN polling for the rest of this Watch.
			s.log.Warn("ldap: change notifications refused: polling uSNChanged instead", zap.Error(err))
			noNotify = true
			continue
		}
		if !wire.IsNetwork(err) {
			return fmt.Errorf("ldapsrc: %s: watch: %w", s.name, err)
		}
		s.watchHealth(fmt.Errorf("ldapsrc: %s: watch: %w", s.name, err))
		if s.now().Sub(started) > time.Minute {
			delay = time.Second
		}
		s.log.Warn("ldap: watch connection failed: redialing", zap.Error(err), zap.Duration("in", delay))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// session is an open, bound connection with the server's profile.
type session struct {
	s   *Source
	c   *wire.Conn
	url string
	dse *rootDSE
	p   profile
	ix  *memberIndex // nil when groups are disabled
	// ixTrusted: the index predates the cursor of the running poll.
	ixTrusted bool
}

func (s *Source) open(ctx context.Context) (*session, error) {
	c, u, err := s.connect(ctx, s.s.URLs)
	if err != nil {
		return nil, err
	}
	dse, err := readRootDSE(ctx, c)
	if err != nil {
		c.Close()
		return nil, err
	}
	p, err := s.profile(dse)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &session{s: s, c: c, url: u, dse: dse, p: p}, nil
}

// mode resolves the incremental mode for the server's flavour: auto is
// notify on an Active Directory whose root DSE lists the change
// notification control, usn on one that does not, syncrepl elsewhere.
func (s *Source) mode(p profile, d *rootDSE) string {
	m := s.s.Inc.Mode
	if m == IncAuto {
		if p.flavour == FlavourActiveDirectory {
			if d.controls[wire.OIDNotification] {
				return IncNotify
			}
			return IncUSN
		}
		return IncSyncrepl
	}
	return m
}

// pollEvery is the polling interval of mode: poll_interval when set, else
// the mode's default (the safety-net poll for notify).
func (s *Source) pollEvery(mode string) time.Duration {
	if d := s.s.Inc.PollInterval.D(); d > 0 {
		return d
	}
	switch mode {
	case IncNotify:
		return defaultNotifyPoll
	case IncUSN:
		return defaultUSNPoll
	}
	return defaultPollEvery
}

func (s *Source) watchOnce(ctx context.Context, ix *memberIndex, noNotify bool, emit func(source.Change)) error {
	ss, err := s.open(ctx)
	if err != nil {
		return err
	}
	defer ss.c.Close()
	s.watchHealth(nil)
	mode := s.mode(ss.p, ss.dse)
	if mode == IncNotify && noNotify {
		mode = IncUSN
	}
	s.hook("mode:" + mode)
	if ix != nil && mode != IncNone {
		ss.ix = ix
		if !ix.built {
			if err := ix.build(ctx, ss, ss.dse.highestUSN); err != nil {
				return err
			}
		}
	}
	switch mode {
	case IncSyncrepl:
		return ss.syncrepl(ctx, emit)
	case IncNotify:
		if ss.p.flavour != FlavourActiveDirectory {
			return errors.New("incremental.mode notify needs Active Directory, and this server is not one")
		}
		return ss.notify(ctx, emit)
	case IncUSN, IncDirSync, IncModifyTimestamp:
		return ss.poll(ctx, mode, emit)
	default:
		s.hook("ready")
		<-ctx.Done()
		return nil
	}
}

// watchHealth reports a connection's outcome to Options.WatchHealth.
func (s *Source) watchHealth(err error) {
	if s.health != nil {
		s.health(err)
	}
}

// hook reports a watch milestone to tests.
func (s *Source) hook(event string) {
	if s.watchHook != nil {
		s.watchHook(event)
	}
}

func (s *Source) cursorName(kind string) string { return "ldap/" + s.name + "/" + kind }

func (s *Source) loadCursor(ctx context.Context, kind string) ([]byte, error) {
	if s.cursors == nil {
		return nil, nil
	}
	v, err := s.cursors.Cursor(ctx, s.cursorName(kind))
	if errors.Is(err, state.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cursor %s: %w", kind, err)
	}
	return v, nil
}

func (s *Source) saveCursor(ctx context.Context, kind string, v []byte) error {
	if s.cursors == nil {
		return nil
	}
	if err := s.cursors.PutCursor(ctx, s.cursorName(kind), v); err != nil {
		return fmt.Errorf("save cursor %s: %w", kind, err)
	}
	return nil
}

// pendingUser is a changed user read from an entry, before its groups are
// looked up (which needs the connection the entry arrived on to be free).
type pendingUser struct {
	u   identity.User
	dn  string // as returned
	sid []byte // AD objectSid
	pg  uint32 // AD primaryGroupID
}

func (ss *session) userAttrs(m *mapper) []string {
	attrs := append([]string(nil), m.attrs...)
	if ss.p.flavour == FlavourActiveDirectory {
		attrs = append(attrs, "objectSid")
	}
	return attrs
}

func (ss *session) pending(m *mapper, e *wire.Entry) (pendingUser, error) {
	u, err := m.user(e)
	if err != nil {
		return pendingUser{}, err
	}
	pu := pendingUser{u: u, dn: string(e.DN)}
	if ss.p.flavour == FlavourActiveDirectory {
		pu.pg = m.primaryGroup()
		if sid := e.First("objectSid"); sid != nil {
			pu.sid = append([]byte(nil), sid...)
		}
	}
	return pu, nil
}

// complete looks up the (nested) groups of changed users on c.
func (ss *session) complete(ctx context.Context, c *wire.Conn, ps []pendingUser) ([]identity.User, error) {
	out := make([]identity.User, 0, len(ps))
	for _, p := range ps {
		if !ss.s.s.Groups.Disabled {
			gs, err := ss.userGroups(ctx, c, p)
			if err != nil {
				return nil, err
			}
			p.u.Groups = identity.SortedSet(gs)
		}
		out = append(out, p.u)
	}
	return out, nil
}

// userGroups finds the names of the groups a user belongs to, directly or
// through nested groups (with cycle detection).
func (ss *session) userGroups(ctx context.Context, c *wire.Conn, p pendingUser) ([]string, error) {
	nameAttr := ss.s.s.Groups.NameAttribute
	ad := ss.p.flavour == FlavourActiveDirectory
	search := func(filter string, fn func(dn, name string)) error {
		req := wire.SearchRequest{BaseDN: ss.p.groupBase, Scope: wire.Scope(ss.p.groupScope),
			Filter: "(&" + ss.p.groupFilter + filter + ")", Attributes: []string{nameAttr}}
		r := &reader{src: ss.s, p: ss.p}
		return r.paged(ctx, c, "groups", req, ss.s.s.Groups.PageSize, func(e *wire.Entry) error {
			fn(string(e.DN), string(e.First(nameAttr)))
			return nil
		})
	}
	var names []string
	seen := map[string]bool{}
	var queue []string
	add := func(dn, name string) {
		if k := normDN(dn); !seen[k] {
			seen[k] = true
			names = append(names, name)
			queue = append(queue, dn)
		}
	}
	dn := ldap.EscapeFilter(p.dn)
	nested := ss.s.s.Groups.Nested != nestedNone
	if ad {
		// Active Directory answers the whole chain in one query.
		rule := "member="
		if nested {
			rule = "member:" + oidInChain + ":="
		}
		if err := search("("+rule+dn+")", add); err != nil {
			return nil, err
		}
		if p.pg != 0 && len(p.sid) > 8 {
			// The primary group: the user's domain SID with primaryGroupID
			// as its RID; it is not in the group's member list.
			gsid := append(append([]byte(nil), p.sid[:len(p.sid)-4]...), byte(p.pg), byte(p.pg>>8), byte(p.pg>>16), byte(p.pg>>24))
			var pgDN string
			if err := search("(objectSid="+escapeBytes(gsid)+")", func(d, n string) { pgDN = d; add(d, n) }); err != nil {
				return nil, err
			}
			if pgDN != "" {
				if err := search("("+rule+ldap.EscapeFilter(pgDN)+")", add); err != nil {
					return nil, err
				}
			}
		}
		return names, nil
	}
	direct := "(|(member=" + dn + ")(uniqueMember=" + dn + ")"
	if p.u.Username != "" {
		direct += "(memberUid=" + ldap.EscapeFilter(p.u.Username) + ")"
	}
	direct += ")"
	if err := search(direct, add); err != nil {
		return nil, err
	}
	for nested && len(queue) > 0 {
		g := ldap.EscapeFilter(queue[0])
		queue = queue[1:]
		if err := search("(|(member="+g+")(uniqueMember="+g+"))", add); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// escapeBytes escapes every byte of a binary filter value (\xx).
func escapeBytes(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte('\\')
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

// ---- RFC 4533 syncrepl (OpenLDAP) ----

// syncrepl runs two refreshAndPersist searches (users and groups) until
// one fails or ctx ends. User changes are reported as upserts and deletes;
// any group change asks for a full pull (a membership change touches users
// whose old groups are unknown here).
func (ss *session) syncrepl(ctx context.Context, emit func(source.Change)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A second connection for group lookups while the users' search streams.
	q, err := ss.s.dialOne(ctx, ss.url)
	if err != nil {
		return err
	}
	defer q.Close()
	var g *wire.Conn
	if !ss.s.s.Groups.Disabled {
		if g, err = ss.s.dialOne(ctx, ss.url); err != nil {
			return err
		}
		defer g.Close()
	}
	m := newMapper(ss.s.name, ss.p, ss.s.s.Users.ExtraAttributes, ss.s.s.Users.Lockout == lockoutInactive)
	users := &syncStream{ss: ss, kind: "syncrepl-users", conn: ss.c, base: ss.p.userBase, scope: ss.p.userScope,
		filter: ss.p.userFilter, attrs: ss.userAttrs(m), emit: emit}
	users.onEntry = func(ctx context.Context, state int, uuid []byte, e *wire.Entry) (*source.Change, error) {
		switch state {
		case wire.SyncAdd, wire.SyncModify:
			p, err := ss.pending(m, e)
			if err != nil {
				return nil, err
			}
			us, err := ss.complete(ctx, q, []pendingUser{p})
			if err != nil {
				return nil, err
			}
			return &source.Change{Upserts: us, Reason: fmt.Sprintf("syncrepl: %s %s", stateName(state), e.DN)}, nil
		case wire.SyncDelete:
			return users.deleteChange([][]byte{uuid}), nil
		}
		return nil, nil
	}
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs <- users.run(ctx) }()
	if g != nil {
		// Group changes are diffed with the member index on their own
		// connection (the users' stream uses q at the same time).
		gq, err := ss.s.dialOne(ctx, ss.url)
		if err != nil {
			return err
		}
		defer gq.Close()
		gs := *ss
		gs.c = gq
		groups := &syncStream{ss: ss, kind: "syncrepl-groups", conn: g, base: ss.p.groupBase, scope: ss.p.groupScope,
			filter: ss.p.groupFilter, attrs: []string{"1.1"}, emit: emit, groupsOnly: true}
		diff := func(ctx context.Context, refs []groupRef, what string) (*source.Change, error) {
			if !groups.refreshed {
				// Changes from before this connection's index: no "before".
				return &source.Change{Full: true, Reason: "syncrepl: " + what}, nil
			}
			if err := gs.ensureIndex(ctx); err != nil {
				return nil, err
			}
			ch, ok, err := gs.groupChanges(ctx, gs.ix, m, refs)
			if err != nil {
				return nil, err
			}
			if !ok {
				return &source.Change{Full: true, Reason: "syncrepl: " + what + " (not resolvable to members)"}, nil
			}
			if len(ch.GroupChanges) == 0 && len(ch.Upserts) == 0 {
				return nil, nil
			}
			ch.Reason = fmt.Sprintf("syncrepl: %s: %d users' groups changed", what, len(ch.Upserts))
			return &ch, nil
		}
		groups.onEntry = func(ctx context.Context, state int, uuid []byte, e *wire.Entry) (*source.Change, error) {
			if state == wire.SyncPresent {
				return nil, nil
			}
			return diff(ctx, []groupRef{{base: string(e.DN), key: formatUUID(uuid)}}, fmt.Sprintf("group %s %s", e.DN, stateName(state)))
		}
		if strings.EqualFold(ss.p.m.Key, "entryUUID") {
			groups.groupsDeleted = func(ctx context.Context, keys []string) (*source.Change, error) {
				var refs []groupRef
				for _, k := range keys {
					refs = append(refs, groupRef{key: k, deleted: true})
				}
				return diff(ctx, refs, fmt.Sprintf("%d groups deleted", len(keys)))
			}
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs <- groups.run(ctx) }()
	}
	err = <-errs
	cancel()
	wg.Wait()
	return err
}

func stateName(s int) string {
	switch s {
	case wire.SyncAdd:
		return "added"
	case wire.SyncModify:
		return "modified"
	case wire.SyncDelete:
		return "deleted"
	}
	return "present"
}

// syncStream is one refreshAndPersist search and its cookie.
type syncStream struct {
	ss         *session
	kind       string
	conn       *wire.Conn
	base       string
	scope      int
	filter     string
	attrs      []string
	emit       func(source.Change)
	groupsOnly bool
	onEntry    func(ctx context.Context, state int, uuid []byte, e *wire.Entry) (*source.Change, error)
	// groupsDeleted, when set, reports known groups deleted (after the
	// refresh phase); without it a deletion asks for a full pull.
	groupsDeleted func(ctx context.Context, keys []string) (*source.Change, error)
	// refreshed is set once this connection's refresh phase is over.
	refreshed bool
	cur       syncCursor
}

// syncCursor is what a stream keeps between runs: the cookie and, for the
// groups stream, the entryUUIDs of the groups it knows (the server's
// session log reports deletions without saying what was deleted).
type syncCursor struct {
	Cookie []byte          `json:"cookie"`
	Known  map[string]bool `json:"known,omitempty"`
}

func (st *syncStream) load(ctx context.Context) error {
	raw, err := st.ss.s.loadCursor(ctx, st.kind)
	st.cur = syncCursor{}
	if err != nil || raw == nil {
		return err
	}
	if err := json.Unmarshal(raw, &st.cur); err != nil {
		st.ss.s.log.Warn("ldap: unreadable syncrepl cursor: starting over", zap.String("stream", st.kind), zap.Error(err))
		st.cur = syncCursor{}
	}
	return nil
}

func (st *syncStream) save(ctx context.Context) error {
	if st.cur.Cookie == nil {
		return st.ss.s.saveCursor(ctx, st.kind, nil)
	}
	b, err := json.Marshal(st.cur)
	if err != nil {
		return err
	}
	return st.ss.s.saveCursor(ctx, st.kind, b)
}

func (st *syncStream) deleteChange(uuids [][]byte) *source.Change {
	if !strings.EqualFold(st.ss.p.m.Key, "entryUUID") {
		return &source.Change{Full: true, Reason: "syncrepl: entries deleted (the key is not entryUUID)"}
	}
	ch := &source.Change{Reason: fmt.Sprintf("syncrepl: %d entries deleted", len(uuids))}
	for _, u := range uuids {
		ch.Deletes = append(ch.Deletes, formatUUID(u))
	}
	return ch
}

// deleted handles deleted entryUUIDs: users become deletes; known groups
// are diffed (or ask for a full pull).
func (st *syncStream) deleted(ctx context.Context, uuids [][]byte) error {
	if !st.groupsOnly {
		st.emit(*st.deleteChange(uuids))
		return nil
	}
	var keys []string
	for _, u := range uuids {
		if k := formatUUID(u); st.cur.Known[k] {
			delete(st.cur.Known, k)
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	if st.groupsDeleted != nil {
		ch, err := st.groupsDeleted(ctx, keys)
		if ch != nil {
			st.emit(*ch)
		}
		return err
	}
	st.emit(source.Change{Full: true, Reason: fmt.Sprintf("syncrepl: %d groups deleted", len(keys))})
	return nil
}

func (st *syncStream) run(ctx context.Context) error {
	s := st.ss.s
	for {
		if err := st.load(ctx); err != nil {
			return err
		}
		if st.cur.Cookie == nil {
			// First start: take the current state as the starting point
			// without reporting every entry as a change (the full pull is
			// the reference).
			if err := st.baseline(ctx); err != nil {
				return err
			}
			if err := st.save(ctx); err != nil {
				return err
			}
		}
		err := st.persist(ctx)
		if wire.IsCode(err, wire.ResultSyncRefresh) {
			s.log.Warn("ldap: the server asks for a full reload (e-syncRefreshRequired): starting from scratch", zap.String("stream", st.kind))
			st.cur = syncCursor{}
			if err := st.save(ctx); err != nil {
				return err
			}
			st.emit(source.Change{Full: true, Reason: "syncrepl: the server asked for a full reload"})
			continue
		}
		return err
	}
}

// baseline runs a refreshOnly search that returns no attributes, to get a
// cookie for the present state (and the groups that exist).
func (st *syncStream) baseline(ctx context.Context) error {
	req := &wire.SearchRequest{BaseDN: st.base, Scope: wire.Scope(st.scope), Filter: st.filter, Attributes: []string{"1.1"},
		Controls: []wire.Control{wire.SyncRequest(wire.SyncRefreshOnly, nil, false)}}
	st.cur = syncCursor{}
	if st.groupsOnly {
		st.cur.Known = map[string]bool{}
	}
	d, err := st.conn.Search(ctx, req, wire.Handlers{
		Entry: func(e *wire.Entry) error {
			if st.groupsOnly {
				for i := range e.Controls {
					if e.Controls[i].OID == wire.OIDSyncState {
						if _, uuid, _, err := wire.SyncState(&e.Controls[i]); err == nil {
							st.cur.Known[formatUUID(uuid)] = true
						}
					}
				}
			}
			return nil
		},
		Intermediate: func(_ string, v []byte) error {
			if si, err := wire.ParseSyncInfo(v); err == nil && si.Cookie != nil {
				st.cur.Cookie = append([]byte(nil), si.Cookie...)
			}
			return nil
		}})
	if err != nil {
		return fmt.Errorf("syncrepl baseline: %w", err)
	}
	if c := d.Control(wire.OIDSyncDone); c != nil {
		ck, _, err := wire.SyncDone(c)
		if err != nil {
			return err
		}
		if ck != nil {
			st.cur.Cookie = append([]byte(nil), ck...)
		}
	}
	if st.cur.Cookie == nil {
		return errors.New("syncrepl baseline: the server returned no cookie (is the syncprov overlay configured?)")
	}
	return nil
}

func (st *syncStream) persist(ctx context.Context) error {
	s := st.ss.s
	req := &wire.SearchRequest{BaseDN: st.base, Scope: wire.Scope(st.scope), Filter: st.filter, Attributes: st.attrs, Persist: true,
		Controls: []wire.Control{wire.SyncRequest(wire.SyncRefreshAndPersist, st.cur.Cookie, false)}}
	presents := 0
	st.refreshed = false
	save := func(ck []byte) error {
		if ck != nil {
			st.cur.Cookie = append([]byte(nil), ck...)
		}
		return st.save(ctx)
	}
	refreshDone := func(present bool) {
		if presents > 0 || present {
			// A present phase: deletions are implied by absence, which
			// only a full pull can tell.
			st.emit(source.Change{Full: true, Reason: fmt.Sprintf("syncrepl: %s resynchronised by a present phase", st.kind)})
		}
		presents = 0
		st.refreshed = true
		s.hook("ready:" + st.kind)
	}
	_, err := st.conn.Search(ctx, req, wire.Handlers{
		Entry: func(e *wire.Entry) error {
			var ctl *wire.Control
			for i := range e.Controls {
				if e.Controls[i].OID == wire.OIDSyncState {
					ctl = &e.Controls[i]
				}
			}
			if ctl == nil {
				return fmt.Errorf("syncrepl: entry %q without a sync state control", e.DN)
			}
			state, uuid, ck, err := wire.SyncState(ctl)
			if err != nil {
				return err
			}
			switch state {
			case wire.SyncPresent:
				presents++
				return nil
			case wire.SyncDelete:
				if err := st.deleted(ctx, [][]byte{uuid}); err != nil {
					return err
				}
			default:
				if st.groupsOnly {
					st.cur.Known[formatUUID(uuid)] = true
				}
				ch, err := st.onEntry(ctx, state, uuid, e)
				if err != nil {
					return err
				}
				if ch != nil {
					st.emit(*ch)
				}
			}
			return save(ck)
		},
		Intermediate: func(oid string, v []byte) error {
			if oid != wire.OIDSyncInfo {
				return nil
			}
			si, err := wire.ParseSyncInfo(v)
			if err != nil {
				return err
			}
			switch si.Kind {
			case wire.InfoIDSet:
				if si.RefreshDeletes {
					if err := st.deleted(ctx, si.UUIDs); err != nil {
						return err
					}
				} else {
					presents += len(si.UUIDs)
				}
			case wire.InfoRefreshDelete, wire.InfoRefreshPresent:
				if si.RefreshDone {
					refreshDone(si.Kind == wire.InfoRefreshPresent)
				}
			}
			return save(si.Cookie)
		},
	})
	if err != nil {
		return err
	}
	return &wire.NetError{Op: "syncrepl", Err: errors.New("the server ended the persistent search")}
}
