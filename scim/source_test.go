package scim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
)

func TestPull(t *testing.T) {
	e := newEnv(t, envOpt{})
	ann := e.createUser("ann", map[string]any{
		"externalId":  "ext-ann",
		"displayName": "Ann A",
		"title":       "Engineer",
		"emails": []any{
			map[string]any{"value": "ann@home.example", "type": "home"},
			map[string]any{"value": "Ann@Work.Example", "type": "work", "primary": true},
		},
		URNEnterpriseUser: map[string]any{"employeeNumber": "E1", "department": "R&D",
			"manager": map[string]any{"value": "boss-id", "displayName": "ignored: read-only"}},
	})
	ben := e.createUser("ben", map[string]any{"active": false, "emails": []any{
		map[string]any{"value": "ben@home.example", "type": "home"},
		map[string]any{"value": "ben@work.example", "type": "work"},
	}})
	cy := e.createUser("cy", map[string]any{"emails": nil, "active": nil})
	eng := e.createGroup("Engineering", ann)
	e.createGroup("All", eng, ben) // nested: ann is in All through Engineering
	e.createGroup("Dangling", "no-such-user")

	snap, err := e.srv.Pull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Source != "corp" || len(snap.Users) != 3 || len(snap.Groups) != 3 {
		t.Fatalf("snapshot: %+v", snap)
	}
	byKey := map[string]identity.User{}
	for _, u := range snap.Users {
		byKey[u.Key] = u
	}
	a := byKey[ann]
	if a.Source != "corp" || a.Username != "ann" || a.Email != "ann@work.example" || a.GivenName != "Given ann" ||
		a.FamilyName != "Family" || a.DisplayName != "Ann A" || !a.Active || a.Facts != nil {
		t.Errorf("ann: %+v", a)
	}
	if !slices.Equal(a.Groups, []string{"All", "Engineering"}) {
		t.Errorf("ann's groups %v", a.Groups)
	}
	wantAttrs := map[string]string{"externalId": "ext-ann", "title": "Engineer", "employeeNumber": "E1", "department": "R&D", "manager": "boss-id"}
	if fmt.Sprint(a.Attributes) != fmt.Sprint(wantAttrs) {
		t.Errorf("ann's attributes %v, want %v", a.Attributes, wantAttrs)
	}
	b := byKey[ben]
	if b.Active || b.Facts[identity.FactActive] != "active=false" || b.Email != "ben@work.example" || !slices.Equal(b.Groups, []string{"All"}) {
		t.Errorf("ben: %+v", b)
	}
	c := byKey[cy]
	if !c.Active || c.Email != "" || c.DisplayName != "Given cy Family" {
		t.Errorf("cy (no active attribute counts as active): %+v", c)
	}
	for _, g := range snap.Groups {
		switch g.Name {
		case "All":
			if !slices.Equal(g.Members, sorted(ann, ben)) {
				t.Errorf("All members %v", g.Members)
			}
		case "Dangling":
			if len(g.Members) != 0 {
				t.Errorf("Dangling members %v", g.Members)
			}
		}
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// recorder is a Watch consumer that records every Change.
type recorder struct {
	mu      sync.Mutex
	changes []source.Change
	got     chan struct{}
	entered chan struct{}
	block   chan struct{} // when set, notify waits on it
}

func newRecorder() *recorder {
	return &recorder{got: make(chan struct{}, 100), entered: make(chan struct{}, 100)}
}

func (r *recorder) notify(c source.Change) {
	r.entered <- struct{}{}
	if r.block != nil {
		<-r.block
	}
	r.mu.Lock()
	r.changes = append(r.changes, c)
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (r *recorder) wait(t *testing.T) source.Change {
	t.Helper()
	select {
	case <-r.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no change delivered")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changes[len(r.changes)-1]
}

func startWatch(t *testing.T, s *Server, r *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, r.notify) }()
	t.Cleanup(func() {
		cancel()
		if r.block != nil {
			close(r.block)
		}
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	// Watch registers before its first receive; wait until it has.
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.hub.mu.Lock()
		n := len(s.hub.subs)
		s.hub.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Watch did not start")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchDeliversEveryAcceptedWrite(t *testing.T) {
	e := newEnv(t, envOpt{})
	rec := newRecorder()
	startWatch(t, e.srv, rec)

	id := e.createUser("wanda", nil)
	c := rec.wait(t)
	if len(c.Upserts) != 1 || c.Upserts[0].Key != id || c.Reason != "scim POST user created" {
		t.Fatalf("create: %+v", c)
	}

	// Entra disables with a string boolean.
	e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("Replace", "active", "False"))))
	c = rec.wait(t)
	if len(c.Upserts) != 1 || c.Upserts[0].Active || c.Upserts[0].Facts[identity.FactActive] != "active=false" ||
		c.Reason != "scim PATCH active=false" {
		t.Fatalf("disable: %+v", c)
	}

	// A PATCH that changes nothing is not reported.
	e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("replace", "active", false))))
	// Group membership: the added member is reported with its groups.
	gid := e.createGroup("Ops")
	e.must(204, e.do("PATCH", "/Groups/"+gid, patchBody(op("add", "members", []any{map[string]any{"value": id}}))))
	c = rec.wait(t)
	if len(c.Upserts) != 1 || !slices.Equal(c.Upserts[0].Groups, []string{"Ops"}) || c.Reason != `scim PATCH group "Ops" members +1 -0` {
		t.Fatalf("member added: %+v", c)
	}
	e.must(204, e.do("PATCH", "/Groups/"+gid, patchBody(op("replace", "displayName", "Operations"))))
	c = rec.wait(t)
	if len(c.Upserts) != 1 || !slices.Equal(c.Upserts[0].Groups, []string{"Operations"}) {
		t.Fatalf("group renamed: %+v", c)
	}
	e.must(204, e.do("DELETE", "/Groups/"+gid, nil))
	c = rec.wait(t)
	if len(c.Upserts) != 1 || len(c.Upserts[0].Groups) != 0 {
		t.Fatalf("group deleted: %+v", c)
	}
	e.must(204, e.do("DELETE", "/Users/"+id, nil))
	c = rec.wait(t)
	if len(c.Upserts) != 0 || !slices.Equal(c.Deletes, []string{id}) || c.Reason != "scim DELETE user deleted" {
		t.Fatalf("delete: %+v", c)
	}
	rec.mu.Lock()
	n := len(rec.changes)
	rec.mu.Unlock()
	if n != 6 {
		t.Fatalf("%d changes, want 6 (the no-op PATCH and the empty group create are not reported)", n)
	}
}

