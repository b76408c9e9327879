// Package memstore is an in-memory state.Store: the reference implementation
// of the state contract, used by tests and single-process tools.
package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
)

// DefaultJournalSize is used when Options.JournalSize is not positive.
const DefaultJournalSize = 100000

// Options configures a Store.
type Options struct {
	// JournalSize bounds the decision journal (DefaultJournalSize when <= 0).
	JournalSize int
	// Now is the clock used for lock expiry (time.Now when nil).
	Now func() time.Time
}

type kvEntry struct {
	val     []byte
	version int64
}

type lease struct {
	owner   string
	token   int64
	expires time.Time
}

// Store is an in-memory state.Store. The zero value is not usable: call New.
//
// Fencing follows the contract shared by every backend (see state/statetest):
// a write fenced with Fence{Lock: L, Token: t > 0} is accepted iff t is the
// newest token ever issued for L; Fence{Lock: L, Token: 0} is accepted iff no
// lease for L was ever issued; the zero Fence{} is accepted iff no lease under
// any name was ever issued.
type Store struct {
	mu          sync.Mutex
	journalSize int
	now         func() time.Time

	snapshots map[string][]byte // JSON
	links     map[string]string
	accounts  map[string]map[string]identity.Account
	cursors   map[string][]byte
	runs      map[string][]byte // JSON
	journal   []state.Decision
	seq       int64
	held      map[string][]byte
	kv        map[string]map[string]kvEntry
	ix        map[string]map[string][]string // bucket → index → sorted entries
	locks     map[string]lease
	tokens    map[string]int64 // newest token ever issued, per lock name
	closed    bool
}

var _ state.Store = (*Store)(nil)

// New returns an empty Store.
func New(opts Options) *Store {
	if opts.JournalSize <= 0 {
		opts.JournalSize = DefaultJournalSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{
		journalSize: opts.JournalSize,
		now:         opts.Now,
		snapshots:   map[string][]byte{},
		accounts:    map[string]map[string]identity.Account{},
		cursors:     map[string][]byte{},
		runs:        map[string][]byte{},
		held:        map[string][]byte{},
		kv:          map[string]map[string]kvEntry{},
		ix:          map[string]map[string][]string{},
		locks:       map[string]lease{},
		tokens:      map[string]int64{},
	}
}

func (s *Store) lock() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("memstore: store is closed")
	}
	return nil
}

// Ping reports whether the store is open.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.lock(); err != nil {
		return err
	}
	s.mu.Unlock()
	return ctx.Err()
}

// Close marks the store closed; later calls fail.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// CheckFence applies the fencing rule shared by every backend (see
// state/statetest) given the newest token issued per lock name. The error
// wraps state.ErrStaleFence.
func CheckFence(f state.Fence, tokens map[string]int64) error {
	return checkFence(f, func(name string) (int64, bool) {
		t, ok := tokens[name]
		return t, ok
	}, len(tokens) > 0)
}

// CheckFenceWith is CheckFence for a backend that looks tokens up itself:
// newest returns the newest token issued for a name (and whether any was),
// anyIssued whether any lease under any name was ever issued.
func CheckFenceWith(f state.Fence, newest func(name string) (int64, bool), anyIssued bool) error {
	return checkFence(f, newest, anyIssued)
}

func checkFence(f state.Fence, newest func(string) (int64, bool), anyIssued bool) error {
	if f.Token == 0 {
		if f.Lock == "" {
			if anyIssued {
				return fmt.Errorf("unfenced write refused: a leader lock has been taken on this store: %w", state.ErrStaleFence)
			}
			return nil
		}
		if _, ok := newest(f.Lock); ok {
			return fmt.Errorf("unfenced write refused: lock %q has been taken on this store: %w", f.Lock, state.ErrStaleFence)
		}
		return nil
	}
	if f.Lock == "" {
		return fmt.Errorf("fence token %d without a lock name: %w", f.Token, state.ErrStaleFence)
	}
	cur, _ := newest(f.Lock)
	if f.Token != cur {
		return fmt.Errorf("lock %q: token %d, newest is %d: %w", f.Lock, f.Token, cur, state.ErrStaleFence)
	}
	return nil
}

