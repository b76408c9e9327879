package ldapsrc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/ldapsrc/internal/wire"
	"github.com/dirsync/dirsync/source"
	"go.uber.org/zap"
)

// ---- Active Directory: change notifications ----
//
// One asynchronous search per naming context (subtree, (objectClass=*),
// with the change notification and Show Deleted controls) stays open; the
// DC sends an object each time it changes, deletions included. The
// notification names the object only (objectGUID, objectClass): users are
// re-read by GUID, groups re-read and diffed with the member index. After
// each (re)connect a catch-up USN poll from the stored cursor reports what
// changed while no search was registered, and a second one a moment later
// closes the gap between the catch-up and the DC registering the search.
// A low-rate USN poll (poll_interval, default 5m) stays on as a safety net.
// The cursor only advances through USN polls: a change is reported at
// least once, sometimes twice, never lost.

// errNotifyRefused is a notification search the DC answered with an error
// (no right, too many notification searches): a redial does not help.
var errNotifyRefused = errors.New("the domain controller refused the notification search")

// notifyBurst is how many queued notifications make a USN poll cheaper
// than re-reading each object.
const notifyBurst = 200

// notifySettle is when the second catch-up poll runs after a connect.
const notifySettle = 2 * time.Second

// notice is one object a notification search returned.
type notice struct {
	guid    []byte
	user    bool
	group   bool
	deleted bool
	key     []byte // the configured key attribute, on a tombstone
}

// namingContexts returns the naming contexts holding the user and group
// bases: one notification search each.
func (ss *session) namingContexts() []string {
	var out []string
	for _, base := range []string{ss.p.userBase, ss.p.groupBase} {
		nc := ""
		for _, c := range ss.dse.namingContexts {
			if under([]byte(base), c) && len(c) > len(nc) {
				nc = c
			}
		}
		if nc == "" {
			nc = ss.dse.defaultNC
		}
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(normDN(o), normDN(nc)) }) {
			out = append(out, nc)
		}
	}
	return out
}

// notify runs the notification searches and the USN polls until one fails
// or ctx ends.
func (ss *session) notify(ctx context.Context, emit func(source.Change)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := newMapper(ss.s.name, ss.p, ss.s.s.Users.ExtraAttributes, ss.s.s.Users.Lockout == lockoutInactive)
	// A second connection for re-reads and polls while the searches stream.
	q, err := ss.s.dialOne(ctx, ss.url)
	if err != nil {
		return err
	}
	defer q.Close()
	qs := *ss
	qs.c = q
	notices := make(chan notice, 1024)
	ncs := ss.namingContexts()
	errs := make(chan error, len(ncs))
	var wg sync.WaitGroup
	var extra []*wire.Conn
	defer func() {
		// The searches end before their connections close.
		cancel()
		wg.Wait()
		for _, c := range extra {
			c.Close()
		}
	}()
	for i, nc := range ncs {
		c := ss.c
		if i > 0 {
			if c, err = ss.s.dialOne(ctx, ss.url); err != nil {
				return err
			}
			extra = append(extra, c)
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs <- ss.notifySearch(ctx, c, nc, notices) }()
	}
	poll := func() error {
		err := qs.pollUSN(ctx, m, emit)
		ss.s.hook("poll")
		return err
	}
	if err := poll(); err != nil {
		return err
	}
	ss.s.hook("ready:notify")
	settle := time.After(notifySettle)
	tick := time.NewTicker(ss.s.pollEvery(IncNotify))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case <-settle:
			if err := poll(); err != nil {
				return err
			}
		case <-tick.C:
			if err := poll(); err != nil {
				return err
			}
		case n := <-notices:
			batch := []notice{n}
			for more := true; more; {
				select {
				case n := <-notices:
					batch = append(batch, n)
				default:
					more = false
				}
			}
			if len(batch) > notifyBurst {
				// A bulk change: one USN poll reads it all at once instead
				// of one re-read per object.
				if err := poll(); err != nil {
					return err
				}
				continue
			}
			if err := qs.notified(ctx, m, batch, emit); err != nil {
				return err
			}
		}
	}
}

