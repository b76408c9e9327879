package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
)

// Secondary indexes over KV buckets (state.IndexedKV) live in the top-level
// bucket "kvix": one nested bucket per KV bucket, in it one nested bucket
// per index whose keys are the entries (Term + "\x00" + key, empty values),
// and the bucket "\x00n" holding each index's entry count. Entries change in
// the same transaction as the value.
//
// A B+tree has no ranks, so an offset costs a walk over the skipped
// entries and a bounded count a walk over the range. Both are cached per
// range (the entry at an offset, the count) and valid while the bucket's
// index generation is unchanged: paging through a range in order costs one
// page per request, and the count of a range is walked once, not per page.
// An unbounded range's count is the stored counter.

var (
	bKVIndex = []byte("kvix")
	bCounts  = []byte("\x00n")
)

var _ state.IndexedKV = (*Store)(nil)

// ixCache remembers, per index range, the entry found at an offset and the
// range's count, tagged with the bucket's index generation.
type ixCache struct {
	mu     sync.Mutex
	gen    map[string]uint64 // KV bucket → index generation
	pos    map[posKey][]byte // entry at an offset
	counts map[rangeKey]int
}

type rangeKey struct {
	bucket, index, lo, hi string
	gen                   uint64
}

type posKey struct {
	rangeKey
	offset int
}

const ixCacheMax = 4096

func newIxCache() *ixCache {
	return &ixCache{gen: map[string]uint64{}, pos: map[posKey][]byte{}, counts: map[rangeKey]int{}}
}

// bump moves a bucket to a new generation. Writers bump inside the
// transaction and again after the commit, so a reader whose transaction
// overlapped a write sees two different generations and caches nothing.
func (c *ixCache) bump(bucket string) {
	c.mu.Lock()
	c.gen[bucket]++
	c.mu.Unlock()
}

func (c *ixCache) generation(bucket string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen[bucket]
}

func (c *ixCache) put(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pos)+len(c.counts) > ixCacheMax {
		clear(c.pos)
		clear(c.counts)
	}
	f()
}

func ixBuckets(tx *bbolt.Tx, bucket string, create bool) (*bbolt.Bucket, error) {
	root := tx.Bucket(bKVIndex)
	if root == nil {
		if !create {
			return nil, nil
		}
		var err error
		if root, err = tx.CreateBucket(bKVIndex); err != nil {
			return nil, err
		}
	}
	if !create {
		return root.Bucket([]byte(bucket)), nil
	}
	return root.CreateBucketIfNotExists([]byte(bucket))
}

// ixApply removes del and adds add (entries of key), keeping the counters.
func ixApply(tx *bbolt.Tx, bucket, key string, del, add []state.IndexEntry) error {
	if len(del)+len(add) == 0 {
		return nil
	}
	// In key order, bulk changes (a group's 10,000 new members) walk the
	// B+tree's pages in order instead of at random.
	byKey := func(a, b state.IndexEntry) int {
		if c := strings.Compare(a.Index, b.Index); c != 0 {
			return c
		}
		return strings.Compare(a.Term, b.Term)
	}
	del = slices.SortedFunc(slices.Values(del), byKey)
	add = slices.SortedFunc(slices.Values(add), byKey)
	b, err := ixBuckets(tx, bucket, true)
	if err != nil {
		return err
	}
	counts, err := b.CreateBucketIfNotExists(bCounts)
	if err != nil {
		return err
	}
	delta := map[string]int64{}
	for _, e := range del {
		ib := b.Bucket([]byte(e.Index))
		if ib == nil {
			continue
		}
		ek := []byte(memstore.EntryKey(e.Term, key))
		if ib.Get(ek) == nil {
			continue
		}
		if err := ib.Delete(ek); err != nil {
			return err
		}
		delta[e.Index]--
	}
	for _, e := range add {
		ib, err := b.CreateBucketIfNotExists([]byte(e.Index))
		if err != nil {
			return err
		}
		ek := []byte(memstore.EntryKey(e.Term, key))
		if ib.Get(ek) != nil {
			continue
		}
		if err := ib.Put(ek, []byte{}); err != nil {
			return err
		}
		delta[e.Index]++
	}
	for idx, d := range delta {
		if d == 0 {
			continue
		}
		n := int64(0)
		if v := counts.Get([]byte(idx)); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		if err := counts.Put([]byte(idx), u64(uint64(n+d))); err != nil {
			return err
		}
	}
	return nil
}

// KVPutIndexed writes a value and its index entries; see state.IndexedKV.
// Concurrent writers share one commit (bbolt's Batch).
func (s *Store) KVPutIndexed(ctx context.Context, bucket, key string, val []byte, ifVersion int64, del, add []state.IndexEntry) (int64, error) {
	if bucket == "" || key == "" || ifVersion < 0 {
		return 0, fmt.Errorf("bolt: kv put indexed %s/%s: empty bucket or key, or ifVersion < 0", bucket, key)
	}
	if err := memstore.CheckEntries(append(append([]state.IndexEntry(nil), del...), add...)); err != nil {
		return 0, fmt.Errorf("bolt: kv put indexed %s/%s: %w", bucket, key, err)
	}
	nv, err := s.kvPut(bucket, key, val, ifVersion, func(tx *bbolt.Tx) error {
		s.ixc.bump(bucket)
		return ixApply(tx, bucket, key, del, add)
	})
	s.ixc.bump(bucket)
	return nv, err
}