// PutSnapshot stores a source's latest snapshot.
func (s *Store) PutSnapshot(ctx context.Context, f state.Fence, snap *identity.Snapshot) error {
	if snap == nil {
		return fmt.Errorf("memstore: put snapshot: nil snapshot")
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("memstore: put snapshot %q: %w", snap.Source, err)
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := CheckFence(f, s.tokens); err != nil {
		return fmt.Errorf("memstore: put snapshot %q: %w", snap.Source, err)
	}
	s.snapshots[snap.Source] = b
	return nil
}

// Links returns a copy of the link table.
func (s *Store) Links(ctx context.Context) (map[string]string, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.links))
	for k, v := range s.links {
		out[k] = v
	}
	return out, nil
}

// PutLinks adds link table entries under a fence.
func (s *Store) PutLinks(ctx context.Context, f state.Fence, links map[string]string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := CheckFence(f, s.tokens); err != nil {
		return fmt.Errorf("memstore: put links: %w", err)
	}
	if s.links == nil {
		s.links = map[string]string{}
	}
	for k, v := range links {
		s.links[k] = v
	}
	return nil
}

// GetSnapshot returns a source's snapshot or state.ErrNotFound.
func (s *Store) GetSnapshot(ctx context.Context, source string) (*identity.Snapshot, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	b, ok := s.snapshots[source]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("memstore: snapshot %q: %w", source, state.ErrNotFound)
	}
	var snap identity.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, fmt.Errorf("memstore: snapshot %q: %w", source, err)
	}
	return &snap, nil
}

// Accounts returns a copy of a target's accounts.
func (s *Store) Accounts(ctx context.Context, target string) (map[string]identity.Account, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	src := s.accounts[target]
	out := make(map[string]identity.Account, len(src))
	for k, a := range src {
		out[k] = a.Clone()
	}
	return out, nil
}

// PutAccount records one account under a fence.
func (s *Store) PutAccount(ctx context.Context, f state.Fence, target string, a identity.Account) error {
	if a.Key == "" {
		return fmt.Errorf("memstore: put account in %q: empty key", target)
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := CheckFence(f, s.tokens); err != nil {
		return fmt.Errorf("memstore: put account %q in %q: %w", a.Key, target, err)
	}
	m := s.accounts[target]
	if m == nil {
		m = map[string]identity.Account{}
		s.accounts[target] = m
	}
	m[a.Key] = a.Clone()
	return nil
}

// DeleteAccount forgets an account under a fence.
func (s *Store) DeleteAccount(ctx context.Context, f state.Fence, target, key string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := CheckFence(f, s.tokens); err != nil {
		return fmt.Errorf("memstore: delete account %q in %q: %w", key, target, err)
	}
	delete(s.accounts[target], key)
	return nil
}

// Cursor returns a named cursor or state.ErrNotFound.
func (s *Store) Cursor(ctx context.Context, name string) ([]byte, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	v, ok := s.cursors[name]
	if !ok {
		return nil, fmt.Errorf("memstore: cursor %q: %w", name, state.ErrNotFound)
	}
	return slices.Clone(v), nil
}

// PutCursor stores a named cursor.
func (s *Store) PutCursor(ctx context.Context, name string, v []byte) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.cursors[name] = append([]byte{}, v...)
	return nil
}

// PutRun creates or replaces a run record.
func (s *Store) PutRun(ctx context.Context, r state.Run) error {
	if r.ID == "" {
		return fmt.Errorf("memstore: put run: empty id")
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("memstore: put run %q: %w", r.ID, err)
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.runs[r.ID] = b
	return nil
}

// GetRun returns a run record or state.ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (state.Run, error) {
	if err := s.lock(); err != nil {
		return state.Run{}, err
	}
	b, ok := s.runs[id]
	s.mu.Unlock()
	if !ok {
		return state.Run{}, fmt.Errorf("memstore: run %q: %w", id, state.ErrNotFound)
	}
	var r state.Run
	if err := json.Unmarshal(b, &r); err != nil {
		return state.Run{}, fmt.Errorf("memstore: run %q: %w", id, err)
	}
	return r, nil
}

