// Package redisstore is the Redis state.Store: standalone, Sentinel or
// Cluster through go-redis's UniversalClient, so several daemon replicas
// share state and the leader lock.
//
// Keys are namespaced by the configured key prefix (P):
//
//	P snap:<source>             string  snapshot JSON
//	P cursor:<name>             string  cursor bytes
//	P {runs}:data               hash    run id → JSON
//	P {runs}:idx                zset    run id by Started
//	P {journal}:seq             string  last decision seq
//	P {journal}:log             stream  id "<seq>-0", field d = JSON; trimmed to the journal size
//	P kv:<bucket>               hash    key → "<version> <value>"
//	P {fenced}:tokens           hash    lock name → newest token issued
//	P {fenced}:lock:<name>      string  "<token> <owner>", PX ttl
//	P {fenced}:acct:<target>    hash    account key → JSON
//	P {fenced}:held             hash    run id → plan
//	dirsync-registry:endpoints  hash    "<prefix>\x00<endpoint>" → claim JSON (shared by every prefix)
//
// With Options.PerTarget (state.leases: per_target) each target's lease,
// accounts and held plans live under the target's own hash tag, so Redis
// Cluster spreads the targets over its slots:
//
//	P {target:<t>}:tokens       hash    lock name → newest token issued
//	P {target:<t>}:lock         string  "<token> <owner>", PX ttl
//	P {target:<t>}:acct         hash    account key → JSON
//	P {target:<t>}:held         hash    run id → plan
//	P {target:<t>}:migrated     string  set once the accounts were copied
//	P heldtargets               set     targets with held plans (index)
//
// The first holder of a target's lease copies the target's accounts from
// the one-lease layout ({fenced}:acct:<t>) before it returns the lease.
//
// Keys a script or transaction touches together share a hash tag, so the
// store works on Redis Cluster. Fenced writes are Lua scripts that check
// the tokens hash and write in one step.
package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
)

// DefaultJournalSize is used when Options.JournalSize is not positive.
const DefaultJournalSize = 100000

// Options configures a Store beyond the config.Redis settings.
type Options struct {
	// JournalSize bounds the decision journal (DefaultJournalSize when <= 0).
	JournalSize int
	// Now stamps lease expiry times (time.Now when nil); Redis itself
	// expires the lock.
	Now func() time.Time
	// DialTimeout bounds connecting (5s when zero).
	DialTimeout time.Duration
	// PoolSize is the connection pool size per node (go-redis's default when zero).
	PoolSize int
	// PerTarget keeps each target's lease, accounts and held plans under
	// the target's own hash tag (state.leases: per_target).
	PerTarget bool
}

// ConfigError is a configuration problem, naming the key under
// config.Redis (e.g. "tls.ca_file").
type ConfigError struct {
	Key string
	Err error
}

