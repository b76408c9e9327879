// Package statetest is the conformance suite every state.Store backend
// passes: one call to Run from each backend's tests.
//
// # Fencing, precisely
//
// Every backend implements the same rule for fenced writes (PutAccount,
// DeleteAccount, PutHeld, DeleteHeld):
//
//   - Fence{Lock: L, Token: t} with t > 0 is accepted iff t is the newest
//     token ever issued for L. A newer AcquireLock by anyone makes it stale
//     (state.ErrStaleFence). A lease that merely expired, with nobody taking
//     the lock since, still fences: no newer leader can have written.
//   - Fence{Lock: L, Token: 0} is accepted iff no lease for L was ever issued
//     by this store.
//   - The zero Fence{} is accepted iff no lease under any name was ever issued
//     by this store (single-process use and tests). Once any lock has been
//     taken, every writer must take the lock too.
//   - A token with no lock name is refused.
//
// "Ever" means for the life of the stored data: persistent backends remember
// issued tokens across restarts, and tokens keep increasing.
//
// # Locks
//
// AcquireLock by the lock's current owner renews it and keeps its token.
// RenewLock succeeds iff no newer lease was issued for the name (so an
// expired lease nobody took can be renewed, with the same token), and
// otherwise returns state.ErrLockHeld. ReleaseLock frees the lock only if the
// given lease still holds it.
//
// # Journal and runs
//
// Decisions returns matching records oldest first; with Limit set it returns
// the newest Limit matching records, newest first. Runs returns runs by
// Started, newest first.
package statetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
)

// JournalSize is the journal bound the suite expects: newStore must return a
// store that keeps the newest JournalSize decisions.
const JournalSize = 8

// LockTTL is the short lease the suite lets expire.
const LockTTL = 150 * time.Millisecond

