package sync

// Stage "link": every record of every source is placed into a person
// through the link table (invariant 5), and a targeted run's keys are
// resolved to the people they name.

import (
	"context"
	"fmt"
	"strings"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
)

// linkStage links the records read and, for a targeted run, resolves its
// keys to people; a key that names nobody turns the run into a full one
// planned from the stored reads.
func (rc *runCtx) linkStage(ctx context.Context) error {
	if err := rc.link(ctx, rc.snaps); err != nil {
		return err
	}
	if rc.ro.Keys != nil {
		var k string
		if rc.persons, k = rc.resolveKeys(); k != "" {
			// A change about a record no read ever carried (deleted before
			// it was pulled) names nobody: every person is planned from the
			// stored reads instead.
			rc.decide(state.Decision{Target: "*", User: "*", Action: "full_run", Outcome: OutcomeApplied,
				Reason: fmt.Sprintf("the change to record %s could not be resolved to a person: every person is planned from the last reads", k)})
			rc.ro.Keys, rc.ro.UseStored = nil, true
		}
	}
	return nil
}

// link places every record of every source into a person through the link
// table, and stores the new links (leader only). Sources not read in this
// run contribute their stored snapshot, so a record is never given a new
// person only because the source of its existing one failed to answer.
func (rc *runCtx) link(ctx context.Context, snaps map[string]*identity.Snapshot) error {
	e := rc.e
	links, err := e.o.Store.Links(ctx)
	if err != nil {
		return fmt.Errorf("sync: load link table: %w", err)
	}
	var all []*identity.Snapshot
	var names []string
	for _, src := range e.o.Sources {
		s, ok := snaps[src.Name()]
		if !ok {
			var err error
			if s, err = e.o.Store.GetSnapshot(ctx, src.Name()); err != nil {
				continue
			}
		}
		all = append(all, s)
		names = append(names, src.Name())
	}
	// Records the previous reads had and these do not: a record that moved
	// to another source in between keeps its person.
	var ghosts []identity.User
	present := map[string]bool{}
	for _, sn := range all {
		for _, u := range sn.Users {
			present[identity.RecordID(sn.Source, u.Key)] = true
		}
	}
	rc.mu.Lock()
	for _, prev := range rc.prev {
		for _, u := range prev.Users {
			if u.Source == "" {
				u.Source = prev.Source
			}
			if id := identity.RecordID(u.Source, u.Key); !present[id] && links[id] != "" {
				ghosts = append(ghosts, u)
			}
		}
	}
	rc.mu.Unlock()
	l := identity.LinkWith(e.o.JoinKey, links, ghosts, all...)
	rc.links, rc.linked, rc.linkedFrom = l.Links, l, names
	if len(l.New) > 0 && !rc.ro.NoApply && !rc.ro.DryRun {
		if err := e.o.Store.PutLinks(ctx, e.o.Fence(), l.New); err != nil {
			return fmt.Errorf("sync: store link table: %w", err)
		}
	}
	return nil
}

// alsoTheirOldAccounts adds to a targeted run the accounts of people no
// source knows any more that carry the username or email of a person the
// run is about: a person who comes back under a new identity also settles
// what their old accounts still owe (a deletion declined earlier).
func (rc *runCtx) alsoTheirOldAccounts(keys map[string]bool, known map[string]identity.User, cached map[string]identity.Account) {
	names := map[string]bool{}
	for k := range keys {
		if u, ok := known[k]; ok {
			for _, v := range []string{u.Username, u.Email} {
				if v != "" {
					names[strings.ToLower(v)] = true
				}
			}
		}
	}
	if len(names) == 0 {
		return
	}
	for k, c := range cached {
		if _, isKnown := known[k]; isKnown || !c.Exists || keys[k] {
			continue
		}
		if names[strings.ToLower(c.Username)] || (c.Email != "" && names[strings.ToLower(c.Email)]) {
			keys[k] = true
		}
	}
}

// resolveKeys turns a targeted run's keys (source record keys, or person
// ids) into the people they belong to, in one pass over the link table.
// Keys no source carries any more (a deleted record) still name their
// linked person, and stay in the set (they may name a cached account).
// unresolved is a key that names no record and no person ("" when all do).
func (rc *runCtx) resolveKeys() (persons map[string]bool, unresolved string) {
	want := make(map[string]bool, len(rc.ro.Keys))
	persons = make(map[string]bool, len(rc.ro.Keys))
	for _, k := range rc.ro.Keys {
		want[k], persons[k] = true, true
	}
	found := map[string]bool{}
	for rec, pid := range rc.links {
		k := ""
		switch {
		case want[pid]:
			k = pid
		case want[rec]:
			k = rec
		default:
			if i := strings.IndexByte(rec, ':'); i >= 0 && want[rec[i+1:]] {
				k = rec[i+1:]
			}
		}
		if k != "" {
			persons[pid], found[k] = true, true
		}
	}
	for _, k := range rc.ro.Keys {
		if !found[k] {
			return persons, k
		}
	}
	return persons, ""
}
