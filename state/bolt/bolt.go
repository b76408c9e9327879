// Package bolt is the embedded state.Store, kept in one bbolt file: the
// default backend when no Redis is configured.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
)

// DefaultJournalSize is used when Options.JournalSize is not positive.
const DefaultJournalSize = 100000

// DefaultOpenTimeout is how long Open waits for another process to release
// the file when Options.OpenTimeout is not set.
const DefaultOpenTimeout = 2 * time.Second

// Options configures a Store.
type Options struct {
	// JournalSize bounds the decision journal (DefaultJournalSize when <= 0).
	JournalSize int
	// OpenTimeout bounds the wait for the file lock another process holds
	// (DefaultOpenTimeout when <= 0).
	OpenTimeout time.Duration
	// Now is the clock used for lock expiry (time.Now when nil).
	Now func() time.Time
}

// Top-level buckets.
var (
	bSnapshots = []byte("snapshots")
	bAccounts  = []byte("accounts") // one nested bucket per target
	bCursors   = []byte("cursors")
	bRuns      = []byte("runs")
	bJournal   = []byte("journal") // 8-byte big-endian seq → JSON
	bHeld      = []byte("held")
	bKV        = []byte("kv")    // one nested bucket per KV bucket; value = 8-byte version + data
	bLocks     = []byte("locks") // lock name → newest token issued (8 bytes)
	bLinks     = []byte("links") // RecordID → person id
)

type lease struct {
	owner   string
	token   int64
	expires time.Time
}

// Store is the bbolt-backed state.Store. Leader locks are process-local
// (the file itself can only be open in one process), but the tokens issued
// are persisted, so they keep increasing across reopens and fencing holds.
type Store struct {
	db          *bbolt.DB
	path        string
	journalSize int
	now         func() time.Time

	mu    sync.Mutex // guards locks
	locks map[string]lease

	ixc *ixCache // positions and counts of index ranges, by generation
}

var _ state.Store = (*Store)(nil)

// Open opens (creating if needed) the state file at path. If another
// process has it open, Open fails after opts.OpenTimeout instead of hanging.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("bolt: open: empty path")
	}
	if opts.JournalSize <= 0 {
		opts.JournalSize = DefaultJournalSize
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = DefaultOpenTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("bolt: open %s: %w", path, err)
		}
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.OpenTimeout})
	if err == nil {
		// A lone writer waits at most this long for company before committing.
		db.MaxBatchDelay = time.Millisecond
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("bolt: open %s: the file is locked by another process (another dirsync?); gave up after %s: %w", path, opts.OpenTimeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bSnapshots, bAccounts, bCursors, bRuns, bJournal, bHeld, bKV, bLocks} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: open %s: create buckets: %w", path, err)
	}
	return &Store{db: db, path: path, journalSize: opts.JournalSize, now: opts.Now, locks: map[string]lease{}, ixc: newIxCache()}, nil
}

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Ping checks the file is open.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bolt: ping: %w", err)
	}
	if err := s.db.View(func(*bbolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("bolt: ping: %w", err)
	}
	return nil
}

// Close closes the file. Closing twice is harmless.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bolt: close %s: %w", s.path, err)
	}
	return nil
}

func u64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

func copyBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// checkFence applies the shared fencing rule inside a write transaction.
func checkFence(tx *bbolt.Tx, f state.Fence) error {
	locks := tx.Bucket(bLocks)
	newest := func(name string) (int64, bool) {
		v := locks.Get([]byte(name))
		if len(v) != 8 {
			return 0, false
		}
		return int64(binary.BigEndian.Uint64(v)), true
	}
	k, _ := locks.Cursor().First()
	return memstore.CheckFenceWith(f, newest, k != nil)
}

func newestToken(tx *bbolt.Tx, name string) int64 {
	v := tx.Bucket(bLocks).Get([]byte(name))
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// PutSnapshot stores a source's latest snapshot.
func (s *Store) PutSnapshot(ctx context.Context, f state.Fence, snap *identity.Snapshot) error {
	if snap == nil {
		return errors.New("bolt: put snapshot: nil snapshot")
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("bolt: put snapshot %q: %w", snap.Source, err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		if err := checkFence(tx, f); err != nil {
			return err
		}
		return tx.Bucket(bSnapshots).Put([]byte(snap.Source), b)
	})
	if err != nil {
		return fmt.Errorf("bolt: put snapshot %q: %w", snap.Source, err)
	}
	return nil
}

// Links returns the link table.
func (s *Store) Links(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bLinks)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: links: %w", err)
	}
	return out, nil
}

