package sync

import (
	"context"
	"fmt"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
)

// MergeChange folds an incremental change into a source's stored snapshot
// and returns the keys a targeted run must look at. Without a stored
// snapshot it fails: a full run must come first.
func (e *Engine) MergeChange(ctx context.Context, src string, ch source.Change) ([]string, error) {
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
	if len(ch.Deletes) > 0 {
		del := map[string]bool{}
		for _, k := range ch.Deletes {
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
	}
	snap.TakenAt = e.o.Now().UTC()
	if err := e.o.Store.PutSnapshot(ctx, snap); err != nil {
		return nil, fmt.Errorf("sync: merge change from %s: store: %w", src, err)
	}
	return identity.SortedSet(keys), nil
}
