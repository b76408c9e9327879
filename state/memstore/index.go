package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/state"
)

var _ state.IndexedKV = (*Store)(nil)

// Index entries are kept per bucket and index as a sorted slice: inserts
// cost a copy of the slice's tail, lookups a binary search. Enough for
// tests and single-process tools.

// EntryKey returns the stored form of an index entry of key:
// Term + "\x00" + key (shared by the backends).
func EntryKey(term, key string) string { return term + "\x00" + key }

// EntryOwner returns the key an entry's stored form belongs to.
func EntryOwner(e string) string {
	_, k, _ := strings.Cut(e, "\x00")
	return k
}

// CheckEntries rejects index entries a backend cannot store.
func CheckEntries(es []state.IndexEntry) error {
	for _, e := range es {
		if e.Index == "" || strings.IndexByte(e.Term, 0) >= 0 || strings.IndexByte(e.Index, 0) >= 0 {
			return fmt.Errorf("invalid index entry %q/%q: empty index name or a zero byte", e.Index, e.Term)
		}
	}
	return nil
}

func (s *Store) ixApply(bucket, key string, del, add []state.IndexEntry) {
	b := s.ix[bucket]
	if b == nil {
		b = map[string][]string{}
		s.ix[bucket] = b
	}
	drop := map[string]map[string]bool{}
	for _, e := range del {
		if drop[e.Index] == nil {
			drop[e.Index] = map[string]bool{}
		}
		drop[e.Index][EntryKey(e.Term, key)] = true
	}
	put := map[string][]string{}
	for _, e := range add {
		put[e.Index] = append(put[e.Index], EntryKey(e.Term, key))
	}
	for index, d := range drop {
		if len(d) < 8 {
			for ek := range d {
				l := b[index]
				if i, ok := slices.BinarySearch(l, ek); ok {
					b[index] = slices.Delete(l, i, i+1)
				}
			}
			continue
		}
		// Many removals: one pass instead of one copy each.
		b[index] = slices.DeleteFunc(b[index], func(e string) bool { return d[e] })
	}
	for index, ps := range put {
		l := b[index]
		if len(ps) < 8 {
			for _, ek := range ps {
				if i, ok := slices.BinarySearch(l, ek); !ok {
					l = slices.Insert(l, i, ek)
				}
			}
			b[index] = l
			continue
		}
		// Many additions: sort them and merge in one pass.
		slices.Sort(ps)
		ps = slices.Compact(ps)
		out := make([]string, 0, len(l)+len(ps))
		i, j := 0, 0
		for i < len(l) || j < len(ps) {
			switch {
			case j == len(ps) || i < len(l) && l[i] < ps[j]:
				out = append(out, l[i])
				i++
			case i == len(l) || ps[j] < l[i]:
				out = append(out, ps[j])
				j++
			default: // already there
				out = append(out, l[i])
				i++
				j++
			}
		}
		b[index] = out
	}
}

// KVPutIndexed writes a value and its index entries; see state.IndexedKV.
func (s *Store) KVPutIndexed(ctx context.Context, bucket, key string, val []byte, ifVersion int64, del, add []state.IndexEntry) (int64, error) {
	if ifVersion < 0 {
		return 0, fmt.Errorf("memstore: kv put indexed %s/%s: ifVersion must be >= 0", bucket, key)
	}
	if err := CheckEntries(append(slices.Clip(del), add...)); err != nil {
		return 0, fmt.Errorf("memstore: kv put indexed %s/%s: %w", bucket, key, err)
	}
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	v, err := s.putLocked(bucket, key, val, ifVersion)
	if err == nil {
		s.ixApply(bucket, key, del, add)
	}
	return v, err
}

// KVDeleteIndexed deletes a value and its index entries; see state.IndexedKV.
func (s *Store) KVDeleteIndexed(ctx context.Context, bucket, key string, ifVersion int64, del []state.IndexEntry) error {
	if ifVersion <= 0 {
		return fmt.Errorf("memstore: kv delete indexed %s/%s: ifVersion must be > 0", bucket, key)
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	cur, ok := s.kv[bucket][key]
	if err := CheckVersion(cur.version, ok, ifVersion); err != nil {
		return fmt.Errorf("memstore: kv delete %s/%s: %w", bucket, key, err)
	}
	delete(s.kv[bucket], key)
	s.ixApply(bucket, key, del, nil)
	return nil
}

// KVIndexAdd adds entries while key is at version; see state.IndexedKV.
func (s *Store) KVIndexAdd(ctx context.Context, bucket, key string, version int64, add []state.IndexEntry) (bool, error) {
	if err := CheckEntries(add); err != nil {
		return false, fmt.Errorf("memstore: kv index add %s/%s: %w", bucket, key, err)
	}
	if err := s.lock(); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	cur, ok := s.kv[bucket][key]
	if !ok || cur.version != version {
		return false, nil
	}
	s.ixApply(bucket, key, nil, add)
	return true, nil
}

// KVIndexDrop removes one index of a bucket; see state.IndexedKV.
func (s *Store) KVIndexDrop(ctx context.Context, bucket, index string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.ix[bucket], index)
	return nil
}

// KVRange counts and reads a range of an index; see state.IndexedKV.
func (s *Store) KVRange(ctx context.Context, bucket string, r state.IndexRange, offset, limit int) (int, []state.KVItem, error) {
	if err := s.lock(); err != nil {
		return 0, nil, err
	}
	defer s.mu.Unlock()
	l := s.ix[bucket][r.Index]
	from, _ := slices.BinarySearch(l, r.Lo)
	to := len(l)
	if r.Hi != "" {
		to, _ = slices.BinarySearch(l, r.Hi)
	}
	if to < from {
		to = from
	}
	total := to - from
	var items []state.KVItem
	for i := from + max(offset, 0); i < to && len(items) < limit; i++ {
		k := EntryOwner(l[i])
		e, ok := s.kv[bucket][k]
		if !ok {
			continue
		}
		it := state.KVItem{Key: k, Version: e.version}
		if !r.KeysOnly {
			it.Val = slices.Clone(e.val)
		}
		items = append(items, it)
	}
	return total, items, nil
}