// Error implements error.
func (e *ConfigError) Error() string { return "redisstore: " + e.Key + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// Store is the Redis state.Store.
type Store struct {
	c           redis.UniversalClient
	p           string // key prefix
	journalSize int
	now         func() time.Time
	addrs       []string
	perTarget   bool
}

var _ state.Store = (*Store)(nil)

// New builds a Store from cfg. It does not connect: call Ping to check the
// server is reachable.
func New(cfg config.Redis, opts Options) (*Store, error) {
	if len(cfg.Addrs) == 0 {
		return nil, &ConfigError{Key: "addrs", Err: errors.New("at least one address is required")}
	}
	if opts.JournalSize <= 0 {
		opts.JournalSize = DefaultJournalSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	tlsCfg, err := tlsConfig(cfg.TLS)
	if err != nil {
		return nil, err
	}
	uo := &redis.UniversalOptions{
		Addrs:                 cfg.Addrs,
		Username:              cfg.Username,
		Password:              cfg.Password.Value(),
		DB:                    cfg.DB,
		MasterName:            cfg.MasterName,
		TLSConfig:             tlsCfg,
		DialTimeout:           opts.DialTimeout,
		PoolSize:              opts.PoolSize,
		ContextTimeoutEnabled: true,
		// Plain open-source Redis has no maintenance notifications.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if cfg.MasterName != "" {
		// Sentinels may require their own auth; use the same credentials.
		uo.SentinelUsername = cfg.Username
		uo.SentinelPassword = cfg.Password.Value()
	}
	prefix := cfg.KeyPrefix
	return &Store{
		c: redis.NewUniversalClient(uo), p: prefix, journalSize: opts.JournalSize,
		now: opts.Now, addrs: append([]string(nil), cfg.Addrs...), perTarget: opts.PerTarget,
	}, nil
}

func tlsConfig(t config.TLS) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in for tests
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, &ConfigError{Key: "tls.ca_file", Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{Key: "tls.ca_file", Err: fmt.Errorf("%s: no PEM certificates", t.CAFile)}
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, &ConfigError{Key: "tls.cert_file", Err: errors.New("cert_file and key_file go together")}
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, &ConfigError{Key: "tls.cert_file", Err: err}
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Client returns the underlying client (tests, metrics).
func (s *Store) Client() redis.UniversalClient { return s.c }

func (s *Store) k(parts ...string) string { return s.p + strings.Join(parts, "") }

func (s *Store) tokensKey() string { return s.k("{fenced}:tokens") }

// targetLockPrefix starts the name of a target's lease.
const targetLockPrefix = "target:"

// ownSlot reports whether lock lives under its own hash tag (a target's
// lease in the per-target layout).
func (s *Store) ownSlot(lock string) bool {
	return s.perTarget && strings.HasPrefix(lock, targetLockPrefix) && len(lock) > len(targetLockPrefix)
}

// tokensFor is the tokens hash that fences writes under lock.
func (s *Store) tokensFor(lock string) string {
	if s.ownSlot(lock) {
		return s.k("{", lock, "}:tokens")
	}
	return s.tokensKey()
}

func (s *Store) lockKey(name string) string {
	if s.ownSlot(name) {
		return s.k("{", name, "}:lock")
	}
	return s.k("{fenced}:lock:", name)
}

// acctKey is a target's accounts hash, and acctTokens the tokens hash that
// fences it: the target's own lease's in the per-target layout (no other
// lease can write there), the shared one otherwise.
func (s *Store) acctKey(target string) string {
	if s.perTarget {
		return s.k("{", targetLockPrefix, target, "}:acct")
	}
	return s.k("{fenced}:acct:", target)
}

func (s *Store) acctTokens(target string) string {
	if s.perTarget {
		return s.tokensFor(targetLockPrefix + target)
	}
	return s.tokensKey()
}

func (s *Store) heldKey() string { return s.k("{fenced}:held") }

// heldKeyFor is the held-plans hash written under lock, with its tokens.
func (s *Store) heldKeyFor(lock string) (hash, tokens string) {
	if s.ownSlot(lock) {
		return s.k("{", lock, "}:held"), s.tokensFor(lock)
	}
	return s.heldKey(), s.tokensKey()
}

// heldTargetOf is the target a held plan id ("RUN/TARGET") names.
func heldTargetOf(id string) string {
	if i := strings.IndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return ""
}
func (s *Store) snapsKey() string { return s.k("{fenced}:snaps") }
func (s *Store) linksKey() string { return s.k("{fenced}:links") }

// Ping checks the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping %s: %w", strings.Join(s.addrs, ","), err)
	}
	return nil
}

// Close closes the client's connections.
func (s *Store) Close() error {
	if err := s.c.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}

// mapErr turns script error replies into the state errors.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, errStale):
		_, detail, _ := strings.Cut(msg, errStale+" ")
		return fmt.Errorf("%s: %w", detail, state.ErrStaleFence)
	case strings.Contains(msg, errLockHeld):
		return state.ErrLockHeld
	}
	return err
}