// Runs returns runs newest first (by Started, then ID), at most limit.
func (s *Store) Runs(ctx context.Context, limit int) ([]state.Run, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	raw := make([][]byte, 0, len(s.runs))
	for _, b := range s.runs {
		raw = append(raw, b)
	}
	s.mu.Unlock()
	out := make([]state.Run, 0, len(raw))
	for _, b := range raw {
		var r state.Run
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("memstore: runs: %w", err)
		}
		out = append(out, r)
	}
	SortRuns(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// SortRuns orders runs newest first: by Started descending, then ID
// descending. Every backend uses this order.
func SortRuns(rs []state.Run) {
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].Started.Equal(rs[j].Started) {
			return rs[i].Started.After(rs[j].Started)
		}
		return rs[i].ID > rs[j].ID
	})
}

// AppendDecisions adds records, assigning Seq, and trims the journal.
func (s *Store) AppendDecisions(ctx context.Context, ds []state.Decision) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	for _, d := range ds {
		s.seq++
		d.Seq = s.seq
		s.journal = append(s.journal, d)
	}
	if n := len(s.journal); n > s.journalSize {
		// Copy so the dropped records are released.
		s.journal = append([]state.Decision(nil), s.journal[n-s.journalSize:]...)
	}
	return nil
}

// Decisions returns matching records oldest first; with q.Limit set, the
// newest q.Limit matches, newest first.
func (s *Store) Decisions(ctx context.Context, q state.DecisionQuery) ([]state.Decision, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []state.Decision
	if q.Limit > 0 {
		for i := len(s.journal) - 1; i >= 0 && len(out) < q.Limit; i-- {
			if q.Matches(s.journal[i]) {
				out = append(out, s.journal[i])
			}
		}
		return out, nil
	}
	for _, d := range s.journal {
		if q.Matches(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// PutHeld stores a held plan under a fence.
func (s *Store) PutHeld(ctx context.Context, f state.Fence, runID string, plan []byte) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := CheckFence(f, s.tokens); err != nil {
		return fmt.Errorf("memstore: put held plan %q: %w", runID, err)
	}
	s.held[runID] = append([]byte{}, plan...)
	return nil
}

// GetHeld returns a held plan or state.ErrNotFound.
func (s *Store) GetHeld(ctx context.Context, runID string) ([]byte, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	p, ok := s.held[runID]
	if !ok {
		return nil, fmt.Errorf("memstore: held plan %q: %w", runID, state.ErrNotFound)
	}
	return slices.Clone(p), nil
}

// DeleteHeld removes a held plan under a fence.
func (s *Store) DeleteHeld(ctx context.Context, f state.Fence, runID string) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := CheckFence(f, s.tokens); err != nil {
		return fmt.Errorf("memstore: delete held plan %q: %w", runID, err)
	}
	delete(s.held, runID)
	return nil
}

// HeldRuns lists the run ids with a held plan, sorted.
func (s *Store) HeldRuns(ctx context.Context) ([]string, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.held))
	for id := range s.held {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// KVGet returns a value and its version.
func (s *Store) KVGet(ctx context.Context, bucket, key string) ([]byte, int64, error) {
	if err := s.lock(); err != nil {
		return nil, 0, err
	}
	defer s.mu.Unlock()
	e, ok := s.kv[bucket][key]
	if !ok {
		return nil, 0, fmt.Errorf("memstore: kv %s/%s: %w", bucket, key, state.ErrNotFound)
	}
	return slices.Clone(e.val), e.version, nil
}

// KVPut writes a value; see state.Store.
func (s *Store) KVPut(ctx context.Context, bucket, key string, val []byte, ifVersion int64) (int64, error) {
	if err := s.lock(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return s.putLocked(bucket, key, val, ifVersion)
}

// putLocked writes a value at ifVersion; s.mu is held.
func (s *Store) putLocked(bucket, key string, val []byte, ifVersion int64) (int64, error) {
	b := s.kv[bucket]
	cur, ok := b[key]
	if err := CheckVersion(cur.version, ok, ifVersion); err != nil {
		return 0, fmt.Errorf("memstore: kv put %s/%s: %w", bucket, key, err)
	}
	if b == nil {
		b = map[string]kvEntry{}
		s.kv[bucket] = b
	}
	v := cur.version + 1
	b[key] = kvEntry{val: append([]byte{}, val...), version: v}
	return v, nil
}

// CheckVersion applies the KV version rule shared by the backends: ifVersion
// -1 matches anything, 0 only an absent key, n > 0 only version n.
func CheckVersion(cur int64, exists bool, ifVersion int64) error {
	switch {
	case ifVersion == -1:
		return nil
	case ifVersion == 0 && !exists:
		return nil
	case ifVersion > 0 && exists && cur == ifVersion:
		return nil
	case ifVersion < -1:
		return fmt.Errorf("invalid expected version %d: %w", ifVersion, state.ErrVersionMismatch)
	}
	if !exists {
		return fmt.Errorf("expected version %d, key is absent: %w", ifVersion, state.ErrVersionMismatch)
	}
	return fmt.Errorf("expected version %d, current is %d: %w", ifVersion, cur, state.ErrVersionMismatch)
}

// KVDelete removes a key; see state.Store.
func (s *Store) KVDelete(ctx context.Context, bucket, key string, ifVersion int64) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	cur, ok := s.kv[bucket][key]
	if err := CheckVersion(cur.version, ok, ifVersion); err != nil {
		return fmt.Errorf("memstore: kv delete %s/%s: %w", bucket, key, err)
	}
	delete(s.kv[bucket], key)
	return nil
}

// KVList returns a copy of every key and value in a bucket.
func (s *Store) KVList(ctx context.Context, bucket string) (map[string][]byte, error) {
	if err := s.lock(); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.kv[bucket]))
	for k, e := range s.kv[bucket] {
		out[k] = slices.Clone(e.val)
	}
	return out, nil
}

