package ldapsrc

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testsrv/samba"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap/zaptest"
)

// memCursors is an in-memory source.Cursors.
type memCursors struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (c *memCursors) Cursor(_ context.Context, name string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[name]
	if !ok || v == nil {
		return nil, state.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (c *memCursors) PutCursor(_ context.Context, name string, v []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	c.m[name] = append([]byte(nil), v...)
	return nil
}

// watching is a running Watch and what it reported.
type watching struct {
	t       *testing.T
	changes chan source.Change
	events  chan string
	cancel  context.CancelFunc
	done    chan error
	seen    map[string]int // events received while waiting for others
}

func startWatch(t *testing.T, st Settings, cursors source.Cursors) (*watching, *Source) {
	t.Helper()
	src, err := New("corp", st, Options{Logger: zaptest.NewLogger(t), Cursors: cursors})
	if err != nil {
		t.Fatal(err)
	}
	w := &watching{t: t, changes: make(chan source.Change, 100), events: make(chan string, 1000), done: make(chan error, 1), seen: map[string]int{}}
	src.watchHook = func(ev string) {
		select {
		case w.events <- ev:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() { w.done <- src.Watch(ctx, func(ch source.Change) { w.changes <- ch }) }()
	t.Cleanup(w.stop)
	return w, src
}

func (w *watching) stop() {
	w.cancel()
	select {
	case err := <-w.done:
		if err != nil {
			w.t.Errorf("watch returned %v", err)
		}
		w.done <- nil
	case <-time.After(10 * time.Second):
		w.t.Error("watch did not stop")
	}
}

const waitLimit = 20 * time.Second

func (w *watching) waitEvent(ev string) {
	w.t.Helper()
	if w.seen[ev] > 0 {
		w.seen[ev]--
		return
	}
	deadline := time.After(waitLimit)
	for {
		select {
		case got := <-w.events:
			if got == ev {
				return
			}
			w.seen[got]++
		case err := <-w.done:
			w.t.Fatalf("watch ended waiting for %s: %v", ev, err)
		case <-deadline:
			w.t.Fatalf("no %q event", ev)
		}
	}
}

// next waits for a change matching ok, failing on any other change when
// strict.
func (w *watching) next(what string, strict bool, ok func(source.Change) bool) source.Change {
	w.t.Helper()
	start := time.Now()
	deadline := time.After(waitLimit)
	for {
		select {
		case ch := <-w.changes:
			if ok(ch) {
				w.t.Logf("%s: reached the engine after %v (%s)", what, time.Since(start).Round(time.Millisecond), ch.Reason)
				return ch
			}
			if strict {
				w.t.Fatalf("%s: unexpected change %+v", what, ch)
			}
		case err := <-w.done:
			w.t.Fatalf("watch ended waiting for %s: %v", what, err)
		case <-deadline:
			w.t.Fatalf("%s: no change reported", what)
		}
	}
}

func upsertOf(username string, check func(identity.User) bool) func(source.Change) bool {
	return func(ch source.Change) bool {
		for _, u := range ch.Upserts {
			if u.Username == username && (check == nil || check(u)) {
				return true
			}
		}
		return false
	}
}

func deleteOf(key string) func(source.Change) bool {
	return func(ch source.Change) bool { return slices.Contains(ch.Deletes, key) }
}

func isFull(ch source.Change) bool { return ch.Full }

// groupChangeOf matches a change with exactly one group change, of group
// name, adding and removing exactly these user keys.
func groupChangeOf(name string, added, removed []string) func(source.Change) bool {
	return func(ch source.Change) bool {
		if ch.Full || len(ch.GroupChanges) != 1 {
			return false
		}
		gc := ch.GroupChanges[0]
		return gc.Name == name && slices.Equal(gc.Added, added) && slices.Equal(gc.Removed, removed)
	}
}

func TestSyncreplOpenLDAP(t *testing.T) {
	c := baseCfg()
	srv := slapd.Start(t, slapd.Options{LDIF: fixtureLDIF(c)})
	st := adminSettings(srv)
	snap, err := newSource(t, st).Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, u := range snap.Users {
		keys[u.Username] = u.Key
	}
	cursors := &memCursors{}
	w, _ := startWatch(t, st, cursors)
	w.waitEvent("ready:syncrepl-users")
	w.waitEvent("ready:syncrepl-groups")

	// A profile change: a complete record, nested groups included.
	srv.Modify(t, "dn: "+c.UserDN("bob")+"\nchangetype: modify\nreplace: mail\nmail: Bob.New@Example.test\n")
	ch := w.next("modified user", true, upsertOf("bob", nil))
	bob := ch.Upserts[0]
	if bob.Email != "bob.new@example.test" || bob.Key != keys["bob"] || bob.Active || !slices.Equal(bob.Groups, []string{"eng", "ops", "staff"}) {
		t.Fatalf("bob: %+v", bob)
	}
	// A new user.
	srv.Modify(t, "dn: "+c.UserDN("frank")+"\nchangetype: add\nobjectClass: inetOrgPerson\nuid: frank\ncn: Frank Test\nsn: Test\nmail: frank@example.test\n")
	frank := w.next("added user", true, upsertOf("frank", func(u identity.User) bool { return u.Active && len(u.Groups) == 0 })).Upserts[0]
	// A deleted user.
	srv.Modify(t, "dn: "+c.UserDN("eve")+"\nchangetype: delete\n")
	w.next("deleted user", true, deleteOf(keys["eve"]))
	// A membership change is resolved to the members it adds or removes:
	// frank joins ops (and, through nesting, eng and staff); alice leaves
	// staff, and nobody else is touched.
	srv.Modify(t, "dn: "+c.GroupDN("ops")+"\nchangetype: modify\nadd: member\nmember: "+c.UserDN("frank")+"\n")
	ch = w.next("member added", true, groupChangeOf("ops", []string{frank.Key}, nil))
	if len(ch.Upserts) != 1 || !slices.Equal(ch.Upserts[0].Groups, []string{"eng", "ops", "staff"}) {
		t.Fatalf("member added: upserts %+v", ch.Upserts)
	}
	srv.Modify(t, "dn: "+c.GroupDN("staff")+"\nchangetype: modify\ndelete: member\nmember: "+c.UserDN("alice")+"\n")
	ch = w.next("member removed", true, groupChangeOf("staff", nil, []string{keys["alice"]}))
	if len(ch.Upserts) != 1 || ch.Upserts[0].Key != keys["alice"] || len(ch.Upserts[0].Groups) != 0 {
		t.Fatalf("member removed: upserts %+v", ch.Upserts)
	}

	// Stopped, then resumed from the stored cookie: only what changed
	// meanwhile is reported.
	w.stop()
	srv.Modify(t, "dn: "+c.UserDN("dave")+"\nchangetype: modify\nreplace: givenName\ngivenName: David\n")
	for len(w.changes) > 0 {
		<-w.changes
	}
	w2, _ := startWatch(t, st, cursors)
	ch = w2.next("change while stopped", true, upsertOf("dave", func(u identity.User) bool { return u.GivenName == "David" }))
	// (auditors lists dave with a unique identifier, "#'0101'B", which an
	// equality filter on the DN alone does not match: full pulls see it.)
	if got := ch.Upserts[0].Groups; !slices.Equal(got, []string{"devs"}) {
		t.Errorf("dave groups %v", got)
	}
	w2.waitEvent("ready:syncrepl-users")
	select {
	case ch := <-w2.changes:
		t.Fatalf("resume reported more than the change: %+v", ch)
	default:
	}
	// A posixGroup (memberUid) deleted: its member loses it. (Not strict:
	// slapd's session log may also replay the deletion to the users' stream.)
	w2.waitEvent("ready:syncrepl-groups")
	srv.Modify(t, "dn: cn=devs,"+c.GroupsDN()+"\nchangetype: delete\n")
	ch = w2.next("group deleted", false, groupChangeOf("devs", nil, []string{keys["dave"]}))
	if !ch.GroupChanges[0].Deleted || len(ch.Upserts) != 1 || slices.Contains(ch.Upserts[0].Groups, "devs") {
		t.Fatalf("group deleted: %+v", ch)
	}
}

func TestSyncreplRefreshRequired(t *testing.T) {
	srv := slapd.Start(t, slapd.Options{LDIF: fixtureLDIF(baseCfg())})
	st := adminSettings(srv)
	stale, _ := json.Marshal(syncCursor{Cookie: []byte("rid=000,csn=19700101000000.000000Z#000000#000#000000")})
	cursors := &memCursors{m: map[string][]byte{"ldap/corp/syncrepl-users": stale}}
	w, _ := startWatch(t, st, cursors)
	// A cookie from nowhere: either a refresh-required result or a present
	// phase; both end in a full pull request, never in silence.
	w.next("stale cookie", false, isFull)
}

func TestModifyTimestampPolling(t *testing.T) {
	c := baseCfg()
	srv := slapd.Start(t, slapd.Options{LDIF: fixtureLDIF(c)})
	st := adminSettings(srv)
	st.Inc.Mode = IncModifyTimestamp
	st.Inc.PollInterval = 50 * 1e6
	snap, err := newSource(t, st).Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	alice := byUsername(snap)["alice"].Key
	w, _ := startWatch(t, st, &memCursors{})
	w.waitEvent("poll")
	srv.Modify(t, "dn: "+c.UserDN("carol")+"\nchangetype: modify\nreplace: sn\nsn: Changed\n")
	w.next("modified user", true, upsertOf("carol", func(u identity.User) bool { return u.FamilyName == "Changed" }))
	srv.Modify(t, "dn: "+c.GroupDN("staff")+"\nchangetype: modify\ndelete: member\nmember: "+c.UserDN("alice")+"\n")
	w.next("group change", false, groupChangeOf("staff", nil, []string{alice}))
}

func adKeys(t *testing.T, st Settings) map[string]string {
	t.Helper()
	snap, err := newSource(t, st).Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, u := range snap.Users {
		keys[u.Username] = u.Key
	}
	return keys
}

func TestUSNPollingActiveDirectory(t *testing.T) {
	srv := sambaFixtures.Start(t)
	st := adSettings(srv)
	st.Inc.Mode = IncUSN
	st.Inc.PollInterval = 50 * 1e6
	keys := adKeys(t, st)
	cursors := &memCursors{}
	w, _ := startWatch(t, st, cursors)
	w.waitEvent("poll") // the baseline

	srv.Modify(t, "dn: CN=Alice Test,OU=Staff,{BASE}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n")
	ch := w.next("disabled user", true, upsertOf("alice", func(u identity.User) bool { return !u.Active }))
	alice := ch.Upserts[0]
	if alice.Key != keys["alice"] || alice.Facts[identity.FactActive] != factUACDisabled || !slices.Equal(alice.Groups, []string{"staff"}) {
		t.Fatalf("alice: %+v", alice)
	}
	srv.Modify(t, "dn: CN=Dave Test,OU=Staff,{BASE}\nchangetype: delete\n")
	w.next("deleted user", true, deleteOf(keys["dave"]))
	srv.Modify(t, "dn: CN=ops,OU=Groups,{BASE}\nchangetype: modify\nadd: member\nmember: CN=Erin Test,OU=Staff,{BASE}\n")
	ch = w.next("group change", true, groupChangeOf("ops", []string{keys["erin"]}, nil))
	if len(ch.Upserts) != 1 || !slices.Equal(ch.Upserts[0].Groups, []string{"eng", "ops", "staff"}) {
		t.Fatalf("group change: upserts %+v", ch.Upserts)
	}
	w.stop()

	// Another domain controller, or a restored one: a full pull.
	var cur usnCursor
	if err := json.Unmarshal(cursors.m["ldap/corp/usn"], &cur); err != nil {
		t.Fatal(err)
	}
	for _, tamper := range []func(*usnCursor){
		func(c *usnCursor) {
			c.DSA = "CN=NTDS Settings,CN=DC2,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration," + samba.BaseDN
		},
		func(c *usnCursor) { c.InvocationID = "00000000-0000-0000-0000-000000000001" },
		func(c *usnCursor) { c.USN += 1000000 },
	} {
		bad := cur
		tamper(&bad)
		b, _ := json.Marshal(bad)
		cs := &memCursors{m: map[string][]byte{"ldap/corp/usn": b}}
		w, _ := startWatch(t, st, cs)
		ch := w.next("different DC", true, isFull)
		if !strings.Contains(ch.Reason, "usn:") {
			t.Errorf("reason %q", ch.Reason)
		}
		w.stop()
	}
}

func TestDirSyncActiveDirectory(t *testing.T) {
	srv := sambaFixtures.Start(t)
	st := adSettings(srv)
	st.Inc.Mode = IncDirSync
	st.Inc.PollInterval = 50 * 1e6
	keys := adKeys(t, st)
	w, _ := startWatch(t, st, &memCursors{})
	w.waitEvent("poll") // the baseline
	srv.Modify(t, "dn: CN=Carol Test,OU=Staff,{BASE}\nchangetype: modify\nreplace: mail\nmail: carol.new@example.test\n")
	w.next("modified user", true, upsertOf("carol", func(u identity.User) bool { return u.Email == "carol.new@example.test" }))
	srv.Modify(t, "dn: CN=Erin Test,OU=Staff,{BASE}\nchangetype: delete\n")
	w.next("deleted user", true, deleteOf(keys["erin"]))
	srv.Modify(t, "dn: CN=staff,OU=Groups,{BASE}\nchangetype: modify\ndelete: member\nmember: CN=Alice Test,OU=Staff,{BASE}\n")
	w.next("group change", true, groupChangeOf("staff", nil, []string{keys["alice"]}))
}

func TestWatchRedialsAfterServerRestart(t *testing.T) {
	c := baseCfg()
	srv := slapd.Start(t, slapd.Options{LDIF: fixtureLDIF(c)})
	st := adminSettings(srv)
	w, _ := startWatch(t, st, &memCursors{})
	w.waitEvent("ready:syncrepl-users")
	srv.Restart(t)
	// The watch redials (with a short delay) and resumes from its cookie.
	w.waitEvent("ready:syncrepl-users")
	srv.Modify(t, "dn: "+c.UserDN("alice")+"\nchangetype: modify\nreplace: sn\nsn: Restarted\n")
	w.next("change after the restart", false, upsertOf("alice", func(u identity.User) bool { return u.FamilyName == "Restarted" }))
}
