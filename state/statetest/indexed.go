package statetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/dirsync/dirsync/state"
)

// testIndexedKV checks the optional sorted secondary indexes: entries
// change atomically with the value, ranges count and page in entry order,
// a lost compare-and-set changes no entry, rebuilds add only for the
// version read, and drops empty an index.
func testIndexedKV(t *testing.T, s state.Store) {
	ix, ok := s.(state.IndexedKV)
	if !ok {
		t.Skip("store has no secondary indexes")
	}
	ctx := ctxT(t)
	e := func(index, term string) state.IndexEntry { return state.IndexEntry{Index: index, Term: term} }
	keys := func(items []state.KVItem) []string {
		out := []string{}
		for _, it := range items {
			out = append(out, it.Key)
		}
		return out
	}
	rangeOf := func(r state.IndexRange, off, lim int) (int, []string) {
		t.Helper()
		n, items, err := ix.KVRange(ctx, "b", r, off, lim)
		must(t, err, "range")
		return n, keys(items)
	}
	// k1..k5 with names n5..n1 (reverse order) and a shared tag.
	vers := map[string]int64{}
	for i := 1; i <= 5; i++ {
		k := fmt.Sprintf("k%d", i)
		v, err := ix.KVPutIndexed(ctx, "b", k, []byte("v"+k), 0, nil,
			[]state.IndexEntry{e("name", fmt.Sprintf("n%d", 6-i)), e("tag", "x")})
		must(t, err, "put indexed")
		vers[k] = v
	}
	n, got := rangeOf(state.IndexRange{Index: "name"}, 0, 10)
	sameJSON(t, "all by name", []any{n, got}, []any{5, []string{"k5", "k4", "k3", "k2", "k1"}})
	n, got = rangeOf(state.IndexRange{Index: "name"}, 1, 2)
	sameJSON(t, "page", []any{n, got}, []any{5, []string{"k4", "k3"}})
	n, got = rangeOf(state.IndexRange{Index: "name", Lo: "n2\x00", Hi: "n4\x01"}, 0, 10)
	sameJSON(t, "bounded", []any{n, got}, []any{3, []string{"k4", "k3", "k2"}})
	n, got = rangeOf(state.IndexRange{Index: "name", Lo: "n2\x00", Hi: "n4\x01"}, 2, 10)
	sameJSON(t, "bounded offset", []any{n, got}, []any{3, []string{"k2"}})
	n, got = rangeOf(state.IndexRange{Index: "tag", Lo: "x\x00", Hi: "x\x01"}, 0, 0)
	sameJSON(t, "count only", []any{n, got}, []any{5, []string{}})
	n, got = rangeOf(state.IndexRange{Index: "tag", Lo: "y"}, 0, 10)
	sameJSON(t, "empty", []any{n, got}, []any{0, []string{}})
	_, items, err := ix.KVRange(ctx, "b", state.IndexRange{Index: "name", Lo: "n1\x00", Hi: "n1\x01"}, 0, 1)
	must(t, err, "range values")
	if len(items) != 1 || string(items[0].Val) != "vk5" || items[0].Version != vers["k5"] {
		t.Fatalf("range item = %+v, want k5 with value and version", items)
	}
	_, items, _ = ix.KVRange(ctx, "b", state.IndexRange{Index: "name", Lo: "n1\x00", Hi: "n1\x01", KeysOnly: true}, 0, 1)
	if len(items) != 1 || len(items[0].Val) != 0 {
		t.Fatalf("keys-only item = %+v", items)
	}

	// Rename k1 n5 → a0; a stale version changes nothing.
	_, err = ix.KVPutIndexed(ctx, "b", "k1", []byte("stale"), vers["k1"]+7, []state.IndexEntry{e("name", "n5")}, []state.IndexEntry{e("name", "zz")})
	if !errors.Is(err, state.ErrVersionMismatch) {
		t.Fatalf("stale put: %v", err)
	}
	v, err := ix.KVPutIndexed(ctx, "b", "k1", []byte("vk1b"), vers["k1"], []state.IndexEntry{e("name", "n5")}, []state.IndexEntry{e("name", "a0")})
	must(t, err, "rename")
	vers["k1"] = v
	_, got = rangeOf(state.IndexRange{Index: "name"}, 0, 10)
	sameJSON(t, "after rename", got, []string{"k1", "k5", "k4", "k3", "k2"})

	// A page read, a write that shifts the order, the next page: no stale
	// position or count survives the write.
	_, got = rangeOf(state.IndexRange{Index: "name"}, 0, 2)
	sameJSON(t, "first page", got, []string{"k1", "k5"})
	v0, err := ix.KVPutIndexed(ctx, "b", "k0", []byte("vk0"), 0, nil, []state.IndexEntry{e("name", "a00"), e("tag", "x")})
	must(t, err, "insert first")
	n, got = rangeOf(state.IndexRange{Index: "name"}, 2, 2)
	sameJSON(t, "next page after insert", []any{n, got}, []any{6, []string{"k5", "k4"}})
	n, _ = rangeOf(state.IndexRange{Index: "tag", Lo: "x\x00", Hi: "x\x01"}, 0, 0)
	must(t, ix.KVDeleteIndexed(ctx, "b", "k0", v0, []state.IndexEntry{e("name", "a00"), e("tag", "x")}), "delete k0")
	n2, _ := rangeOf(state.IndexRange{Index: "tag", Lo: "x\x00", Hi: "x\x01"}, 0, 0)
	if n != 6 || n2 != 5 {
		t.Fatalf("counts around a delete: %d then %d, want 6 then 5", n, n2)
	}

	// Delete k3 with its entries.
	err = ix.KVDeleteIndexed(ctx, "b", "k3", vers["k3"]+1, []state.IndexEntry{e("name", "n3"), e("tag", "x")})
	if !errors.Is(err, state.ErrVersionMismatch) {
		t.Fatalf("stale delete: %v", err)
	}
	must(t, ix.KVDeleteIndexed(ctx, "b", "k3", vers["k3"], []state.IndexEntry{e("name", "n3"), e("tag", "x")}), "delete")
	n, got = rangeOf(state.IndexRange{Index: "tag"}, 0, 10)
	slices.Sort(got)
	sameJSON(t, "tag after delete", []any{n, got}, []any{4, []string{"k1", "k2", "k4", "k5"}})
	if _, _, err := s.KVGet(ctx, "b", "k3"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleted value still there: %v", err)
	}

	// Rebuild: drop, then add only for the version read.
	must(t, ix.KVIndexDrop(ctx, "b", "tag"), "drop")
	n, _ = rangeOf(state.IndexRange{Index: "tag"}, 0, 10)
	if n != 0 {
		t.Fatalf("dropped index still has %d entries", n)
	}
	added, err := ix.KVIndexAdd(ctx, "b", "k2", vers["k2"], []state.IndexEntry{e("tag", "y")})
	must(t, err, "index add")
	stale, err := ix.KVIndexAdd(ctx, "b", "k4", vers["k4"]+1, []state.IndexEntry{e("tag", "y")})
	must(t, err, "index add stale")
	gone, err := ix.KVIndexAdd(ctx, "b", "k3", 1, []state.IndexEntry{e("tag", "y")})
	must(t, err, "index add absent")
	if !added || stale || gone {
		t.Fatalf("index add = %v, stale %v, absent %v; want true, false, false", added, stale, gone)
	}
	n, got = rangeOf(state.IndexRange{Index: "tag"}, 0, 10)
	sameJSON(t, "rebuilt", []any{n, got}, []any{1, []string{"k2"}})
	// Other buckets are separate; the name index is untouched.
	n, _ = rangeOf(state.IndexRange{Index: "name"}, 0, 10)
	if n != 4 {
		t.Fatalf("name index has %d entries, want 4", n)
	}
	if n, _, err := ix.KVRange(ctx, "other", state.IndexRange{Index: "name"}, 0, 10); err != nil || n != 0 {
		t.Fatalf("other bucket: %d, %v", n, err)
	}
	if _, err := ix.KVPutIndexed(ctx, "b", "k9", nil, 0, nil, []state.IndexEntry{e("name", "bad\x00term")}); err == nil {
		t.Fatal("a term with a zero byte was accepted")
	}
}