// PutSnapshot stores a source's latest snapshot.
func (s *Store) PutSnapshot(ctx context.Context, f state.Fence, snap *identity.Snapshot) error {
	if snap == nil {
		return errors.New("redisstore: put snapshot: nil snapshot")
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("redisstore: put snapshot %q: %w", snap.Source, err)
	}
	err = fencedHSet.Run(ctx, s.c, []string{s.tokensKey(), s.snapsKey()}, append(fenceArgs(f), snap.Source, b)...).Err()
	if err != nil {
		return fmt.Errorf("redisstore: put snapshot %q: %w", snap.Source, mapErr(err))
	}
	return nil
}

// Links returns the link table.
func (s *Store) Links(ctx context.Context) (map[string]string, error) {
	m, err := s.c.HGetAll(ctx, s.linksKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: links: %w", err)
	}
	return m, nil
}

// PutLinks adds link table entries under a fence, in scripts of up to 1,000.
func (s *Store) PutLinks(ctx context.Context, f state.Fence, links map[string]string) error {
	args := fenceArgs(f)
	flush := func() error {
		if len(args) == 2 {
			return nil
		}
		err := fencedHSet.Run(ctx, s.c, []string{s.tokensKey(), s.linksKey()}, args...).Err()
		args = fenceArgs(f)
		if err != nil {
			return fmt.Errorf("redisstore: put links: %w", mapErr(err))
		}
		return nil
	}
	for k, v := range links {
		args = append(args, k, v)
		if len(args) >= 2002 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// GetSnapshot returns a source's snapshot or state.ErrNotFound.
func (s *Store) GetSnapshot(ctx context.Context, source string) (*identity.Snapshot, error) {
	b, err := s.c.HGet(ctx, s.snapsKey(), source).Bytes()
	if errors.Is(err, redis.Nil) {
		// Written before snapshots were fenced (one key per source).
		b, err = s.c.Get(ctx, s.k("snap:", source)).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: snapshot %q: %w", source, state.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: snapshot %q: %w", source, err)
	}
	var snap identity.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, fmt.Errorf("redisstore: snapshot %q: %w", source, err)
	}
	return &snap, nil
}

// Accounts returns a target's accounts: one HVALS (each value carries its
// key), decoded on every CPU.
func (s *Store) Accounts(ctx context.Context, target string) (map[string]identity.Account, error) {
	vals, err := s.c.HVals(ctx, s.acctKey(target)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: accounts of %q: %w", target, err)
	}
	accts := make([]identity.Account, len(vals))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(vals)/2000))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(vals); i += workers {
				if err := json.Unmarshal([]byte(vals[i]), &accts[i]); err != nil {
					errs[w] = fmt.Errorf("account %d: %w", i, err)
					return
				}
				if accts[i].Key == "" {
					errs[w] = fmt.Errorf("account %d: no key", i)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("redisstore: accounts of %q: %w", target, err)
	}
	out := make(map[string]identity.Account, len(accts))
	for _, a := range accts {
		out[a.Key] = a
	}
	return out, nil
}

func fenceArgs(f state.Fence) []any { return []any{f.Lock, strconv.FormatInt(f.Token, 10)} }

// PutAccount records one account under a fence.
func (s *Store) PutAccount(ctx context.Context, f state.Fence, target string, a identity.Account) error {
	if a.Key == "" || target == "" {
		return fmt.Errorf("redisstore: put account in %q: empty key or target", target)
	}
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("redisstore: put account %q in %q: %w", a.Key, target, err)
	}
	err = fencedHSet.Run(ctx, s.c, []string{s.acctTokens(target), s.acctKey(target)}, append(fenceArgs(f), a.Key, v)...).Err()
	if err != nil {
		return fmt.Errorf("redisstore: put account %q in %q: %w", a.Key, target, mapErr(err))
	}
	return nil
}