// Run runs the conformance suite. newStore returns a new, empty store with a
// journal of JournalSize records, and registers its Close (and any cleanup)
// with t.Cleanup. Stores returned by separate calls must not share data:
// the subtests run in parallel.
func Run(t *testing.T, newStore func(t *testing.T) state.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s state.Store)
	}{
		{"Ping", testPing},
		{"Snapshots", testSnapshots},
		{"Accounts", testAccounts},
		{"Cursors", testCursors},
		{"Runs", testRuns},
		{"Journal", testJournal},
		{"JournalFilters", testJournalFilters},
		{"Held", testHeld},
		{"KV", testKV},
		{"KVConcurrentCAS", testKVConcurrentCAS},
		{"IndexedKV", testIndexedKV},
		{"Lock", testLock},
		{"LockExpiry", testLockExpiry},
		{"LockRelease", testLockRelease},
		{"LockConcurrent", testLockConcurrent},
		{"Fencing", testFencing},
		{"ZeroFence", testZeroFence},
		{"LinksAndFencedSnapshots", testLinksAndFencedSnapshots},
		{"ConcurrentPutAccount", testConcurrentPutAccount},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sameJSON fails unless got and want encode to the same JSON.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	must(t, err, "marshal got")
	w, err := json.Marshal(want)
	must(t, err, "marshal want")
	if string(g) != string(w) {
		t.Fatalf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func ptime(t time.Time) *time.Time { return &t }

var base = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)

func testPing(t *testing.T, s state.Store) {
	must(t, s.Ping(ctxT(t)), "ping")
}

func testSnapshots(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	_, err := s.GetSnapshot(ctx, "corp-ad")
	wantErr(t, err, state.ErrNotFound, "missing snapshot")

	snap := &identity.Snapshot{
		Source:  "corp-ad",
		TakenAt: base,
		Users: []identity.User{
			{
				Key: "guid-1", Source: "corp-ad", Username: "jo", Email: "jo@example.com",
				GivenName: "Jo", FamilyName: "Doe", DisplayName: "Jo Doe", Active: false,
				Expires: ptime(base.Add(48 * time.Hour)), MustChangePassword: true,
				Groups:     []string{"admins", "staff"},
				Attributes: map[string]string{"employeeNumber": "42", "badge": "ÄÖ-7"},
				Facts:      map[string]string{identity.FactActive: "userAccountControl ACCOUNTDISABLE set"},
			},
			{Key: "guid-2", Source: "corp-ad", Username: "al", Active: true},
		},
		Groups: []identity.Group{{Key: "g1", Name: "admins", Members: []string{"guid-1"}}},
	}
	must(t, s.PutSnapshot(ctx, state.Fence{}, snap), "put snapshot")
	got, err := s.GetSnapshot(ctx, "corp-ad")
	must(t, err, "get snapshot")
	sameJSON(t, "snapshot", got, snap)
	if got.Users[0].Expires == nil || !got.Users[0].Expires.Equal(*snap.Users[0].Expires) {
		t.Fatalf("expires: got %v, want %v", got.Users[0].Expires, snap.Users[0].Expires)
	}
	if !got.TakenAt.Equal(base) {
		t.Fatalf("taken_at: got %v, want %v", got.TakenAt, base)
	}

	// Replace; other sources are separate.
	snap2 := &identity.Snapshot{Source: "corp-ad", TakenAt: base.Add(time.Hour), Users: []identity.User{}}
	must(t, s.PutSnapshot(ctx, state.Fence{}, snap2), "replace snapshot")
	must(t, s.PutSnapshot(ctx, state.Fence{}, &identity.Snapshot{Source: "okta", TakenAt: base}), "put okta")
	got, err = s.GetSnapshot(ctx, "corp-ad")
	must(t, err, "get replaced snapshot")
	if len(got.Users) != 0 || !got.TakenAt.Equal(snap2.TakenAt) {
		t.Fatalf("replaced snapshot: %+v", got)
	}
	got, err = s.GetSnapshot(ctx, "okta")
	must(t, err, "get okta")
	if got.Source != "okta" {
		t.Fatalf("okta snapshot: %+v", got)
	}
}

func fullAccount(key string) identity.Account {
	return identity.Account{
		Key: key, Username: "user-" + key, Email: key + "@example.com", GivenName: "Given",
		FamilyName: "Family", DisplayName: "Given Family", Suspended: true,
		Expires: ptime(base.Add(24 * time.Hour)), Role: "admin", Groups: []string{"a", "b"},
		Attributes:         map[string]string{"computer_usernames": "x,y"},
		MustChangePassword: true, Remote: map[string]string{"uuid": "u-" + key},
		Exists: true, SuspendedAt: ptime(base), Deprovisioned: true, Failing: map[string]int{"set_role": 2},
		Pending: "suspend", Unknown: []string{identity.FieldRole},
	}
}

func testAccounts(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	got, err := s.Accounts(ctx, "netmaker")
	must(t, err, "accounts of empty target")
	if len(got) != 0 {
		t.Fatalf("empty target: %v", got)
	}
	a := fullAccount("k1")
	b := identity.Account{Key: "k2", Username: "bo", Exists: true}
	must(t, s.PutAccount(ctx, state.Fence{}, "netmaker", a), "put a")
	must(t, s.PutAccount(ctx, state.Fence{}, "netmaker", b), "put b")
	must(t, s.PutAccount(ctx, state.Fence{}, "ezeep", identity.Account{Key: "k1", Username: "other"}), "put ezeep")

	got, err = s.Accounts(ctx, "netmaker")
	must(t, err, "accounts")
	sameJSON(t, "netmaker accounts", got, map[string]identity.Account{"k1": a, "k2": b})

	// The returned map is the caller's: changing it changes nothing stored.
	delete(got, "k1")
	got, _ = s.Accounts(ctx, "netmaker")
	if len(got) != 2 {
		t.Fatalf("store changed through a returned map: %v", got)
	}

	// Overwrite.
	a2 := a
	a2.Suspended = false
	a2.Groups = []string{"c"}
	must(t, s.PutAccount(ctx, state.Fence{}, "netmaker", a2), "overwrite a")
	got, _ = s.Accounts(ctx, "netmaker")
	sameJSON(t, "overwritten", got["k1"], a2)

	// Delete, and deleting an absent key is fine.
	must(t, s.DeleteAccount(ctx, state.Fence{}, "netmaker", "k2"), "delete b")
	must(t, s.DeleteAccount(ctx, state.Fence{}, "netmaker", "nobody"), "delete absent")
	got, _ = s.Accounts(ctx, "netmaker")
	if _, ok := got["k2"]; ok || len(got) != 1 {
		t.Fatalf("after delete: %v", got)
	}

	// Targets are isolated.
	got, _ = s.Accounts(ctx, "ezeep")
	if len(got) != 1 || got["k1"].Username != "other" {
		t.Fatalf("ezeep accounts: %v", got)
	}
	got, _ = s.Accounts(ctx, "net")
	if len(got) != 0 {
		t.Fatalf("target name prefix leaked accounts: %v", got)
	}
}

func testCursors(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	_, err := s.Cursor(ctx, "corp-ad")
	wantErr(t, err, state.ErrNotFound, "missing cursor")
	bin := []byte{0, 1, 2, 0xff, '\n', 'x'}
	must(t, s.PutCursor(ctx, "corp-ad", bin), "put cursor")
	must(t, s.PutCursor(ctx, "ldap", []byte("rid=001,csn=x")), "put cursor 2")
	got, err := s.Cursor(ctx, "corp-ad")
	must(t, err, "get cursor")
	if string(got) != string(bin) {
		t.Fatalf("cursor: %q, want %q", got, bin)
	}
	must(t, s.PutCursor(ctx, "corp-ad", []byte("12345")), "overwrite cursor")
	got, _ = s.Cursor(ctx, "corp-ad")
	if string(got) != "12345" {
		t.Fatalf("overwritten cursor: %q", got)
	}
	got, _ = s.Cursor(ctx, "ldap")
	if string(got) != "rid=001,csn=x" {
		t.Fatalf("other cursor: %q", got)
	}
}

func testRuns(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	_, err := s.GetRun(ctx, "nope")
	wantErr(t, err, state.ErrNotFound, "missing run")
	runs, err := s.Runs(ctx, 0)
	must(t, err, "runs of empty store")
	if len(runs) != 0 {
		t.Fatalf("empty store runs: %v", runs)
	}
	// Insert out of order; Runs sorts by Started, newest first.
	order := []int{3, 0, 4, 1, 2}
	for _, i := range order {
		r := state.Run{
			ID: fmt.Sprintf("run-%d", i), Trigger: "cron", Started: base.Add(time.Duration(i) * time.Minute),
			Status: "running",
		}
		must(t, s.PutRun(ctx, r), "put run")
	}
	full := state.Run{
		ID: "run-2", Trigger: "scim", Started: base.Add(2 * time.Minute), Finished: base.Add(3 * time.Minute),
		Status: "partial", Error: "netmaker: 503", Counts: map[string]int{"applied": 3, "failed": 1},
		Held: true, Sources: map[string]int{"corp-ad": 100},
	}
	must(t, s.PutRun(ctx, full), "replace run")
	got, err := s.GetRun(ctx, "run-2")
	must(t, err, "get run")
	sameJSON(t, "run", got, full)

	runs, err = s.Runs(ctx, 0)
	must(t, err, "runs")
	var ids []string
	for _, r := range runs {
		ids = append(ids, r.ID)
	}
	if want := []string{"run-4", "run-3", "run-2", "run-1", "run-0"}; !slices.Equal(ids, want) {
		t.Fatalf("runs order: %v, want %v", ids, want)
	}
	sameJSON(t, "run in list", runs[2], full)
	runs, err = s.Runs(ctx, 2)
	must(t, err, "runs limit")
	if len(runs) != 2 || runs[0].ID != "run-4" || runs[1].ID != "run-3" {
		t.Fatalf("runs limit 2: %v", runs)
	}
}

func decision(i int) state.Decision {
	return state.Decision{
		Time: base.Add(time.Duration(i) * time.Second), RunID: fmt.Sprintf("run-%d", i/4),
		Trigger: "cron", Target: []string{"netmaker", "ezeep"}[i%2], User: []string{"jo", "al", "bo"}[i%3],
		Action: "suspend", Reason: fmt.Sprintf("reason %d", i), Outcome: "applied", Attempt: 1 + i%2,
		DurationMS: int64(i * 10), Error: map[bool]string{true: "boom"}[i%5 == 0],
	}
}

func testJournal(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	got, err := s.Decisions(ctx, state.DecisionQuery{})
	must(t, err, "empty journal")
	if len(got) != 0 {
		t.Fatalf("empty journal: %v", got)
	}
	must(t, s.AppendDecisions(ctx, nil), "append nothing")

	total := 3 * JournalSize / 2
	var all []state.Decision
	for i := range total {
		all = append(all, decision(i))
	}
	// In batches of varying size.
	for i := 0; i < total; {
		n := min(1+i%3, total-i)
		must(t, s.AppendDecisions(ctx, all[i:i+n]), "append")
		i += n
	}
	got, err = s.Decisions(ctx, state.DecisionQuery{})
	must(t, err, "decisions")
	if len(got) != JournalSize {
		t.Fatalf("journal kept %d records, want %d", len(got), JournalSize)
	}
	for i, d := range got {
		if i > 0 && d.Seq <= got[i-1].Seq {
			t.Fatalf("seq not strictly increasing: %d after %d", d.Seq, got[i-1].Seq)
		}
		want := all[total-JournalSize+i]
		want.Seq = d.Seq
		sameJSON(t, fmt.Sprintf("decision %d", i), d, want)
	}
	if got[0].Seq <= 0 {
		t.Fatalf("seq must be positive: %d", got[0].Seq)
	}
	last := got[len(got)-1].Seq

	// Seq keeps increasing after more appends.
	must(t, s.AppendDecisions(ctx, []state.Decision{decision(total)}), "append more")
	got, _ = s.Decisions(ctx, state.DecisionQuery{})
	if len(got) != JournalSize || got[len(got)-1].Seq <= last || got[len(got)-1].Reason != decision(total).Reason {
		t.Fatalf("after another append: %d records, last %+v", len(got), got[len(got)-1])
	}
}

func testJournalFilters(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	var all []state.Decision
	for i := range JournalSize {
		all = append(all, decision(i))
	}
	must(t, s.AppendDecisions(ctx, all), "append")
	reasons := func(ds []state.Decision) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Reason)
		}
		return out
	}
	expect := func(q state.DecisionQuery) []string {
		var out []string
		for _, d := range all {
			if q.Matches(d) {
				out = append(out, d.Reason)
			}
		}
		if q.Limit > 0 {
			slices.Reverse(out)
			if len(out) > q.Limit {
				out = out[:q.Limit]
			}
		}
		return out
	}
	queries := []state.DecisionQuery{
		{},
		{User: "jo"},
		{User: "nobody"},
		{Target: "ezeep"},
		{RunID: "run-1"},
		{Since: base.Add(5 * time.Second)},
		{Since: base.Add(5*time.Second - time.Nanosecond)},
		{Limit: 3},
		{Limit: 100},
		{User: "al", Target: "netmaker"},
		{Target: "netmaker", Limit: 2},
		{User: "bo", RunID: "run-0", Since: base},
		{Target: "ezeep", Since: base.Add(2 * time.Second), Limit: 1},
	}
	for _, q := range queries {
		got, err := s.Decisions(ctx, q)
		must(t, err, fmt.Sprintf("query %+v", q))
		if g, w := reasons(got), expect(q); !slices.Equal(g, w) {
			t.Errorf("query %+v:\n got  %q\n want %q", q, g, w)
		}
	}
	if len(expect(state.DecisionQuery{User: "jo"})) == 0 || len(expect(state.DecisionQuery{Target: "netmaker", Limit: 2})) != 2 {
		t.Fatal("fixture does not exercise the filters")
	}
}