// KVDeleteIndexed deletes a value and its index entries; see state.IndexedKV.
func (s *Store) KVDeleteIndexed(ctx context.Context, bucket, key string, ifVersion int64, del []state.IndexEntry) error {
	if ifVersion <= 0 {
		return fmt.Errorf("bolt: kv delete indexed %s/%s: ifVersion must be > 0", bucket, key)
	}
	err := s.kvDelete(bucket, key, ifVersion, func(tx *bbolt.Tx) error {
		s.ixc.bump(bucket)
		return ixApply(tx, bucket, key, del, nil)
	})
	s.ixc.bump(bucket)
	return err
}

// KVIndexAdd adds entries while key is at version; see state.IndexedKV.
func (s *Store) KVIndexAdd(ctx context.Context, bucket, key string, version int64, add []state.IndexEntry) (bool, error) {
	if err := memstore.CheckEntries(add); err != nil {
		return false, fmt.Errorf("bolt: kv index add %s/%s: %w", bucket, key, err)
	}
	added := false
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		added = false
		b := tx.Bucket(bKV).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		old := b.Get([]byte(key))
		if old == nil {
			return nil
		}
		_, cur, err := kvDecode(old)
		if err != nil || cur != version {
			return err
		}
		s.ixc.bump(bucket)
		added = true
		return ixApply(tx, bucket, key, nil, add)
	})
	s.ixc.bump(bucket)
	if err != nil {
		return false, fmt.Errorf("bolt: kv index add %s/%s: %w", bucket, key, err)
	}
	return added, nil
}

// KVIndexDrop removes one index of a bucket; see state.IndexedKV.
func (s *Store) KVIndexDrop(ctx context.Context, bucket, index string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := ixBuckets(tx, bucket, false)
		if err != nil || b == nil {
			return err
		}
		s.ixc.bump(bucket)
		if err := b.DeleteBucket([]byte(index)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		if c := b.Bucket(bCounts); c != nil {
			return c.Delete([]byte(index))
		}
		return nil
	})
	s.ixc.bump(bucket)
	if err != nil {
		return fmt.Errorf("bolt: kv index drop %s/%s: %w", bucket, index, err)
	}
	return nil
}

// KVRange counts and reads a range of an index; see state.IndexedKV.
func (s *Store) KVRange(ctx context.Context, bucket string, r state.IndexRange, offset, limit int) (int, []state.KVItem, error) {
	offset = max(offset, 0)
	gen := s.ixc.generation(bucket)
	rk := rangeKey{bucket: bucket, index: r.Index, lo: r.Lo, hi: r.Hi, gen: gen}
	var (
		total    int
		items    []state.KVItem
		next     []byte // entry at offset+len(items), to cache
		counted  bool
		countNew bool
	)
	s.ixc.mu.Lock()
	if n, ok := s.ixc.counts[rk]; ok {
		total, counted = n, true
	}
	start, haveStart := s.ixc.pos[posKey{rk, offset}]
	s.ixc.mu.Unlock()
	hi := []byte(r.Hi)
	inRange := func(k []byte) bool { return k != nil && (len(hi) == 0 || bytes.Compare(k, hi) < 0) }
	err := s.db.View(func(tx *bbolt.Tx) error {
		b, err := ixBuckets(tx, bucket, false)
		if err != nil || b == nil {
			counted = true
			total = 0
			return err
		}
		ib := b.Bucket([]byte(r.Index))
		if ib == nil {
			counted = true
			total = 0
			return nil
		}
		if !counted && r.Lo == "" && r.Hi == "" {
			if v := b.Bucket(bCounts).Get([]byte(r.Index)); len(v) == 8 {
				total, counted = int(binary.BigEndian.Uint64(v)), true
			}
		}
		c := ib.Cursor()
		var k []byte
		if haveStart {
			k, _ = c.Seek(start)
		} else {
			k, _ = c.Seek([]byte(r.Lo))
			for i := 0; i < offset && inRange(k); i++ {
				k, _ = c.Next()
			}
		}
		kv := tx.Bucket(bKV).Bucket([]byte(bucket))
		for ; inRange(k) && len(items) < limit; k, _ = c.Next() {
			key := memstore.EntryOwner(string(k))
			var raw []byte
			if kv != nil {
				raw = kv.Get([]byte(key))
			}
			if raw == nil {
				continue
			}
			val, ver, err := kvDecode(raw)
			if err != nil {
				return fmt.Errorf("key %q: %w", key, err)
			}
			it := state.KVItem{Key: key, Version: ver}
			if !r.KeysOnly {
				it.Val = val
			}
			items = append(items, it)
		}
		if inRange(k) {
			next = bytes.Clone(k)
		}
		if !counted {
			n := 0
			for k, _ := c.Seek([]byte(r.Lo)); inRange(k); k, _ = c.Next() {
				n++
			}
			total, countNew = n, true
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("bolt: kv range %s/%s: %w", bucket, r.Index, err)
	}
	if s.ixc.generation(bucket) == gen {
		s.ixc.put(func() {
			if countNew {
				s.ixc.counts[rk] = total
			}
			if next != nil && limit > 0 {
				s.ixc.pos[posKey{rk, offset + len(items)}] = next
			}
		})
	}
	return total, items, nil
}
