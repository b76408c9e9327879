// Package source defines what a directory source is: something that returns a
// complete snapshot of people and groups, and optionally streams changes.
package source

import (
	"context"
	"errors"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// Source reads people and groups from one directory.
type Source interface {
	// Name is the configured source name.
	Name() string
	// Pull returns a complete snapshot. A partial read (size limit, referral,
	// closed connection, time limit) is an error, never a short snapshot.
	Pull(ctx context.Context) (*identity.Snapshot, error)
}

// Change is what an incremental source reports between full pulls.
type Change struct {
	// Upserts are users added or changed (complete records, groups resolved).
	Upserts []identity.User
	// Deletes are keys of users that no longer exist.
	Deletes []string
	// Full asks the engine for a full pull instead (cursor lost, DC changed).
	Full bool
	// Reason says what was seen ("syncrepl: 1 entry modified").
	Reason string
	// GroupChanges are group membership changes the source could resolve
	// to users (it knew the group's member list before and after). Every
	// user key in Added or Removed that still exists in the source's scope
	// also has its complete record (all groups resolved) in Upserts of the
	// same Change; a key in neither Upserts nor Deletes left the scope.
	// Additive: a change carrying GroupChanges never also sets Full.
	GroupChanges []GroupChange
}

// GroupChange is one group's membership change, resolved to users.
type GroupChange struct {
	// Key is the group's key in the source (objectGUID, entryUUID).
	Key string
	// Name is the group's name as users' Groups carry it.
	Name string
	// Added and Removed are keys of users (of this source) who gained or
	// lost membership, directly or through a nested group.
	Added, Removed []string
	// Deleted: the group itself is gone (or left the source's scope); its
	// former members are in Removed.
	Deleted bool
}

// Watcher is implemented by sources that can report changes between full
// pulls (syncrepl, USN polling, SCIM pushes). Watch blocks until ctx ends,
// calling notify for each batch of changes; cursors it needs to resume are
// kept through the Cursors it was built with.
type Watcher interface {
	Watch(ctx context.Context, notify func(Change)) error
}

// Resolver is implemented by sources whose current records can be read by
// key (the SCIM server, whose resources live in the shared store). The
// leader resolves the changes a standby forwards through it: what it merges
// is the record as it is now, so a forwarded change that arrives late can
// never overwrite a newer one.
type Resolver interface {
	Resolve(ctx context.Context, keys []string, reason string) (Change, error)
}

// Cursors is the part of the state store an incremental source needs.
type Cursors interface {
	Cursor(ctx context.Context, name string) ([]byte, error)
	PutCursor(ctx context.Context, name string, v []byte) error
}

// Deps are what the engine hands every source.
type Deps struct {
	Logger  *zap.Logger
	Cursors Cursors
	// WatchHealth, when set, hears how a Watch's connection fares: nil when
	// it (re)connected, the error of each attempt that failed. A watch
	// that retries by itself is otherwise invisible until the next full
	// pull; this is how the daemon turns the source red within seconds.
	WatchHealth func(err error)
}

// Factory builds a source from its config. No network until Pull or Watch.
type Factory func(cfg config.Source, deps Deps) (Source, error)

// EmptyAllowed is implemented by push-based sources (SCIM) that are
// legitimately empty until an identity provider first pushes. The engine
// still refuses an empty read once the source has had users.
type EmptyAllowed interface {
	AllowEmpty() bool
}

// ErrWatchUnsupported is returned at once by Watch when the source, as
// configured, cannot report changes (incremental mode none); the daemon
// then re-reads it on the schedule's incremental interval instead.
var ErrWatchUnsupported = errors.New("source: incremental changes not supported by this source's configuration")