func testHeld(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	_, err := s.GetHeld(ctx, "run-1")
	wantErr(t, err, state.ErrNotFound, "missing held plan")
	ids, err := s.HeldRuns(ctx)
	must(t, err, "held runs of empty store")
	if len(ids) != 0 {
		t.Fatalf("empty store held runs: %v", ids)
	}
	p1 := []byte(`{"steps":[{"user":"jo","action":"suspend"}]}`)
	must(t, s.PutHeld(ctx, state.Fence{}, "run-1", p1), "put held 1")
	must(t, s.PutHeld(ctx, state.Fence{}, "run-2", []byte(`{}`)), "put held 2")
	got, err := s.GetHeld(ctx, "run-1")
	must(t, err, "get held")
	if string(got) != string(p1) {
		t.Fatalf("held plan: %s", got)
	}
	ids, err = s.HeldRuns(ctx)
	must(t, err, "held runs")
	sort.Strings(ids)
	if !slices.Equal(ids, []string{"run-1", "run-2"}) {
		t.Fatalf("held runs: %v", ids)
	}
	must(t, s.PutHeld(ctx, state.Fence{}, "run-1", []byte(`{"v":2}`)), "replace held")
	got, _ = s.GetHeld(ctx, "run-1")
	if string(got) != `{"v":2}` {
		t.Fatalf("replaced held plan: %s", got)
	}
	must(t, s.DeleteHeld(ctx, state.Fence{}, "run-1"), "delete held")
	must(t, s.DeleteHeld(ctx, state.Fence{}, "run-9"), "delete absent held")
	_, err = s.GetHeld(ctx, "run-1")
	wantErr(t, err, state.ErrNotFound, "deleted held plan")
	ids, _ = s.HeldRuns(ctx)
	if !slices.Equal(ids, []string{"run-2"}) {
		t.Fatalf("held runs after delete: %v", ids)
	}
}