// PutAccounts records many accounts under a fence, in scripts of up to
// 1,000 accounts (bulk loads and benchmarks; the engine writes one account
// per confirmed action).
func (s *Store) PutAccounts(ctx context.Context, f state.Fence, target string, as []identity.Account) error {
	const batch = 1000
	for len(as) > 0 {
		n := min(batch, len(as))
		args := fenceArgs(f)
		for _, a := range as[:n] {
			if a.Key == "" {
				return fmt.Errorf("redisstore: put accounts in %q: empty key", target)
			}
			v, err := json.Marshal(a)
			if err != nil {
				return fmt.Errorf("redisstore: put account %q in %q: %w", a.Key, target, err)
			}
			args = append(args, a.Key, v)
		}
		if err := fencedHSet.Run(ctx, s.c, []string{s.acctTokens(target), s.acctKey(target)}, args...).Err(); err != nil {
			return fmt.Errorf("redisstore: put %d accounts in %q: %w", n, target, mapErr(err))
		}
		as = as[n:]
	}
	return nil
}

// DeleteAccount forgets an account under a fence.
func (s *Store) DeleteAccount(ctx context.Context, f state.Fence, target, key string) error {
	err := fencedHDel.Run(ctx, s.c, []string{s.acctTokens(target), s.acctKey(target)}, append(fenceArgs(f), key)...).Err()
	if err != nil {
		return fmt.Errorf("redisstore: delete account %q in %q: %w", key, target, mapErr(err))
	}
	return nil
}

// Cursor returns a named cursor or state.ErrNotFound.
func (s *Store) Cursor(ctx context.Context, name string) ([]byte, error) {
	b, err := s.c.Get(ctx, s.k("cursor:", name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: cursor %q: %w", name, state.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: cursor %q: %w", name, err)
	}
	return b, nil
}

// PutCursor stores a named cursor.
func (s *Store) PutCursor(ctx context.Context, name string, v []byte) error {
	if err := s.c.Set(ctx, s.k("cursor:", name), v, 0).Err(); err != nil {
		return fmt.Errorf("redisstore: put cursor %q: %w", name, err)
	}
	return nil
}

// PutRun creates or replaces a run record.
func (s *Store) PutRun(ctx context.Context, r state.Run) error {
	if r.ID == "" {
		return errors.New("redisstore: put run: empty id")
	}
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("redisstore: put run %q: %w", r.ID, err)
	}
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.k("{runs}:data"), r.ID, v)
		p.ZAdd(ctx, s.k("{runs}:idx"), redis.Z{Score: runScore(r.Started), Member: r.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: put run %q: %w", r.ID, err)
	}
	return nil
}

// runScore orders runs by start time (to about a microsecond; ties are
// ordered by id in Go).
func runScore(t time.Time) float64 {
	if t.IsZero() {
		return math.Inf(-1)
	}
	return float64(t.UnixMicro())
}

// GetRun returns a run record or state.ErrNotFound.
func (s *Store) GetRun(ctx context.Context, id string) (state.Run, error) {
	b, err := s.c.HGet(ctx, s.k("{runs}:data"), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return state.Run{}, fmt.Errorf("redisstore: run %q: %w", id, state.ErrNotFound)
	}
	if err != nil {
		return state.Run{}, fmt.Errorf("redisstore: run %q: %w", id, err)
	}
	var r state.Run
	if err := json.Unmarshal(b, &r); err != nil {
		return state.Run{}, fmt.Errorf("redisstore: run %q: %w", id, err)
	}
	return r, nil
}

// Runs returns runs newest first (by Started), at most limit.
func (s *Store) Runs(ctx context.Context, limit int) ([]state.Run, error) {
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) // one extra, so ties at the boundary sort right
	}
	ids, err := s.c.ZRevRange(ctx, s.k("{runs}:idx"), 0, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: runs: %w", err)
	}
	out := make([]state.Run, 0, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := s.c.HMGet(ctx, s.k("{runs}:data"), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: runs: %w", err)
	}
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // deleted meanwhile
		}
		var r state.Run
		if err := json.Unmarshal([]byte(str), &r); err != nil {
			return nil, fmt.Errorf("redisstore: run %q: %w", ids[i], err)
		}
		out = append(out, r)
	}
	memstore.SortRuns(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s *Store) journalKeys() []string {
	return []string{s.k("{journal}:seq"), s.k("{journal}:log")}
}

