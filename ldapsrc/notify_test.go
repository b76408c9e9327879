package ldapsrc

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testsrv/samba"
	"github.com/dirsync/dirsync/source"
)

// viaNotify matches a change that came from a notification (not a poll).
func viaNotify(ok func(source.Change) bool) func(source.Change) bool {
	return func(ch source.Change) bool { return strings.HasPrefix(ch.Reason, "notify:") && ok(ch) }
}

// TestNotifyActiveDirectory: auto picks change notifications on Samba's AD
// DC; a disable, a membership change and a deletion reach the callback
// through the notification search; a DC restart is caught up.
func TestNotifyActiveDirectory(t *testing.T) {
	srv := sambaFixtures.Start(t)
	st := adSettings(srv) // incremental.mode: auto
	keys := adKeys(t, st)
	w, _ := startWatch(t, st, &memCursors{})
	w.waitEvent("mode:notify")
	w.waitEvent("ready:notify")

	// A disable: measured from before the directory write to the callback.
	start := time.Now()
	srv.Modify(t, "dn: CN=Alice Test,OU=Staff,{BASE}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n")
	ch := w.next("disabled user", false, viaNotify(upsertOf("alice", func(u identity.User) bool { return !u.Active })))
	took := time.Since(start)
	t.Logf("notify: disable to callback in %v (ldapmodify included)", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the disable took %v", took)
	}
	if alice := ch.Upserts[0]; alice.Key != keys["alice"] || !slices.Equal(alice.Groups, []string{"staff"}) {
		t.Fatalf("alice: %+v", alice)
	}

	// A membership change: the member removed, nobody else.
	srv.Modify(t, "dn: CN=eng,OU=Groups,{BASE}\nchangetype: modify\ndelete: member\nmember: CN=Bob Test,OU=Staff,{BASE}\n")
	ch = w.next("member removed", false, viaNotify(groupChangeOf("eng", nil, []string{keys["bob"]})))
	if len(ch.Upserts) != 1 || len(ch.Upserts[0].Groups) != 0 {
		t.Fatalf("bob: %+v", ch.Upserts)
	}

	// A deletion while connected.
	srv.Modify(t, "dn: CN=Dave Test,OU=Staff,{BASE}\nchangetype: delete\n")
	w.next("deleted user", false, viaNotify(deleteOf(keys["dave"])))

	// The DC restarts; what changed while it was down (offline, through
	// Samba's database layer) is found by the catch-up poll.
	srv.Restart(t, func() error {
		return samba.AddOffline(srv.Dir, "dn: CN=Carol Test,OU=Staff,{BASE}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n\n"+
			"dn: CN=ops,OU=Groups,{BASE}\nchangetype: modify\nadd: member\nmember: CN=Erin Test,OU=Staff,{BASE}\n")
	})
	w.waitEvent("ready:notify")
	caught := func(ch source.Change) bool {
		return strings.HasPrefix(ch.Reason, "usn:") && upsertOf("carol", func(u identity.User) bool { return !u.Active })(ch) &&
			slices.ContainsFunc(ch.GroupChanges, func(gc source.GroupChange) bool {
				return gc.Name == "ops" && slices.Equal(gc.Added, []string{keys["erin"]})
			})
	}
	w.next("caught up after the restart", false, caught)
	// And notifications flow again.
	srv.Modify(t, "dn: CN=Erin Test,OU=Staff,{BASE}\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: 514\n")
	w.next("disable after the restart", false, viaNotify(upsertOf("erin", func(u identity.User) bool { return !u.Active })))
	// A group deleted: its members (carol; erin, added while the DC was
	// down) lose it and the groups it was nested in.
	srv.Modify(t, "dn: CN=ops,OU=Groups,{BASE}\nchangetype: delete\n")
	ch = w.next("group deleted", false, viaNotify(groupChangeOf("ops", nil, identity.SortedSet([]string{keys["carol"], keys["erin"]}))))
	if !ch.GroupChanges[0].Deleted || len(ch.Upserts) != 2 || len(ch.Upserts[0].Groups)+len(ch.Upserts[1].Groups) != 0 {
		t.Fatalf("group deleted: %+v", ch)
	}
}