func testKV(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	_, _, err := s.KVGet(ctx, "users", "u1")
	wantErr(t, err, state.ErrNotFound, "missing key")
	m, err := s.KVList(ctx, "users")
	must(t, err, "list empty bucket")
	if len(m) != 0 {
		t.Fatalf("empty bucket: %v", m)
	}

	// Create-only.
	v1, err := s.KVPut(ctx, "users", "u1", []byte(`{"a":1}`), 0)
	must(t, err, "create")
	if v1 <= 0 {
		t.Fatalf("first version %d, want > 0", v1)
	}
	_, err = s.KVPut(ctx, "users", "u1", []byte(`x`), 0)
	wantErr(t, err, state.ErrVersionMismatch, "create existing")
	val, ver, err := s.KVGet(ctx, "users", "u1")
	must(t, err, "get")
	if string(val) != `{"a":1}` || ver != v1 {
		t.Fatalf("get: %s v%d, want v%d", val, ver, v1)
	}

	// Compare-and-set.
	v2, err := s.KVPut(ctx, "users", "u1", []byte(`{"a":2}`), v1)
	must(t, err, "cas")
	if v2 <= v1 {
		t.Fatalf("version after cas %d, want > %d", v2, v1)
	}
	_, err = s.KVPut(ctx, "users", "u1", []byte(`stale`), v1)
	wantErr(t, err, state.ErrVersionMismatch, "cas with stale version")
	_, err = s.KVPut(ctx, "users", "absent", []byte(`x`), 1)
	wantErr(t, err, state.ErrVersionMismatch, "cas on absent key")

	// Unconditional.
	v3, err := s.KVPut(ctx, "users", "u1", []byte(`{"a":3}`), -1)
	must(t, err, "unconditional put")
	if v3 <= v2 {
		t.Fatalf("version after put %d, want > %d", v3, v2)
	}
	vn, err := s.KVPut(ctx, "users", "u2", []byte{0, 1, 0xfe}, -1)
	must(t, err, "unconditional create")
	if vn <= 0 {
		t.Fatalf("version %d", vn)
	}
	_, err = s.KVPut(ctx, "groups", "u1", []byte(`group`), -1)
	must(t, err, "other bucket")

	m, err = s.KVList(ctx, "users")
	must(t, err, "list")
	if len(m) != 2 || string(m["u1"]) != `{"a":3}` || string(m["u2"]) != string([]byte{0, 1, 0xfe}) {
		t.Fatalf("list: %q", m)
	}
	m, _ = s.KVList(ctx, "user")
	if len(m) != 0 {
		t.Fatalf("bucket name prefix leaked keys: %q", m)
	}

	// Delete with versions.
	err = s.KVDelete(ctx, "users", "u1", v2)
	wantErr(t, err, state.ErrVersionMismatch, "delete with stale version")
	err = s.KVDelete(ctx, "users", "u1", 0)
	wantErr(t, err, state.ErrVersionMismatch, "delete existing with version 0")
	must(t, s.KVDelete(ctx, "users", "u1", v3), "delete with version")
	_, _, err = s.KVGet(ctx, "users", "u1")
	wantErr(t, err, state.ErrNotFound, "deleted key")
	must(t, s.KVDelete(ctx, "users", "u1", -1), "delete absent unconditionally")
	err = s.KVDelete(ctx, "users", "u1", 5)
	wantErr(t, err, state.ErrVersionMismatch, "delete absent with version")
	must(t, s.KVDelete(ctx, "users", "u2", -1), "delete unconditionally")
	m, _ = s.KVList(ctx, "users")
	if len(m) != 0 {
		t.Fatalf("bucket after deletes: %q", m)
	}
	_, _, err = s.KVGet(ctx, "groups", "u1")
	must(t, err, "other bucket untouched")

	// Re-create after delete.
	v, err := s.KVPut(ctx, "users", "u1", []byte(`again`), 0)
	must(t, err, "re-create")
	if v <= 0 {
		t.Fatalf("version %d", v)
	}
}