// AcquireLock takes or renews the named lock; see state.Store.
func (s *Store) AcquireLock(ctx context.Context, name, owner string, ttl time.Duration) (state.Lease, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return state.Lease{}, fmt.Errorf("memstore: acquire lock %q: name, owner and a positive ttl are required", name)
	}
	if err := s.lock(); err != nil {
		return state.Lease{}, err
	}
	defer s.mu.Unlock()
	now := s.now()
	if l, ok := s.locks[name]; ok && now.Before(l.expires) {
		if l.owner != owner {
			return state.Lease{}, fmt.Errorf("memstore: acquire lock %q: %w", name, state.ErrLockHeld)
		}
		l.expires = now.Add(ttl)
		s.locks[name] = l
		return state.Lease{Name: name, Owner: owner, Token: l.token, Expires: l.expires}, nil
	}
	s.tokens[name]++
	l := lease{owner: owner, token: s.tokens[name], expires: now.Add(ttl)}
	s.locks[name] = l
	return state.Lease{Name: name, Owner: owner, Token: l.token, Expires: l.expires}, nil
}

// RenewLock extends a lease. It succeeds while no newer lease was issued for
// the name (even if the lease expired meanwhile, since nobody else took it);
// otherwise it returns state.ErrLockHeld.
func (s *Store) RenewLock(ctx context.Context, l state.Lease, ttl time.Duration) (state.Lease, error) {
	if ttl <= 0 {
		return state.Lease{}, fmt.Errorf("memstore: renew lock %q: ttl must be positive", l.Name)
	}
	if err := s.lock(); err != nil {
		return state.Lease{}, err
	}
	defer s.mu.Unlock()
	now := s.now()
	cur, held := s.locks[l.Name]
	live := held && now.Before(cur.expires)
	if l.Token == 0 || s.tokens[l.Name] != l.Token || (live && cur.token != l.Token) {
		return state.Lease{}, fmt.Errorf("memstore: renew lock %q: lease lost: %w", l.Name, state.ErrLockHeld)
	}
	nl := lease{owner: l.Owner, token: l.Token, expires: now.Add(ttl)}
	s.locks[l.Name] = nl
	return state.Lease{Name: l.Name, Owner: l.Owner, Token: l.Token, Expires: nl.expires}, nil
}

// ReleaseLock frees the lock if l still holds it; otherwise it does nothing.
func (s *Store) ReleaseLock(ctx context.Context, l state.Lease) error {
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if cur, ok := s.locks[l.Name]; ok && cur.token == l.Token && cur.owner == l.Owner {
		delete(s.locks, l.Name)
	}
	return nil
}
