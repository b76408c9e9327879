package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
)

// Secondary indexes over KV buckets (state.IndexedKV): one sorted set per
// bucket and index, every member scored 0 so the set is ordered by the
// member (Term + "\x00" + key), changed by the same script as the value.
// Counting a range is ZLEXCOUNT and a page is read by rank (ZRANGE), both
// O(log n), so no page costs more because the tenant is larger.

var _ state.IndexedKV = (*Store)(nil)

// ixKey is the sorted set of one index. It carries the bucket hash's key
// as its hash tag, so in a cluster it lives in the same slot as the hash
// (the scripts touch both).
func (s *Store) ixKey(bucket, index string) string {
	h := s.kvKey(bucket)
	if strings.ContainsAny(h, "{}") {
		return h + ":ix:" + index
	}
	return "{" + h + "}:ix:" + index
}

// ixArgs builds the KEYS (bucket hash, then each index's set) and the ARGV
// tail (removal count, then KEYS-position/entry pairs) of an edit.
func (s *Store) ixArgs(bucket, key string, del, add []state.IndexEntry) ([]string, []any) {
	keys := []string{s.kvKey(bucket)}
	pos := map[string]int{}
	slot := func(index string) int {
		if p, ok := pos[index]; ok {
			return p
		}
		keys = append(keys, s.ixKey(bucket, index))
		pos[index] = len(keys)
		return pos[index]
	}
	args := make([]any, 0, 1+2*(len(del)+len(add)))
	args = append(args, len(del))
	for _, e := range del {
		args = append(args, slot(e.Index), memstore.EntryKey(e.Term, key))
	}
	for _, e := range add {
		args = append(args, slot(e.Index), memstore.EntryKey(e.Term, key))
	}
	return keys, args
}

// KVPutIndexed writes a value and its index entries; see state.IndexedKV.
func (s *Store) KVPutIndexed(ctx context.Context, bucket, key string, val []byte, ifVersion int64, del, add []state.IndexEntry) (int64, error) {
	if bucket == "" || key == "" || ifVersion < 0 {
		return 0, fmt.Errorf("redisstore: kv put indexed %s/%s: empty bucket or key, or ifVersion < 0", bucket, key)
	}
	if err := memstore.CheckEntries(append(append([]state.IndexEntry(nil), del...), add...)); err != nil {
		return 0, fmt.Errorf("redisstore: kv put indexed %s/%s: %w", bucket, key, err)
	}
	keys, tail := s.ixArgs(bucket, key, del, add)
	args := append([]any{key, val, ifVersion}, tail...)
	res, err := kvPutIndexedLua.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return 0, fmt.Errorf("redisstore: kv put indexed %s/%s: %w", bucket, key, err)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		return 0, fmt.Errorf("redisstore: kv put indexed %s/%s: %w", bucket, key, versionErr(res, ifVersion))
	}
	v, _ := res[1].(int64)
	return v, nil
}

// KVDeleteIndexed deletes a value and its index entries; see state.IndexedKV.
func (s *Store) KVDeleteIndexed(ctx context.Context, bucket, key string, ifVersion int64, del []state.IndexEntry) error {
	if ifVersion <= 0 {
		return fmt.Errorf("redisstore: kv delete indexed %s/%s: ifVersion must be > 0", bucket, key)
	}
	keys, tail := s.ixArgs(bucket, key, del, nil)
	args := append([]any{key, "", ifVersion}, tail...)
	res, err := kvDelIndexedLua.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return fmt.Errorf("redisstore: kv delete indexed %s/%s: %w", bucket, key, err)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		return fmt.Errorf("redisstore: kv delete indexed %s/%s: %w", bucket, key, versionErr(res, ifVersion))
	}
	return nil
}

// KVIndexAdd adds entries while key is at version; see state.IndexedKV.
func (s *Store) KVIndexAdd(ctx context.Context, bucket, key string, version int64, add []state.IndexEntry) (bool, error) {
	if err := memstore.CheckEntries(add); err != nil {
		return false, fmt.Errorf("redisstore: kv index add %s/%s: %w", bucket, key, err)
	}
	if version <= 0 {
		return false, nil
	}
	keys, tail := s.ixArgs(bucket, key, nil, add)
	args := append([]any{key, "", version}, tail...)
	res, err := kvIndexAddLua.Run(ctx, s.c, keys, args...).Slice()
	if err != nil {
		return false, fmt.Errorf("redisstore: kv index add %s/%s: %w", bucket, key, err)
	}
	ok, _ := res[0].(int64)
	return ok == 1, nil
}

// KVIndexDrop removes one index of a bucket; see state.IndexedKV.
func (s *Store) KVIndexDrop(ctx context.Context, bucket, index string) error {
	if err := s.c.Del(ctx, s.ixKey(bucket, index)).Err(); err != nil {
		return fmt.Errorf("redisstore: kv index drop %s/%s: %w", bucket, index, err)
	}
	return nil
}

// KVRange counts and reads a range of an index in one round trip; see
// state.IndexedKV.
func (s *Store) KVRange(ctx context.Context, bucket string, r state.IndexRange, offset, limit int) (int, []state.KVItem, error) {
	keysOnly := "0"
	if r.KeysOnly {
		keysOnly = "1"
	}
	res, err := kvRangeLua.Run(ctx, s.c, []string{s.ixKey(bucket, r.Index), s.kvKey(bucket)},
		r.Lo, r.Hi, max(offset, 0), max(limit, 0), keysOnly).Slice()
	if err != nil {
		return 0, nil, fmt.Errorf("redisstore: kv range %s/%s: %w", bucket, r.Index, err)
	}
	total, _ := res[0].(int64)
	items := make([]state.KVItem, 0, (len(res)-1)/2)
	for i := 1; i+1 < len(res); i += 2 {
		k, _ := res[i].(string)
		v, ok := res[i+1].(string)
		if !ok {
			continue // value gone: cannot happen while entries change with it
		}
		it := state.KVItem{Key: k}
		if r.KeysOnly {
			it.Version, err = strconv.ParseInt(v, 10, 64)
		} else {
			it.Val, it.Version, err = kvDecode(v)
		}
		if err != nil {
			return 0, nil, fmt.Errorf("redisstore: kv range %s/%s: key %q: %w", bucket, r.Index, k, err)
		}
		items = append(items, it)
	}
	return int(total), items, nil
}