// notifySearch runs one notification search on c until it fails or ctx
// ends, sending what it returns to out.
func (ss *session) notifySearch(ctx context.Context, c *wire.Conn, nc string, out chan<- notice) error {
	attrs := []string{"objectGUID", "objectClass", "isDeleted"}
	if !strings.EqualFold(ss.p.m.Key, "objectGUID") {
		attrs = append(attrs, ss.p.m.Key)
	}
	req := &wire.SearchRequest{BaseDN: nc, Scope: wire.ScopeSub, Filter: "(objectClass=*)", Attributes: attrs, Persist: true,
		Controls: []wire.Control{wire.Notification(), wire.ShowDeleted()}}
	_, err := c.Search(ctx, req, wire.Handlers{
		Entry: func(e *wire.Entry) error {
			n := notice{guid: append([]byte(nil), e.First("objectGUID")...), deleted: strings.EqualFold(string(e.First("isDeleted")), "TRUE")}
			if len(n.guid) != 16 {
				return nil
			}
			for _, oc := range e.Get("objectClass") {
				switch strings.ToLower(string(oc)) {
				case "user":
					n.user = true
				case "group":
					n.group = true
				}
			}
			if !n.user && !n.group {
				return nil
			}
			if k := e.First(ss.p.m.Key); k != nil {
				n.key = append([]byte(nil), k...)
			}
			select {
			case out <- n:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		// Referrals to other partitions: their own search covers them.
		Reference: func([]string) error { return nil },
	})
	switch {
	case ctx.Err() != nil:
		return nil
	case err == nil:
		return &wire.NetError{Op: "notification search " + nc, Err: errors.New("the server ended the search")}
	case wire.IsNetwork(err):
		return err
	}
	// Refused (not Active Directory, too many notification searches, no
	// right): not something a redial fixes.
	return fmt.Errorf("%w on %s: %w", errNotifyRefused, nc, err)
}

// notified turns a batch of notifications into one change: users re-read
// by GUID (complete records), deletions, group changes diffed.
func (ss *session) notified(ctx context.Context, m *mapper, batch []notice, emit func(source.Change)) error {
	var ch source.Change
	var refs []groupRef
	seen := map[string]bool{}
	var ps []pendingUser
	for _, n := range batch {
		guid := formatGUID(n.guid)
		if seen[guid] {
			continue
		}
		seen[guid] = true
		switch {
		case n.group && !ss.s.s.Groups.Disabled:
			refs = append(refs, groupRef{base: "<GUID=" + guid + ">", key: guid, deleted: n.deleted})
		case n.user && n.deleted:
			switch {
			case strings.EqualFold(ss.p.m.Key, "objectGUID"):
				ch.Deletes = append(ch.Deletes, guid)
			case n.key != nil:
				ch.Deletes = append(ch.Deletes, formatKey(n.key, true))
			default:
				emit(source.Change{Full: true, Reason: fmt.Sprintf("notify: a user was deleted whose key %s is gone", ss.p.m.Key)})
				return nil
			}
		case n.user:
			got, err := ss.collect(ctx, m, "users", wire.SearchRequest{BaseDN: "<GUID=" + guid + ">", Scope: wire.ScopeBase,
				Filter: ss.p.userFilter, Attributes: ss.userAttrs(m)}, func(e *wire.Entry) bool { return under(e.DN, ss.p.userBase) })
			if err != nil && !wire.IsCode(err, wire.ResultNoSuchObject) {
				return err
			}
			ps = append(ps, got...)
		}
	}
	if len(refs) > 0 {
		if err := ss.ensureIndex(ctx); err != nil {
			return err
		}
		gc, ok, err := ss.groupChanges(ctx, ss.ix, m, refs)
		if err != nil {
			return err
		}
		if !ok {
			emit(source.Change{Full: true, Reason: fmt.Sprintf("notify: %d groups changed (not resolvable to members)", len(refs))})
			return nil
		}
		merge(&ch, gc)
	}
	users, err := ss.complete(ctx, ss.c, ps)
	if err != nil {
		return err
	}
	merge(&ch, source.Change{Upserts: users})
	if len(ch.Upserts)+len(ch.Deletes)+len(ch.GroupChanges) == 0 {
		return nil
	}
	ch.Reason = fmt.Sprintf("notify: %d users changed, %d deleted, %d groups changed", len(ch.Upserts), len(ch.Deletes), len(ch.GroupChanges))
	ss.s.log.Debug("ldap: notification", zap.Int("objects", len(batch)))
	emit(ch)
	return nil
}