// AppendDecisions adds records, assigning Seq, and trims the journal, in
// scripts of up to 1,000 records.
func (s *Store) AppendDecisions(ctx context.Context, ds []state.Decision) error {
	const batch = 1000
	for len(ds) > 0 {
		n := min(batch, len(ds))
		args := make([]any, 0, n+1)
		args = append(args, s.journalSize)
		for _, d := range ds[:n] {
			d.Seq = 0
			v, err := json.Marshal(d)
			if err != nil {
				return fmt.Errorf("redisstore: append decisions: %w", err)
			}
			args = append(args, v)
		}
		if err := appendLua.Run(ctx, s.c, s.journalKeys(), args...).Err(); err != nil {
			return fmt.Errorf("redisstore: append %d decisions: %w", n, err)
		}
		ds = ds[n:]
	}
	return nil
}

func decodeEntry(m redis.XMessage) (state.Decision, error) {
	var d state.Decision
	raw, _ := m.Values["d"].(string)
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		return d, fmt.Errorf("record %s: %w", m.ID, err)
	}
	seq, _, _ := strings.Cut(m.ID, "-")
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil {
		return d, fmt.Errorf("record %s: bad id", m.ID)
	}
	d.Seq = n
	return d, nil
}

// Decisions returns matching records oldest first; with q.Limit set, the
// newest q.Limit matches, newest first. It reads the stream in pages by id,
// so concurrent appends and trimming never make it skip a record.
func (s *Store) Decisions(ctx context.Context, q state.DecisionQuery) ([]state.Decision, error) {
	const page = 2000
	key := s.k("{journal}:log")
	var out []state.Decision
	newestFirst := q.Limit > 0
	from := "-"
	if newestFirst {
		from = "+"
	}
	for {
		var (
			msgs []redis.XMessage
			err  error
		)
		if newestFirst {
			msgs, err = s.c.XRevRangeN(ctx, key, from, "-", page).Result()
		} else {
			msgs, err = s.c.XRangeN(ctx, key, from, "+", page).Result()
		}
		if err != nil {
			return nil, fmt.Errorf("redisstore: decisions: %w", err)
		}
		for _, m := range msgs {
			d, err := decodeEntry(m)
			if err != nil {
				return nil, fmt.Errorf("redisstore: decisions: %w", err)
			}
			if !q.Matches(d) {
				continue
			}
			out = append(out, d)
			if newestFirst && len(out) >= q.Limit {
				return out, nil
			}
		}
		if len(msgs) < page {
			return out, nil
		}
		from = "(" + msgs[len(msgs)-1].ID
	}
}

// PutHeld stores a held plan under a fence.
func (s *Store) PutHeld(ctx context.Context, f state.Fence, runID string, plan []byte) error {
	if plan == nil {
		plan = []byte{}
	}
	hash, tokens := s.heldKeyFor(f.Lock)
	if hash != s.heldKey() {
		// The index HeldRuns reads; written first, so a plan is never unlisted.
		if err := s.c.SAdd(ctx, s.k("heldtargets"), strings.TrimPrefix(f.Lock, targetLockPrefix)).Err(); err != nil {
			return fmt.Errorf("redisstore: put held plan %q: %w", runID, err)
		}
	}
	err := fencedHSet.Run(ctx, s.c, []string{tokens, hash}, append(fenceArgs(f), runID, plan)...).Err()
	if err != nil {
		return fmt.Errorf("redisstore: put held plan %q: %w", runID, mapErr(err))
	}
	return nil
}