// PutLinks adds link table entries under a fence, in one transaction.
func (s *Store) PutLinks(ctx context.Context, f state.Fence, links map[string]string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := checkFence(tx, f); err != nil {
			return err
		}
		b, err := tx.CreateBucketIfNotExists(bLinks)
		if err != nil {
			return err
		}
		for k, v := range links {
			if err := b.Put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: put links: %w", err)
	}
	return nil
}

// GetSnapshot returns a source's snapshot or state.ErrNotFound.
func (s *Store) GetSnapshot(ctx context.Context, source string) (*identity.Snapshot, error) {
	var snap *identity.Snapshot
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bSnapshots).Get([]byte(source))
		if v == nil {
			return state.ErrNotFound
		}
		snap = new(identity.Snapshot)
		return json.Unmarshal(v, snap)
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: snapshot %q: %w", source, err)
	}
	return snap, nil
}

// Accounts returns a target's accounts.
func (s *Store) Accounts(ctx context.Context, target string) (map[string]identity.Account, error) {
	var out map[string]identity.Account
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bAccounts).Bucket([]byte(target))
		if b == nil {
			out = map[string]identity.Account{}
			return nil
		}
		out = make(map[string]identity.Account, b.Stats().KeyN)
		return b.ForEach(func(k, v []byte) error {
			var a identity.Account
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("account %q: %w", k, err)
			}
			out[string(k)] = a
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: accounts of %q: %w", target, err)
	}
	return out, nil
}

// PutAccount records one account under a fence.
func (s *Store) PutAccount(ctx context.Context, f state.Fence, target string, a identity.Account) error {
	if a.Key == "" || target == "" {
		return fmt.Errorf("bolt: put account in %q: empty key or target", target)
	}
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("bolt: put account %q in %q: %w", a.Key, target, err)
	}
	// Batch: concurrent writers (the engine's per-target workers) share one
	// commit and its fsync; each call still returns only once its write is
	// durable. The function is idempotent, as Batch may run it twice.
	err = s.db.Batch(func(tx *bbolt.Tx) error {
		if err := checkFence(tx, f); err != nil {
			return err
		}
		b, err := tx.Bucket(bAccounts).CreateBucketIfNotExists([]byte(target))
		if err != nil {
			return err
		}
		return b.Put([]byte(a.Key), v)
	})
	if err != nil {
		return fmt.Errorf("bolt: put account %q in %q: %w", a.Key, target, err)
	}
	return nil
}

// PutAccounts records many accounts in one transaction under a fence (bulk
// loads and benchmarks; the engine writes one account per confirmed action).
func (s *Store) PutAccounts(ctx context.Context, f state.Fence, target string, as []identity.Account) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := checkFence(tx, f); err != nil {
			return err
		}
		b, err := tx.Bucket(bAccounts).CreateBucketIfNotExists([]byte(target))
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.Key == "" {
				return errors.New("empty account key")
			}
			v, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(a.Key), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: put %d accounts in %q: %w", len(as), target, err)
	}
	return nil
}

// DeleteAccount forgets an account under a fence.
func (s *Store) DeleteAccount(ctx context.Context, f state.Fence, target, key string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := checkFence(tx, f); err != nil {
			return err
		}
		b := tx.Bucket(bAccounts).Bucket([]byte(target))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("bolt: delete account %q in %q: %w", key, target, err)
	}
	return nil
}

// Cursor returns a named cursor or state.ErrNotFound.
func (s *Store) Cursor(ctx context.Context, name string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bCursors).Get([]byte(name))
		if v == nil {
			return state.ErrNotFound
		}
		out = copyBytes(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: cursor %q: %w", name, err)
	}
	return out, nil
}

// PutCursor stores a named cursor.
func (s *Store) PutCursor(ctx context.Context, name string, v []byte) error {
	if v == nil {
		v = []byte{}
	}
	err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bCursors).Put([]byte(name), v) })
	if err != nil {
		return fmt.Errorf("bolt: put cursor %q: %w", name, err)
	}
	return nil
}

// PutRun creates or replaces a run record.
func (s *Store) PutRun(ctx context.Context, r state.Run) error {
	if r.ID == "" {
		return errors.New("bolt: put run: empty id")
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("bolt: put run %q: %w", r.ID, err)
	}
	err = s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bRuns).Put([]byte(r.ID), v) })
	if err != nil {
		return fmt.Errorf("bolt: put run %q: %w", r.ID, err)
	}
	return nil
}

// GetRun returns a run record or state.ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (state.Run, error) {
	var r state.Run
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bRuns).Get([]byte(id))
		if v == nil {
			return state.ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	if err != nil {
		return state.Run{}, fmt.Errorf("bolt: run %q: %w", id, err)
	}
	return r, nil
}