func testKVConcurrentCAS(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const workers, incs = 4, 10
	_, err := s.KVPut(ctx, "counters", "c", []byte("0"), 0)
	must(t, err, "create counter")
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range incs {
				for {
					val, ver, err := s.KVGet(ctx, "counters", "c")
					if err != nil {
						errs <- err
						return
					}
					var n int
					fmt.Sscan(string(val), &n)
					_, err = s.KVPut(ctx, "counters", "c", fmt.Appendf(nil, "%d", n+1), ver)
					if errors.Is(err, state.ErrVersionMismatch) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	val, _, err := s.KVGet(ctx, "counters", "c")
	must(t, err, "get counter")
	if string(val) != fmt.Sprint(workers*incs) {
		t.Fatalf("counter %s, want %d: a compare-and-set lost an update", val, workers*incs)
	}
}

// waitAcquire retries AcquireLock until it succeeds (the earlier lease
// expired) or the deadline passes.
func waitAcquire(t *testing.T, s state.Store, name, owner string, ttl time.Duration) state.Lease {
	t.Helper()
	ctx := ctxT(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := s.AcquireLock(ctx, name, owner, ttl)
		if err == nil {
			return l
		}
		if !errors.Is(err, state.ErrLockHeld) || time.Now().After(deadline) {
			t.Fatalf("acquire %s for %s: %v", name, owner, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLock(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	before := time.Now()
	a, err := s.AcquireLock(ctx, "leader", "A", time.Minute)
	must(t, err, "acquire")
	if a.Name != "leader" || a.Owner != "A" || a.Token <= 0 {
		t.Fatalf("lease: %+v", a)
	}
	if a.Expires.Before(before.Add(time.Minute-time.Second)) || a.Expires.After(time.Now().Add(time.Minute+time.Second)) {
		t.Fatalf("lease expires %v, want about a minute from now", a.Expires)
	}
	if a.Fence() != (state.Fence{Lock: "leader", Token: a.Token}) {
		t.Fatalf("fence: %+v", a.Fence())
	}

	_, err = s.AcquireLock(ctx, "leader", "B", time.Minute)
	wantErr(t, err, state.ErrLockHeld, "second owner")

	// The same owner re-acquiring renews: same token, later expiry.
	a2, err := s.AcquireLock(ctx, "leader", "A", 2*time.Minute)
	must(t, err, "re-acquire")
	if a2.Token != a.Token || !a2.Expires.After(a.Expires) {
		t.Fatalf("re-acquire: %+v, first %+v", a2, a)
	}
	a3, err := s.RenewLock(ctx, a2, 3*time.Minute)
	must(t, err, "renew")
	if a3.Token != a.Token || a3.Owner != "A" || !a3.Expires.After(a2.Expires) {
		t.Fatalf("renew: %+v", a3)
	}

	// Lock names are independent.
	o, err := s.AcquireLock(ctx, "other", "B", time.Minute)
	must(t, err, "acquire another name")
	if o.Token <= 0 {
		t.Fatalf("other lease: %+v", o)
	}
	_, err = s.AcquireLock(ctx, "leader", "B", time.Minute)
	wantErr(t, err, state.ErrLockHeld, "second owner after renew")

	// A short renewal really replaces the expiry: the lease runs out.
	_, err = s.RenewLock(ctx, a3, LockTTL)
	must(t, err, "renew short")
	b := waitAcquire(t, s, "leader", "B", time.Minute)
	if b.Token <= a.Token {
		t.Fatalf("new token %d, want > %d", b.Token, a.Token)
	}
}

func testLockExpiry(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	a, err := s.AcquireLock(ctx, "leader", "A", LockTTL)
	must(t, err, "acquire")
	// Renewing with a long TTL keeps it past the short one.
	a, err = s.RenewLock(ctx, a, time.Minute)
	must(t, err, "renew long")
	time.Sleep(LockTTL + 50*time.Millisecond)
	_, err = s.AcquireLock(ctx, "leader", "B", time.Minute)
	wantErr(t, err, state.ErrLockHeld, "acquire after renewal")

	// Let it expire; another owner takes it with a higher token.
	a, err = s.RenewLock(ctx, a, LockTTL)
	must(t, err, "renew short")
	b := waitAcquire(t, s, "leader", "B", time.Minute)
	if b.Token <= a.Token {
		t.Fatalf("token after expiry %d, want > %d", b.Token, a.Token)
	}
	if b.Owner != "B" {
		t.Fatalf("lease owner %q", b.Owner)
	}
	// The old lease is lost: renewing it fails, and A cannot take it back.
	_, err = s.RenewLock(ctx, a, time.Minute)
	if !errors.Is(err, state.ErrLockHeld) && !errors.Is(err, state.ErrStaleFence) {
		t.Fatalf("renew lost lease: %v", err)
	}
	_, err = s.AcquireLock(ctx, "leader", "A", time.Minute)
	wantErr(t, err, state.ErrLockHeld, "old owner re-acquire")
	// B still holds it.
	b2, err := s.RenewLock(ctx, b, time.Minute)
	must(t, err, "renew current")
	if b2.Token != b.Token {
		t.Fatalf("renewed token %d, want %d", b2.Token, b.Token)
	}

	// An expired lease nobody took can be renewed, keeping its token.
	c, err := s.AcquireLock(ctx, "solo", "C", LockTTL)
	must(t, err, "acquire solo")
	time.Sleep(LockTTL + 50*time.Millisecond)
	c2, err := s.RenewLock(ctx, c, time.Minute)
	must(t, err, "renew expired but untaken lease")
	if c2.Token != c.Token {
		t.Fatalf("renewed token %d, want %d", c2.Token, c.Token)
	}
	_, err = s.AcquireLock(ctx, "solo", "D", time.Minute)
	wantErr(t, err, state.ErrLockHeld, "acquire after renewing an expired lease")
}

func testLockRelease(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	a, err := s.AcquireLock(ctx, "leader", "A", LockTTL)
	must(t, err, "acquire")
	b := waitAcquire(t, s, "leader", "B", time.Minute)

	// A's release must not release B's lease.
	must(t, s.ReleaseLock(ctx, a), "release lost lease")
	_, err = s.AcquireLock(ctx, "leader", "C", time.Minute)
	wantErr(t, err, state.ErrLockHeld, "acquire after foreign release")

	// B's release frees it at once, and the next token is higher still.
	must(t, s.ReleaseLock(ctx, b), "release")
	c, err := s.AcquireLock(ctx, "leader", "C", time.Minute)
	must(t, err, "acquire after release")
	if c.Token <= b.Token || b.Token <= a.Token {
		t.Fatalf("tokens %d, %d, %d: want increasing", a.Token, b.Token, c.Token)
	}
	// Releasing twice, or a lock never taken, is harmless.
	must(t, s.ReleaseLock(ctx, b), "release again")
	must(t, s.ReleaseLock(ctx, state.Lease{Name: "never", Owner: "X", Token: 1}), "release unknown")
	_, err = s.AcquireLock(ctx, "leader", "D", time.Minute)
	wantErr(t, err, state.ErrLockHeld, "C still holds it")
}

func testLockConcurrent(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []state.Lease
	for i := range n {
		wg.Go(func() {
			l, err := s.AcquireLock(ctx, "leader", fmt.Sprintf("owner-%d", i), time.Minute)
			if err == nil {
				mu.Lock()
				won = append(won, l)
				mu.Unlock()
			} else if !errors.Is(err, state.ErrLockHeld) {
				t.Errorf("acquire: %v", err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d owners got the lock at once, want exactly 1: %+v", len(won), won)
	}
}

func testFencing(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	old, err := s.AcquireLock(ctx, "leader", "A", LockTTL)
	must(t, err, "acquire")
	f := old.Fence()
	must(t, s.PutAccount(ctx, f, "netmaker", identity.Account{Key: "k1", Username: "jo", Exists: true}), "fenced put")
	must(t, s.PutAccount(ctx, f, "netmaker", identity.Account{Key: "k2", Username: "al", Exists: true}), "fenced put 2")
	must(t, s.PutHeld(ctx, f, "run-1", []byte(`{}`)), "fenced put held")
	must(t, s.PutHeld(ctx, f, "run-2", []byte(`{}`)), "fenced put held 2")

	// A token never issued is refused.
	bad := state.Fence{Lock: "leader", Token: old.Token + 1000}
	wantErr(t, s.PutAccount(ctx, bad, "netmaker", identity.Account{Key: "k3"}), state.ErrStaleFence, "unknown token")
	wantErr(t, s.PutAccount(ctx, state.Fence{Token: old.Token}, "netmaker", identity.Account{Key: "k3"}), state.ErrStaleFence, "token without lock name")

	// An expired lease nobody replaced still fences (no newer leader).
	time.Sleep(LockTTL + 50*time.Millisecond)
	must(t, s.PutAccount(ctx, f, "netmaker", identity.Account{Key: "k1", Username: "jo2", Exists: true}), "put after expiry, nobody else")

	cur := waitAcquire(t, s, "leader", "B", time.Minute)
	stale := f
	wantErr(t, s.PutAccount(ctx, stale, "netmaker", identity.Account{Key: "k1", Username: "stale"}), state.ErrStaleFence, "stale put account")
	wantErr(t, s.PutAccount(ctx, stale, "netmaker", identity.Account{Key: "k9", Username: "stale"}), state.ErrStaleFence, "stale create account")
	wantErr(t, s.DeleteAccount(ctx, stale, "netmaker", "k2"), state.ErrStaleFence, "stale delete account")
	wantErr(t, s.PutHeld(ctx, stale, "run-1", []byte(`stale`)), state.ErrStaleFence, "stale put held")
	wantErr(t, s.PutHeld(ctx, stale, "run-3", []byte(`stale`)), state.ErrStaleFence, "stale create held")
	wantErr(t, s.DeleteHeld(ctx, stale, "run-2"), state.ErrStaleFence, "stale delete held")
	wantErr(t, s.PutAccount(ctx, state.Fence{}, "netmaker", identity.Account{Key: "k1"}), state.ErrStaleFence, "zero fence after a lock was taken")
	wantErr(t, s.PutAccount(ctx, state.Fence{Lock: "leader"}, "netmaker", identity.Account{Key: "k1"}), state.ErrStaleFence, "token 0 for a taken lock")

	// Nothing changed.
	accts, err := s.Accounts(ctx, "netmaker")
	must(t, err, "accounts")
	if len(accts) != 2 || accts["k1"].Username != "jo2" || accts["k2"].Username != "al" {
		t.Fatalf("accounts after refused writes: %+v", accts)
	}
	p, err := s.GetHeld(ctx, "run-1")
	must(t, err, "held")
	if string(p) != `{}` {
		t.Fatalf("held plan after refused write: %s", p)
	}
	ids, _ := s.HeldRuns(ctx)
	if sort.Strings(ids); !slices.Equal(ids, []string{"run-1", "run-2"}) {
		t.Fatalf("held runs after refused writes: %v", ids)
	}

	// The current holder's token works.
	g := cur.Fence()
	must(t, s.PutAccount(ctx, g, "netmaker", identity.Account{Key: "k1", Username: "new"}), "current put")
	must(t, s.DeleteAccount(ctx, g, "netmaker", "k2"), "current delete")
	must(t, s.PutHeld(ctx, g, "run-3", []byte(`new`)), "current put held")
	must(t, s.DeleteHeld(ctx, g, "run-2"), "current delete held")
	accts, _ = s.Accounts(ctx, "netmaker")
	if len(accts) != 1 || accts["k1"].Username != "new" {
		t.Fatalf("accounts after current writes: %+v", accts)
	}
	ids, _ = s.HeldRuns(ctx)
	if sort.Strings(ids); !slices.Equal(ids, []string{"run-1", "run-3"}) {
		t.Fatalf("held runs after current writes: %v", ids)
	}
	// Renewal keeps the token valid.
	cur, err = s.RenewLock(ctx, cur, time.Minute)
	must(t, err, "renew")
	must(t, s.PutAccount(ctx, cur.Fence(), "netmaker", identity.Account{Key: "k4"}), "put after renew")
}

func testZeroFence(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	// No lock ever taken: the zero fence and a token-0 fence are accepted.
	must(t, s.PutAccount(ctx, state.Fence{}, "t", identity.Account{Key: "k1"}), "zero fence on a fresh store")
	must(t, s.PutAccount(ctx, state.Fence{Lock: "leader"}, "t", identity.Account{Key: "k2"}), "token 0 on a fresh store")

	// Taking lock "other" refuses the zero fence but not token 0 for "leader".
	o, err := s.AcquireLock(ctx, "other", "A", time.Minute)
	must(t, err, "acquire other")
	wantErr(t, s.PutAccount(ctx, state.Fence{}, "t", identity.Account{Key: "k3"}), state.ErrStaleFence, "zero fence after a lock")
	wantErr(t, s.DeleteAccount(ctx, state.Fence{}, "t", "k1"), state.ErrStaleFence, "zero fence delete after a lock")
	wantErr(t, s.PutHeld(ctx, state.Fence{}, "r", nil), state.ErrStaleFence, "zero fence put held after a lock")
	wantErr(t, s.DeleteHeld(ctx, state.Fence{}, "r"), state.ErrStaleFence, "zero fence delete held after a lock")
	must(t, s.PutAccount(ctx, state.Fence{Lock: "leader"}, "t", identity.Account{Key: "k4"}), "token 0 for a never-taken lock")

	// Releasing does not bring the unfenced mode back.
	must(t, s.ReleaseLock(ctx, o), "release")
	wantErr(t, s.PutAccount(ctx, state.Fence{}, "t", identity.Account{Key: "k5"}), state.ErrStaleFence, "zero fence after release")
	wantErr(t, s.PutAccount(ctx, state.Fence{Lock: "other"}, "t", identity.Account{Key: "k5"}), state.ErrStaleFence, "token 0 after release")

	accts, _ := s.Accounts(ctx, "t")
	if len(accts) != 3 {
		t.Fatalf("accounts: %v", accts)
	}
}

func testConcurrentPutAccount(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	l, err := s.AcquireLock(ctx, "leader", "A", time.Minute)
	must(t, err, "acquire")
	const workers, per = 8, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				key := fmt.Sprintf("w%d-%d", w, i)
				if err := s.PutAccount(ctx, l.Fence(), []string{"t1", "t2"}[w%2], identity.Account{Key: key, Username: key, Exists: true}); err != nil {
					t.Errorf("put %s: %v", key, err)
					return
				}
				if i%5 == 4 {
					if _, err := s.Accounts(ctx, "t1"); err != nil {
						t.Errorf("accounts: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, target := range []string{"t1", "t2"} {
		accts, err := s.Accounts(ctx, target)
		must(t, err, "accounts")
		if len(accts) != workers/2*per {
			t.Fatalf("%s: %d accounts, want %d", target, len(accts), workers/2*per)
		}
	}
}

// BenchAccount returns a realistic cached account number i, for benchmarks
// and bulk fixtures.
func BenchAccount(i int) identity.Account {
	key := fmt.Sprintf("3f2504e0-4f89-11d3-9a0c-%012d", i)
	user := fmt.Sprintf("user%06d", i)
	return identity.Account{
		Key: key, Username: user, Email: user + "@example.com", GivenName: "Given",
		FamilyName: fmt.Sprintf("Family%d", i), DisplayName: fmt.Sprintf("Given Family%d", i),
		Role: "user", Groups: []string{"staff", fmt.Sprintf("team-%d", i%100)},
		Remote: map[string]string{"uuid": key}, Exists: true,
	}
}

func testLinksAndFencedSnapshots(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	got, err := s.Links(ctx)
	must(t, err, "links of an empty store")
	if len(got) != 0 {
		t.Fatalf("empty link table: %v", got)
	}
	must(t, s.PutLinks(ctx, state.Fence{}, map[string]string{"ad:g1": "g1", "idp:s1": "g1"}), "put links")
	must(t, s.PutLinks(ctx, state.Fence{}, map[string]string{"ad:g2": "g2"}), "add a link")
	got, err = s.Links(ctx)
	must(t, err, "links")
	sameJSON(t, "links", got, map[string]string{"ad:g1": "g1", "idp:s1": "g1", "ad:g2": "g2"})

	// Once a leader exists, only its fence writes links and snapshots.
	a, err := s.AcquireLock(ctx, "leader", "A", time.Minute)
	must(t, err, "acquire")
	snap := &identity.Snapshot{Source: "ad", TakenAt: base, Users: []identity.User{{Key: "g1", Active: true}}}
	wantErr(t, s.PutSnapshot(ctx, state.Fence{Lock: "leader", Token: a.Token - 1}, snap), state.ErrStaleFence, "stale snapshot write")
	wantErr(t, s.PutLinks(ctx, state.Fence{Lock: "leader", Token: a.Token - 1}, map[string]string{"x:y": "z"}), state.ErrStaleFence, "stale link write")
	must(t, s.PutSnapshot(ctx, a.Fence(), snap), "leader snapshot write")
	must(t, s.PutLinks(ctx, a.Fence(), map[string]string{"ad:g3": "g3"}), "leader link write")
	got, err = s.Links(ctx)
	must(t, err, "links")
	if got["ad:g3"] != "g3" || got["x:y"] != "" {
		t.Fatalf("links after fenced writes: %v", got)
	}
}