// GetHeld returns a held plan or state.ErrNotFound.
func (s *Store) GetHeld(ctx context.Context, runID string) ([]byte, error) {
	var b []byte
	var err error = redis.Nil
	if t := heldTargetOf(runID); s.perTarget && t != "" {
		b, err = s.c.HGet(ctx, s.k("{", targetLockPrefix, t, "}:held"), runID).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		b, err = s.c.HGet(ctx, s.heldKey(), runID).Bytes()
	}
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: held plan %q: %w", runID, state.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: held plan %q: %w", runID, err)
	}
	return b, nil
}

// DeleteHeld removes a held plan under a fence.
func (s *Store) DeleteHeld(ctx context.Context, f state.Fence, runID string) error {
	hash, tokens := s.heldKeyFor(f.Lock)
	err := fencedHDel.Run(ctx, s.c, []string{tokens, hash}, append(fenceArgs(f), runID)...).Err()
	if err != nil {
		return fmt.Errorf("redisstore: delete held plan %q: %w", runID, mapErr(err))
	}
	return nil
}

// HeldRuns lists the run ids with a held plan, sorted.
func (s *Store) HeldRuns(ctx context.Context) ([]string, error) {
	ids, err := s.c.HKeys(ctx, s.heldKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: held runs: %w", err)
	}
	if s.perTarget {
		ts, err := s.c.SMembers(ctx, s.k("heldtargets")).Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: held runs: %w", err)
		}
		for _, t := range ts {
			more, err := s.c.HKeys(ctx, s.k("{", targetLockPrefix, t, "}:held")).Result()
			if err != nil {
				return nil, fmt.Errorf("redisstore: held runs of %q: %w", t, err)
			}
			ids = append(ids, more...)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func kvDecode(v string) ([]byte, int64, error) {
	ver, val, ok := strings.Cut(v, " ")
	n, err := strconv.ParseInt(ver, 10, 64)
	if !ok || err != nil {
		return nil, 0, errors.New("corrupt kv entry")
	}
	return []byte(val), n, nil
}

func (s *Store) kvKey(bucket string) string { return s.k("kv:", bucket) }

// KVGet returns a value and its version.
func (s *Store) KVGet(ctx context.Context, bucket, key string) ([]byte, int64, error) {
	v, err := s.c.HGet(ctx, s.kvKey(bucket), key).Result()
	if errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("redisstore: kv %s/%s: %w", bucket, key, state.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("redisstore: kv %s/%s: %w", bucket, key, err)
	}
	val, ver, err := kvDecode(v)
	if err != nil {
		return nil, 0, fmt.Errorf("redisstore: kv %s/%s: %w", bucket, key, err)
	}
	return val, ver, nil
}

// versionErr rebuilds the mismatch error from a script's {0, cur, exists}.
func versionErr(res []any, ifVersion int64) error {
	var cur, exists int64
	if len(res) >= 3 {
		cur, _ = res[1].(int64)
		exists, _ = res[2].(int64)
	}
	if err := memstore.CheckVersion(cur, exists == 1, ifVersion); err != nil {
		return err
	}
	return state.ErrVersionMismatch
}

// KVPut writes a value; see state.Store.
func (s *Store) KVPut(ctx context.Context, bucket, key string, val []byte, ifVersion int64) (int64, error) {
	if bucket == "" || key == "" {
		return 0, fmt.Errorf("redisstore: kv put %s/%s: empty bucket or key", bucket, key)
	}
	if ifVersion < -1 {
		return 0, fmt.Errorf("redisstore: kv put %s/%s: %w", bucket, key, memstore.CheckVersion(0, false, ifVersion))
	}
	res, err := kvPutLua.Run(ctx, s.c, []string{s.kvKey(bucket)}, key, val, ifVersion).Slice()
	if err != nil {
		return 0, fmt.Errorf("redisstore: kv put %s/%s: %w", bucket, key, err)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		return 0, fmt.Errorf("redisstore: kv put %s/%s: %w", bucket, key, versionErr(res, ifVersion))
	}
	v, _ := res[1].(int64)
	return v, nil
}

// KVDelete removes a key; see state.Store.
func (s *Store) KVDelete(ctx context.Context, bucket, key string, ifVersion int64) error {
	if ifVersion < -1 {
		return fmt.Errorf("redisstore: kv delete %s/%s: %w", bucket, key, memstore.CheckVersion(0, false, ifVersion))
	}
	res, err := kvDelLua.Run(ctx, s.c, []string{s.kvKey(bucket)}, key, ifVersion).Slice()
	if err != nil {
		return fmt.Errorf("redisstore: kv delete %s/%s: %w", bucket, key, err)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		return fmt.Errorf("redisstore: kv delete %s/%s: %w", bucket, key, versionErr(res, ifVersion))
	}
	return nil
}

// KVList returns every key and value in a bucket.
func (s *Store) KVList(ctx context.Context, bucket string) (map[string][]byte, error) {
	m, err := s.c.HGetAll(ctx, s.kvKey(bucket)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: kv list %s: %w", bucket, err)
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		val, _, err := kvDecode(v)
		if err != nil {
			return nil, fmt.Errorf("redisstore: kv list %s: key %q: %w", bucket, k, err)
		}
		out[k] = val
	}
	return out, nil
}

func ttlMS(ttl time.Duration) int64 { return max(1, ttl.Milliseconds()) }

// AcquireLock takes or renews the named lock; see state.Store.
func (s *Store) AcquireLock(ctx context.Context, name, owner string, ttl time.Duration) (state.Lease, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return state.Lease{}, fmt.Errorf("redisstore: acquire lock %q: name, owner and a positive ttl are required", name)
	}
	now := s.now()
	tok, err := acquireLua.Run(ctx, s.c, []string{s.lockKey(name), s.tokensFor(name)}, name, owner, ttlMS(ttl)).Int64()
	if err != nil {
		return state.Lease{}, fmt.Errorf("redisstore: acquire lock %q: %w", name, mapErr(err))
	}
	l := state.Lease{Name: name, Owner: owner, Token: tok, Expires: now.Add(ttl)}
	if s.ownSlot(name) {
		if err := s.migrateTarget(ctx, l); err != nil {
			_ = s.ReleaseLock(context.WithoutCancel(ctx), l)
			return state.Lease{}, fmt.Errorf("redisstore: acquire lock %q: %w", name, err)
		}
	}
	return l, nil
}

// migrateTarget copies a target's accounts from the one-lease layout into
// its own slot, once, under the target's new lease, before the lease is
// handed out: no account is written in the new layout before the copy is
// whole, so a copy cut short is simply made again by the next holder.
func (s *Store) migrateTarget(ctx context.Context, l state.Lease) error {
	name := l.Name
	marker := s.k("{", name, "}:migrated")
	if n, err := s.c.Exists(ctx, marker).Result(); err != nil || n == 1 {
		return err
	}
	target := strings.TrimPrefix(name, targetLockPrefix)
	legacy := s.k("{fenced}:acct:", target)
	keys := []string{s.tokensFor(name), s.acctKey(target)}
	var cursor uint64
	copied := 0
	for {
		kv, next, err := s.c.HScan(ctx, legacy, cursor, "*", 1000).Result()
		if err != nil {
			return fmt.Errorf("copy the accounts of %q: %w", target, err)
		}
		if len(kv) > 0 {
			if err := fencedHSet.Run(ctx, s.c, keys, append(fenceArgs(l.Fence()), toAny(kv)...)...).Err(); err != nil {
				return fmt.Errorf("copy the accounts of %q: %w", target, mapErr(err))
			}
			copied += len(kv) / 2
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	at := s.now().UTC().Format(time.RFC3339)
	err := fencedHSet.Run(ctx, s.c, []string{s.tokensFor(name), marker}, append(fenceArgs(l.Fence()), "at", at, "accounts", strconv.Itoa(copied))...).Err()
	if err != nil {
		return fmt.Errorf("mark the accounts of %q copied: %w", target, mapErr(err))
	}
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, v := range ss {
		out[i] = v
	}
	return out
}

// RenewLock extends a lease while no newer lease was issued for its name;
// otherwise it returns state.ErrLockHeld.
func (s *Store) RenewLock(ctx context.Context, l state.Lease, ttl time.Duration) (state.Lease, error) {
	if ttl <= 0 || l.Token <= 0 {
		return state.Lease{}, fmt.Errorf("redisstore: renew lock %q: a lease and a positive ttl are required", l.Name)
	}
	now := s.now()
	ok, err := renewLua.Run(ctx, s.c, []string{s.lockKey(l.Name), s.tokensFor(l.Name)}, l.Name, l.Owner, strconv.FormatInt(l.Token, 10), ttlMS(ttl)).Int64()
	if err != nil {
		return state.Lease{}, fmt.Errorf("redisstore: renew lock %q: %w", l.Name, err)
	}
	if ok != 1 {
		return state.Lease{}, fmt.Errorf("redisstore: renew lock %q: lease lost: %w", l.Name, state.ErrLockHeld)
	}
	l.Expires = now.Add(ttl)
	return l, nil
}

// ReleaseLock frees the lock if l still holds it.
func (s *Store) ReleaseLock(ctx context.Context, l state.Lease) error {
	err := releaseLua.Run(ctx, s.c, []string{s.lockKey(l.Name)}, strconv.FormatInt(l.Token, 10), l.Owner).Err()
	if err != nil {
		return fmt.Errorf("redisstore: release lock %q: %w", l.Name, err)
	}
	return nil
}

// registryKey is the one key outside the prefix: the application endpoints
// each deployment (key prefix) writes to, so two deployments sharing one
// Redis see each other.
const registryKey = "dirsync-registry:endpoints"

var _ state.EndpointRegistry = (*Store)(nil)

// Deployment implements state.EndpointRegistry: the key prefix.
func (s *Store) Deployment() string { return s.p }

// ClaimEndpoints implements state.EndpointRegistry.
func (s *Store) ClaimEndpoints(ctx context.Context, claims map[string]string, ttl time.Duration) error {
	if len(claims) == 0 {
		return nil
	}
	now := s.now().UTC()
	vals := make([]any, 0, 2*len(claims))
	for ep, tgt := range claims {
		b, err := json.Marshal(state.Claim{Endpoint: ep, Target: tgt, Deployment: s.p, Until: now.Add(ttl)})
		if err != nil {
			return fmt.Errorf("redisstore: claim endpoints: %w", err)
		}
		vals = append(vals, s.p+"\x00"+ep, b)
	}
	if err := s.c.HSet(ctx, registryKey, vals...).Err(); err != nil {
		return fmt.Errorf("redisstore: claim endpoints: %w", err)
	}
	return nil
}

// EndpointClaims implements state.EndpointRegistry. Lapsed claims are
// dropped from the registry on the way.
func (s *Store) EndpointClaims(ctx context.Context) ([]state.Claim, error) {
	all, err := s.c.HGetAll(ctx, registryKey).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: endpoint claims: %w", err)
	}
	now := s.now()
	var out []state.Claim
	var lapsed []string
	for f, v := range all {
		var c state.Claim
		if json.Unmarshal([]byte(v), &c) != nil || c.Until.Before(now) {
			lapsed = append(lapsed, f)
			continue
		}
		out = append(out, c)
	}
	if len(lapsed) > 0 {
		_ = s.c.HDel(ctx, registryKey, lapsed...).Err()
	}
	slices.SortFunc(out, func(a, b state.Claim) int {
		return strings.Compare(a.Endpoint+"\x00"+a.Deployment, b.Endpoint+"\x00"+b.Deployment)
	})
	return out, nil
}