// Runs returns runs newest first (by Started), at most limit.
func (s *Store) Runs(ctx context.Context, limit int) ([]state.Run, error) {
	var out []state.Run
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bRuns).ForEach(func(k, v []byte) error {
			var r state.Run
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("run %q: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: runs: %w", err)
	}
	memstore.SortRuns(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// AppendDecisions adds records, assigning Seq, and drops the oldest beyond
// the journal size, in one transaction.
func (s *Store) AppendDecisions(ctx context.Context, ds []state.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bJournal)
		var last uint64
		for _, d := range ds {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			d.Seq = int64(seq)
			v, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if err := b.Put(u64(seq), v); err != nil {
				return err
			}
			last = seq
		}
		// Sequence numbers are contiguous, so the kept records are exactly
		// those with seq > last-journalSize.
		if last <= uint64(s.journalSize) {
			return nil
		}
		cutoff := u64(last - uint64(s.journalSize))
		// Collect first: deleting through a cursor makes Next skip keys.
		var old [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, cutoff) <= 0; k, _ = c.Next() {
			old = append(old, copyBytes(k))
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: append %d decisions: %w", len(ds), err)
	}
	return nil
}

// Decisions returns matching records oldest first; with q.Limit set, the
// newest q.Limit matches, newest first.
func (s *Store) Decisions(ctx context.Context, q state.DecisionQuery) ([]state.Decision, error) {
	var out []state.Decision
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bJournal).Cursor()
		first, next := c.First, c.Next
		if q.Limit > 0 {
			first, next = c.Last, c.Prev
		}
		for k, v := first(); k != nil; k, v = next() {
			var d state.Decision
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !q.Matches(d) {
				continue
			}
			out = append(out, d)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: decisions: %w", err)
	}
	return out, nil
}

// PutHeld stores a held plan under a fence.
func (s *Store) PutHeld(ctx context.Context, f state.Fence, runID string, plan []byte) error {
	if plan == nil {
		plan = []byte{}
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := checkFence(tx, f); err != nil {
			return err
		}
		return tx.Bucket(bHeld).Put([]byte(runID), plan)
	})
	if err != nil {
		return fmt.Errorf("bolt: put held plan %q: %w", runID, err)
	}
	return nil
}

// GetHeld returns a held plan or state.ErrNotFound.
func (s *Store) GetHeld(ctx context.Context, runID string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bHeld).Get([]byte(runID))
		if v == nil {
			return state.ErrNotFound
		}
		out = copyBytes(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: held plan %q: %w", runID, err)
	}
	return out, nil
}

// DeleteHeld removes a held plan under a fence.
func (s *Store) DeleteHeld(ctx context.Context, f state.Fence, runID string) error {
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := checkFence(tx, f); err != nil {
			return err
		}
		return tx.Bucket(bHeld).Delete([]byte(runID))
	})
	if err != nil {
		return fmt.Errorf("bolt: delete held plan %q: %w", runID, err)
	}
	return nil
}

// HeldRuns lists the run ids with a held plan, sorted.
func (s *Store) HeldRuns(ctx context.Context) ([]string, error) {
	out := []string{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bHeld).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: held runs: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

func kvDecode(v []byte) (val []byte, version int64, err error) {
	if len(v) < 8 {
		return nil, 0, errors.New("corrupt kv entry")
	}
	return copyBytes(v[8:]), int64(binary.BigEndian.Uint64(v[:8])), nil
}

// KVGet returns a value and its version.
func (s *Store) KVGet(ctx context.Context, bucket, key string) ([]byte, int64, error) {
	var (
		val []byte
		ver int64
	)
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bKV).Bucket([]byte(bucket))
		if b == nil {
			return state.ErrNotFound
		}
		v := b.Get([]byte(key))
		if v == nil {
			return state.ErrNotFound
		}
		var err error
		val, ver, err = kvDecode(v)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("bolt: kv %s/%s: %w", bucket, key, err)
	}
	return val, ver, nil
}

// KVPut writes a value; see state.Store.
func (s *Store) KVPut(ctx context.Context, bucket, key string, val []byte, ifVersion int64) (int64, error) {
	if bucket == "" || key == "" {
		return 0, fmt.Errorf("bolt: kv put %s/%s: empty bucket or key", bucket, key)
	}
	return s.kvPut(bucket, key, val, ifVersion, nil)
}

