package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
)

// ErrNotLeader is returned by MergeChange on a replica that does not hold
// the leader lock: only the leader writes shared state, so a standby
// forwards what it receives instead.
var ErrNotLeader = errors.New("sync: not the leader: changes are forwarded to the leader")

// MergeChange folds an incremental change into a source's stored snapshot
// and returns the record keys a targeted run must look at. Without a
// stored snapshot it fails: a full run must come first. The snapshot write
// is fenced: a replica that is not the leader changes nothing.
func (e *Engine) MergeChange(ctx context.Context, src string, ch source.Change) ([]string, error) {
	return e.MergeChanges(ctx, src, []source.Change{ch})
}

// MergeChanges is MergeChange for several changes of one source, in the
// order they happened, with one snapshot read and one write: a burst of
// changes costs one store round trip, not one per change.
func (e *Engine) MergeChanges(ctx context.Context, src string, chs []source.Change) ([]string, error) {
	if e.o.Leading != nil && !e.o.Leading() {
		return nil, ErrNotLeader
	}
	e.runMu.Lock()
	defer e.runMu.Unlock()
	snap, err := e.o.Store.GetSnapshot(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("sync: merge change from %s: %w", src, err)
	}
	idx := make(map[string]int, len(snap.Users))
	for i, u := range snap.Users {
		idx[u.Key] = i
	}
	var keys []string
	for _, ch := range chs {
		keys = mergeOne(snap, idx, src, ch, keys)
	}
	snap.TakenAt = e.o.Now().UTC()
	if err := e.o.Store.PutSnapshot(ctx, e.o.Fence(), snap); err != nil {
		if errors.Is(err, state.ErrStaleFence) {
			return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return nil, fmt.Errorf("sync: merge change from %s: store: %w", src, err)
	}
	return identity.SortedSet(keys), nil
}

// mergeOne folds one change into snap (idx: key → position, kept up to
// date) and returns keys with the record keys it touched.
func mergeOne(snap *identity.Snapshot, idx map[string]int, src string, ch source.Change, keys []string) []string {
	for _, u := range ch.Upserts {
		if u.Source == "" {
			u.Source = src
		}
		if i, ok := idx[u.Key]; ok {
			snap.Users[i] = u
		} else {
			idx[u.Key] = len(snap.Users)
			snap.Users = append(snap.Users, u)
		}
		keys = append(keys, u.Key)
	}
	// A group membership change touches the members added and removed:
	// those still in the source's scope come with their complete record in
	// Upserts; the others left the scope and are dropped from the snapshot.
	upserted := map[string]bool{}
	for _, u := range ch.Upserts {
		upserted[u.Key] = true
	}
	deletes := slices.Clone(ch.Deletes)
	for _, g := range ch.GroupChanges {
		for _, k := range append(slices.Clone(g.Added), g.Removed...) {
			keys = append(keys, k)
			if !upserted[k] {
				deletes = append(deletes, k)
			}
		}
	}
	if len(deletes) > 0 {
		del := map[string]bool{}
		for _, k := range deletes {
			del[k] = true
			keys = append(keys, k)
		}
		kept := snap.Users[:0]
		for _, u := range snap.Users {
			if !del[u.Key] {
				kept = append(kept, u)
			}
		}
		snap.Users = kept
		clear(idx)
		for i, u := range snap.Users {
			idx[u.Key] = i
		}
	}
	return keys
}
