package scim

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/state/memstore"
)

// Several replicas serve SCIM from one store. These tests run two servers
// on a shared store and check that concurrent writers cannot corrupt a
// resource or break userName uniqueness, and that a stale in-process index
// cannot make a lookup wrong.

func twoReplicas(t *testing.T) (*testEnv, *testEnv) {
	store := memstore.New(memstore.Options{})
	return newEnv(t, envOpt{store: store}), newEnv(t, envOpt{store: store})
}

func TestReplicasUserNameUniqueness(t *testing.T) {
	a, b := twoReplicas(t)
	const n = 20
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		e := a
		if i%2 == 1 {
			e = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- e.do("POST", "/Users", map[string]any{"userName": []string{"Racer@Example.com", "racer@example.COM"}[i%2]}).status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
	}
	all, _ := a.store.KVList(context.Background(), "scim/corp/users")
	claims, _ := a.store.KVList(context.Background(), "scim/corp/usernames")
	if len(all) != 1 || len(claims) != 1 {
		t.Fatalf("%d users and %d claims stored, want 1 and 1", len(all), len(claims))
	}
}

func TestReplicasConcurrentPatchesAllApply(t *testing.T) {
	a, b := twoReplicas(t)
	gid := a.createGroup("Shared")
	uid := a.createUser("target", nil)
	const n = 30
	var wg sync.WaitGroup
	errs := make(chan string, 2*n)
	for i := range n {
		e := a
		if i%2 == 1 {
			e = b
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			r := e.do("PATCH", "/Groups/"+gid, patchBody(op("add", "members", []any{map[string]any{"value": fmt.Sprintf("m%02d", i)}})))
			if r.status != 204 {
				errs <- fmt.Sprintf("group PATCH %d: %d %s", i, r.status, r.body)
			}
		}()
		go func() {
			defer wg.Done()
			r := e.do("PATCH", "/Users/"+uid, patchBody(op("add", "emails", []any{map[string]any{"value": fmt.Sprintf("e%02d@x.example", i)}})))
			if r.status != 204 {
				errs <- fmt.Sprintf("user PATCH %d: %d %s", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	g := b.must(200, b.do("GET", "/Groups/"+gid, nil))
	if got := len(asList(g.json["members"])); got != n {
		t.Fatalf("%d members, want %d: a concurrent write was lost", got, n)
	}
	u := a.must(200, a.do("GET", "/Users/"+uid, nil))
	if got := len(asList(u.json["emails"])); got != n+1 {
		t.Fatalf("%d emails, want %d", got, n+1)
	}
	if u.header.Get("ETag") != fmt.Sprintf(`W/"%d"`, n+1) {
		t.Fatalf("ETag %s after %d writes", u.header.Get("ETag"), n)
	}
}

func TestReplicasStaleIndex(t *testing.T) {
	a, b := twoReplicas(t)
	// b reads the (empty) store first, then a writes.
	if err := b.srv.LoadIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := a.createUser("made.on.a", map[string]any{"externalId": "X-1"})
	// b finds it by userName and externalId although its index never saw it.
	if r := b.must(200, b.do("GET", "/Users?filter=userName+eq+%22MADE.ON.A%22", nil)); r.str("Resources.0.id") != id {
		t.Fatalf("userName lookup on b: %s", r.body)
	}
	if r := b.must(200, b.do("GET", "/Users?filter=externalId+eq+%22X-1%22", nil)); r.str("Resources.0.id") != id {
		t.Fatalf("externalId lookup on b: %s", r.body)
	}
	b.must(409, b.do("POST", "/Users", map[string]any{"userName": "made.on.A"}))
	// a renames it: b's index still maps the old name, but must not answer with it.
	a.must(204, a.do("PATCH", "/Users/"+id, patchBody(op("replace", "userName", "renamed.on.a"), op("replace", "externalId", "X-2"))))
	if r := b.must(200, b.do("GET", "/Users?filter=userName+eq+%22made.on.a%22", nil)); r.str("totalResults") != "0" {
		t.Fatalf("stale userName answered on b: %s", r.body)
	}
	if r := b.must(200, b.do("GET", "/Users?filter=externalId+eq+%22X-1%22", nil)); r.str("totalResults") != "0" {
		t.Fatalf("stale externalId answered on b: %s", r.body)
	}
	if r := b.must(200, b.do("GET", "/Users?filter=externalId+eq+%22X-2%22", nil)); r.str("totalResults") != "1" {
		t.Fatalf("new externalId not found on b: %s", r.body)
	}
	// The old name is free on both.
	b.createUser("made.on.a", nil)
	// a deletes; b's index must not resurrect it.
	a.must(204, a.do("DELETE", "/Users/"+id, nil))
	if r := b.must(200, b.do("GET", "/Users?filter=userName+eq+%22renamed.on.a%22", nil)); r.str("totalResults") != "0" {
		t.Fatalf("deleted user answered on b: %s", r.body)
	}
}

// A claim left behind by a crash between the claim and the record write
// blocks the userName only until it is stale.
func TestStaleClaimIsTakenOver(t *testing.T) {
	e := newEnv(t, envOpt{})
	ctx := context.Background()
	claim := fmt.Sprintf("ghost-id %d", e.clock.Now().UnixNano())
	if _, err := e.store.KVPut(ctx, "scim/corp/usernames", "orphan", []byte(claim), 0); err != nil {
		t.Fatal(err)
	}
	e.must(409, e.do("POST", "/Users", map[string]any{"userName": "Orphan"}))
	e.clock.Advance(staleClaimAfter + time.Second)
	id := e.createUser("Orphan", nil)
	b, _, err := e.store.KVGet(ctx, "scim/corp/usernames", "orphan")
	if err != nil || string(b[:len(id)]) != id {
		t.Fatalf("claim %q, %v; want it owned by %s", b, err, id)
	}
}

// A server started on a store that already holds resources loads its index
// before serving, so computed attributes (a user's groups) are right from
// the first request.
func TestIndexLoadedBeforeFirstRequest(t *testing.T) {
	a, b := twoReplicas(t)
	uid := a.createUser("early", nil)
	gid := a.createGroup("Early birds", uid)
	r := b.must(200, b.do("GET", "/Users/"+uid, nil))
	if r.str("groups.0.value") != gid || r.str("groups.0.display") != "Early birds" {
		t.Fatalf("groups on a fresh replica: %s", r.body)
	}
}

// TestReplicasStaleRecordCache: a replica's PATCH starts from the version
// it last saw; when another replica has written since, the PATCH applies
// to the stored version (keeping that write), and a PATCH that looks like
// a no-op against the stale version is still applied.
func TestReplicasStaleRecordCache(t *testing.T) {
	store := memstore.New(memstore.Options{})
	a := newEnv(t, envOpt{store: store})
	b := newEnv(t, envOpt{store: store})
	id := a.createUser("stale", nil) // a caches active=true
	b.must(204, b.do("PATCH", "/Users/"+id, patchBody(op("replace", "active", false), op("replace", "displayName", "B"))))
	// Against a's stale view this changes nothing; against the store it does.
	a.must(204, a.do("PATCH", "/Users/"+id, patchBody(op("replace", "active", true))))
	r := b.must(200, b.do("GET", "/Users/"+id, nil))
	if r.str("active") != "true" || r.str("displayName") != "B" {
		t.Fatalf("after the stale replica's PATCH: active %s, displayName %q; want true and B's name kept", r.str("active"), r.str("displayName"))
	}
	b.must(204, b.do("PATCH", "/Users/"+id, patchBody(op("replace", "title", "T"))))
	a.must(204, a.do("PATCH", "/Users/"+id, patchBody(op("replace", "nickName", "N"))))
	r = a.must(200, a.do("GET", "/Users/"+id, nil))
	if r.str("title") != "T" || r.str("nickName") != "N" {
		t.Fatalf("a lost write: title %q, nickName %q", r.str("title"), r.str("nickName"))
	}
}