// A consumer that does not return must not block SCIM requests; what
// happened meanwhile arrives merged in the next Change.
func TestWatchSlowConsumerDoesNotBlockRequests(t *testing.T) {
	e := newEnv(t, envOpt{})
	rec := newRecorder()
	rec.block = make(chan struct{})
	startWatch(t, e.srv, rec)

	first := e.createUser("first", nil)
	<-rec.entered // its notify call now blocks
	var ids []string
	for i := range 50 {
		id := e.createUser(fmt.Sprintf("u%02d", i), nil)
		e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("replace", "active", false))))
		ids = append(ids, id)
	}
	rec.block <- struct{}{} // release the first notify
	c := rec.wait(t)
	if len(c.Upserts) != 1 || c.Upserts[0].Key != first {
		t.Fatalf("first change: %+v", c)
	}
	rec.block <- struct{}{}
	c = rec.wait(t)
	if len(c.Upserts) != 50 {
		t.Fatalf("merged change has %d upserts, want 50", len(c.Upserts))
	}
	for _, u := range c.Upserts {
		if u.Active {
			t.Fatalf("merged change carries a stale record: %+v", u)
		}
	}
	if c.Reason == "" || len(c.Reason) > 1000 {
		t.Fatalf("reason: %q", c.Reason)
	}
}

// Writes are not reported when nobody watches, and Watch returns when its
// context ends.
func TestWatchStops(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.createUser("before", nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var got []source.Change
	go func() { done <- e.srv.Watch(ctx, func(c source.Change) { got = append(got, c) }) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return")
	}
	if len(got) != 0 {
		t.Fatalf("changes from before Watch: %+v", got)
	}
}
