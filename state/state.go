// Package state defines dirsync's persistent state — source snapshots, the
// per-target last-applied accounts, cursors, run records, the decision
// journal, held plans, a generic key/value area (the SCIM server's
// resources), and the leader lock with its fencing token — and the Store
// interface its backends (embedded bbolt, Redis) implement.
package state

import (
	"context"
	"errors"
	"time"

	"github.com/dirsync/dirsync/identity"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("state: not found")

// ErrStaleFence is returned when a fenced write carries a token older than
// the current lock holder's: a newer leader exists, and the write is refused.
var ErrStaleFence = errors.New("state: stale fencing token: another replica holds the leader lock")

// ErrLockHeld is returned by AcquireLock when another owner holds the lock.
var ErrLockHeld = errors.New("state: lock held by another owner")

// ErrVersionMismatch is returned by KVPut when the expected version differs.
var ErrVersionMismatch = errors.New("state: version mismatch")

// Fence is the proof of leadership a write carries. The zero Fence means
// "unfenced" and is accepted only while no lock has ever been taken for
// that name (single-process use, tests).
type Fence struct {
	Lock  string
	Token int64
}

// Lease is a held lock.
type Lease struct {
	Name    string
	Owner   string
	Token   int64 // strictly increasing per lock name: the fencing token
	Expires time.Time
}

// Fence returns the fence for writes made under this lease.
func (l Lease) Fence() Fence { return Fence{Lock: l.Name, Token: l.Token} }

// Run is the record of one engine run.
type Run struct {
	ID       string         `json:"id"`
	Trigger  string         `json:"trigger"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished,omitzero"`
	Status   string         `json:"status"` // running, ok, partial, held, failed, dry_run
	Error    string         `json:"error,omitempty"`
	Counts   map[string]int `json:"counts,omitempty"` // outcome → decisions
	Held     bool           `json:"held,omitempty"`
	// Sources records each source's user count in this run.
	Sources map[string]int `json:"sources,omitempty"`
}

// Decision is one journal record: what the engine decided for one account
// and what came of it. The same record is logged as a zap line.
type Decision struct {
	Time       time.Time `json:"time"`
	RunID      string    `json:"run_id"`
	Trigger    string    `json:"trigger"`
	Target     string    `json:"target"`
	User       string    `json:"user"`
	Action     string    `json:"action"`
	Reason     string    `json:"reason"`
	Outcome    string    `json:"outcome"` // applied, skipped, failed, held, dry_run
	Attempt    int       `json:"attempt"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
	// Seq is assigned by the store: the journal's order.
	Seq int64 `json:"seq"`
}

// DecisionQuery filters the journal; zero fields match everything.
type DecisionQuery struct {
	User   string
	Target string
	RunID  string
	Since  time.Time
	Limit  int // newest first when set; 0 = all kept records
}

// Matches reports whether d passes q.
func (q DecisionQuery) Matches(d Decision) bool {
	return (q.User == "" || q.User == d.User) && (q.Target == "" || q.Target == d.Target) &&
		(q.RunID == "" || q.RunID == d.RunID) && (q.Since.IsZero() || !d.Time.Before(q.Since))
}

// Store is the state backend. Every method is safe for concurrent use.
// Writes that change what targets look like (accounts, held plans) are
// fenced: see Fence.
type Store interface {
	// Ping checks the backend is reachable (for /readyz).
	Ping(ctx context.Context) error
	Close() error

	// PutSnapshot stores a source's latest complete snapshot. It is fenced:
	// only the leader writes what the engine plans from.
	PutSnapshot(ctx context.Context, f Fence, snap *identity.Snapshot) error
	// GetSnapshot returns ErrNotFound when none was stored.
	GetSnapshot(ctx context.Context, source string) (*identity.Snapshot, error)

	// Accounts returns a target's last-applied accounts by Account.Key.
	Accounts(ctx context.Context, target string) (map[string]identity.Account, error)
	// PutAccount records one account right after the application confirmed
	// an action on it.
	PutAccount(ctx context.Context, f Fence, target string, a identity.Account) error
	// DeleteAccount forgets an account (after a confirmed delete).
	DeleteAccount(ctx context.Context, f Fence, target, key string) error

	// Links returns the link table: RecordID ("source:key") → person id.
	Links(ctx context.Context) (map[string]string, error)
	// PutLinks adds entries to the link table under a fence. Entries are
	// never changed once written: a person keeps one identity.
	PutLinks(ctx context.Context, f Fence, links map[string]string) error

	// Cursor returns an incremental cursor (USN, syncrepl cookie); ErrNotFound if unset.
	Cursor(ctx context.Context, name string) ([]byte, error)
	PutCursor(ctx context.Context, name string, v []byte) error

	// PutRun creates or replaces a run record.
	PutRun(ctx context.Context, r Run) error
	GetRun(ctx context.Context, id string) (Run, error)
	// Runs returns the newest runs first, at most limit (0 = all).
	Runs(ctx context.Context, limit int) ([]Run, error)

	// AppendDecisions adds records to the journal, assigning Seq. The journal
	// keeps the newest JournalSize records and drops older ones.
	AppendDecisions(ctx context.Context, ds []Decision) error
	// Decisions returns matching records, oldest first (newest Limit when set).
	Decisions(ctx context.Context, q DecisionQuery) ([]Decision, error)

	// PutHeld stores a held plan (opaque JSON) under its run id.
	PutHeld(ctx context.Context, f Fence, runID string, plan []byte) error
	GetHeld(ctx context.Context, runID string) ([]byte, error)
	DeleteHeld(ctx context.Context, f Fence, runID string) error
	// HeldRuns lists the run ids with a held plan.
	HeldRuns(ctx context.Context) ([]string, error)

	// KVGet returns a value and its version (ErrNotFound if absent).
	KVGet(ctx context.Context, bucket, key string) (val []byte, version int64, err error)
	// KVPut writes a value. ifVersion -1 writes unconditionally; 0 requires
	// the key to be absent; n > 0 requires the current version to be n.
	// It returns the new version, or ErrVersionMismatch.
	KVPut(ctx context.Context, bucket, key string, val []byte, ifVersion int64) (int64, error)
	// KVDelete removes a key; ifVersion as in KVPut. Deleting an absent key
	// with ifVersion -1 is not an error.
	KVDelete(ctx context.Context, bucket, key string, ifVersion int64) error
	// KVList returns every key and value in a bucket.
	KVList(ctx context.Context, bucket string) (map[string][]byte, error)

	// AcquireLock takes the named lock for owner for ttl, returning a lease
	// whose token is higher than any earlier lease's; ErrLockHeld if another
	// owner holds it. The same owner re-acquiring renews it.
	AcquireLock(ctx context.Context, name, owner string, ttl time.Duration) (Lease, error)
	// RenewLock extends a lease; ErrLockHeld (or ErrStaleFence) if it was lost.
	RenewLock(ctx context.Context, l Lease, ttl time.Duration) (Lease, error)
	// ReleaseLock gives the lock up if l still holds it.
	ReleaseLock(ctx context.Context, l Lease) error
}

// Claim says that one deployment (one key prefix of a shared store) writes
// to an application endpoint through one of its targets.
type Claim struct {
	Endpoint   string `json:"endpoint"`
	Target     string `json:"target"`
	Deployment string `json:"deployment"`
	// Until is when the claim lapses unless renewed.
	Until time.Time `json:"until"`
}

// EndpointRegistry is implemented by stores that several deployments can
// share without seeing each other's state (one Redis, different key
// prefixes). Each deployment registers the application endpoints it writes
// to, outside its own namespace, so that two deployments writing to one
// application (two writers, each with its own idea of what it applied) are
// seen. It decides nothing: the daemon and `dirsync validate` warn.
type EndpointRegistry interface {
	// Deployment names this store's deployment (its key prefix).
	Deployment() string
	// ClaimEndpoints records that this deployment writes to these
	// endpoints (endpoint → target name) now; a claim not renewed within
	// ttl lapses.
	ClaimEndpoints(ctx context.Context, claims map[string]string, ttl time.Duration) error
	// EndpointClaims returns every claim that has not lapsed, of every
	// deployment.
	EndpointClaims(ctx context.Context) ([]Claim, error)
}

// OtherWriters returns the claims of other deployments on the endpoints
// this one writes to (endpoint → target name).
func OtherWriters(claims []Claim, self string, mine map[string]string) []Claim {
	var out []Claim
	for _, c := range claims {
		if c.Deployment != self && mine[c.Endpoint] != "" {
			out = append(out, c)
		}
	}
	return out
}

// IndexEntry is one entry of a sorted secondary index over a KV bucket. The
// store keeps it as Term + "\x00" + key, ordered bytewise, so entries of one
// term sort by key. Term must not contain a zero byte.
type IndexEntry struct {
	Index string
	Term  string
}

// IndexRange selects the entries of one index whose stored form e
// (Term + "\x00" + key) satisfies Lo <= e and, when Hi is set, e < Hi.
type IndexRange struct {
	Index  string
	Lo, Hi string
	// KeysOnly leaves KVItem.Val empty (membership lookups of large values).
	KeysOnly bool
}

// KVItem is one key of a KV bucket with its value and version.
type KVItem struct {
	Key     string
	Val     []byte
	Version int64
}

// IndexedKV is implemented by stores that keep sorted secondary indexes over
// KV buckets, changed atomically with the values. It is optional (callers
// fall back to KVList): the SCIM server uses it to list, filter, page and
// count its resources without reading whole buckets.
type IndexedKV interface {
	// KVPutIndexed is KVPut (ifVersion >= 0: the caller read the value it
	// replaces) that, in the same atomic write, removes the entries del of
	// this key and adds the entries add.
	KVPutIndexed(ctx context.Context, bucket, key string, val []byte, ifVersion int64, del, add []IndexEntry) (int64, error)
	// KVDeleteIndexed is KVDelete (ifVersion > 0) that also removes del.
	KVDeleteIndexed(ctx context.Context, bucket, key string, ifVersion int64, del []IndexEntry) error
	// KVIndexAdd adds entries for key only while its version is still
	// version (index rebuilds); it reports whether they were added.
	KVIndexAdd(ctx context.Context, bucket, key string, version int64, add []IndexEntry) (bool, error)
	// KVIndexDrop removes every entry of one index of a bucket.
	KVIndexDrop(ctx context.Context, bucket, index string) error
	// KVRange returns how many entries r selects and, in entry order from
	// the offset-th (0-based), at most limit of their keys with value and
	// version. limit 0 only counts. A key with several entries in r appears
	// once per entry.
	KVRange(ctx context.Context, bucket string, r IndexRange, offset, limit int) (total int, items []KVItem, err error)
}