// kvPut writes a value at ifVersion and, in the same transaction, runs
// also (when set) once the value is written. Concurrent writers share one
// commit (bbolt's Batch); a version mismatch writes nothing and is
// reported without failing the batch.
func (s *Store) kvPut(bucket, key string, val []byte, ifVersion int64, also func(tx *bbolt.Tx) error) (int64, error) {
	var (
		nv       int64
		mismatch error
	)
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		mismatch = nil
		b, err := tx.Bucket(bKV).CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		var cur int64
		old := b.Get([]byte(key))
		if old != nil {
			if _, cur, err = kvDecode(old); err != nil {
				return err
			}
		}
		if err := memstore.CheckVersion(cur, old != nil, ifVersion); err != nil {
			mismatch = err
			return nil
		}
		nv = cur + 1
		v := make([]byte, 8+len(val))
		binary.BigEndian.PutUint64(v, uint64(nv))
		copy(v[8:], val)
		if err := b.Put([]byte(key), v); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if err == nil {
		err = mismatch
	}
	if err != nil {
		return 0, fmt.Errorf("bolt: kv put %s/%s: %w", bucket, key, err)
	}
	return nv, nil
}

// KVDelete removes a key; see state.Store.
func (s *Store) KVDelete(ctx context.Context, bucket, key string, ifVersion int64) error {
	return s.kvDelete(bucket, key, ifVersion, nil)
}

// kvDelete deletes a key at ifVersion and, in the same transaction, runs
// also (when set) once it is deleted; as kvPut, writers share commits.
func (s *Store) kvDelete(bucket, key string, ifVersion int64, also func(tx *bbolt.Tx) error) error {
	var mismatch error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		mismatch = nil
		b := tx.Bucket(bKV).Bucket([]byte(bucket))
		var old []byte
		if b != nil {
			old = b.Get([]byte(key))
		}
		var cur int64
		if old != nil {
			var err error
			if _, cur, err = kvDecode(old); err != nil {
				return err
			}
		}
		if err := memstore.CheckVersion(cur, old != nil, ifVersion); err != nil {
			mismatch = err
			return nil
		}
		if old == nil {
			return nil
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if err == nil {
		err = mismatch
	}
	if err != nil {
		return fmt.Errorf("bolt: kv delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

// KVList returns every key and value in a bucket.
func (s *Store) KVList(ctx context.Context, bucket string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bKV).Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			val, _, err := kvDecode(v)
			if err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
			out[string(k)] = val
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("bolt: kv list %s: %w", bucket, err)
	}
	return out, nil
}

// AcquireLock takes or renews the named lock; see state.Store.
func (s *Store) AcquireLock(ctx context.Context, name, owner string, ttl time.Duration) (state.Lease, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return state.Lease{}, fmt.Errorf("bolt: acquire lock %q: name, owner and a positive ttl are required", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if l, ok := s.locks[name]; ok && now.Before(l.expires) {
		if l.owner != owner {
			return state.Lease{}, fmt.Errorf("bolt: acquire lock %q: %w", name, state.ErrLockHeld)
		}
		l.expires = now.Add(ttl)
		s.locks[name] = l
		return state.Lease{Name: name, Owner: owner, Token: l.token, Expires: l.expires}, nil
	}
	var token int64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		token = newestToken(tx, name) + 1
		return tx.Bucket(bLocks).Put([]byte(name), u64(uint64(token)))
	})
	if err != nil {
		return state.Lease{}, fmt.Errorf("bolt: acquire lock %q: %w", name, err)
	}
	l := lease{owner: owner, token: token, expires: now.Add(ttl)}
	s.locks[name] = l
	return state.Lease{Name: name, Owner: owner, Token: token, Expires: l.expires}, nil
}

// RenewLock extends a lease while no newer lease was issued for its name;
// otherwise it returns state.ErrLockHeld.
func (s *Store) RenewLock(ctx context.Context, l state.Lease, ttl time.Duration) (state.Lease, error) {
	if ttl <= 0 {
		return state.Lease{}, fmt.Errorf("bolt: renew lock %q: ttl must be positive", l.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var newest int64
	if err := s.db.View(func(tx *bbolt.Tx) error { newest = newestToken(tx, l.Name); return nil }); err != nil {
		return state.Lease{}, fmt.Errorf("bolt: renew lock %q: %w", l.Name, err)
	}
	now := s.now()
	cur, held := s.locks[l.Name]
	live := held && now.Before(cur.expires)
	if l.Token == 0 || newest != l.Token || (live && cur.token != l.Token) {
		return state.Lease{}, fmt.Errorf("bolt: renew lock %q: lease lost: %w", l.Name, state.ErrLockHeld)
	}
	nl := lease{owner: l.Owner, token: l.Token, expires: now.Add(ttl)}
	s.locks[l.Name] = nl
	return state.Lease{Name: l.Name, Owner: l.Owner, Token: l.Token, Expires: nl.expires}, nil
}

// ReleaseLock frees the lock if l still holds it.
func (s *Store) ReleaseLock(ctx context.Context, l state.Lease) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.locks[l.Name]; ok && cur.token == l.Token && cur.owner == l.Owner {
		delete(s.locks, l.Name)
	}
	return nil
}
