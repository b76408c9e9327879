package sync

// Stage "desire": a target's sources (a failed one replaced by its last
// good read) give its people, and the target's rules (scope, roles,
// groups, username, deprovision) the account each should have.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
)

// desire fills f.snaps, f.linked, f.rules, f.known and f.desired. A target
// whose only source failed, or that has a source with no read at all,
// changes nothing this run (errStopTarget, with a decision).
func (rc *runCtx) desire(ctx context.Context, f *flow) error {
	snaps, err := rc.targetReads(ctx, f)
	if err != nil {
		return err
	}
	f.snaps = snaps
	var ordered []*identity.Snapshot
	for _, n := range rc.sourcesFor(f.spec) {
		ordered = append(ordered, snaps[n])
	}
	// Every record is linked already (rc.link ran over all sources): a
	// target of every source takes that result as is; another target only
	// gathers its sources' records into their people.
	f.linked = rc.linked
	if len(ordered) != len(rc.linkedFrom) || !slices.Equal(rc.sourcesFor(f.spec), rc.linkedFrom) {
		f.linked = identity.Link(rc.e.o.JoinKey, rc.links, ordered...)
	}
	users := f.linked.Users
	f.rules = RulesFrom(f.spec.Config)
	f.desired = BuildDesired(users, f.rules, rc.now)
	f.known = make(map[string]identity.User, len(users))
	for _, u := range users {
		f.known[u.Key] = u
	}
	return nil
}

// targetReads returns the reads the target plans from. A failed or refused
// source decides nothing new: its last good read stands in for it, so what
// the target's other sources say (a leaver) is still applied. Without one,
// nothing is done.
func (rc *runCtx) targetReads(ctx context.Context, f *flow) (map[string]*identity.Snapshot, error) {
	name := f.name
	snaps := rc.snaps
	for _, s := range rc.sourcesFor(f.spec) {
		if err, bad := rc.srcErrs[s]; bad {
			stored, gerr := rc.e.o.Store.GetSnapshot(ctx, s)
			if gerr != nil || stored == nil {
				rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeSkipped,
					Reason: fmt.Sprintf("source %s failed and has no earlier good read: nothing changed in %s this run", s, name), Error: err.Error()})
				return nil, errStopTarget
			}
			if len(rc.sourcesFor(f.spec)) == 1 {
				rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeSkipped,
					Reason: fmt.Sprintf("source %s failed: nothing changed in %s this run", s, name), Error: err.Error()})
				return nil, errStopTarget
			}
			own := maps.Clone(snaps)
			own[s] = stored
			snaps = own
			rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeSkipped,
				Reason: fmt.Sprintf("source %s failed: its last good read (%s) stands in for it; what the other sources say is applied to %s",
					s, stored.TakenAt.UTC().Format(time.RFC3339), name), Error: err.Error()})
			continue
		}
		if snaps[s] == nil {
			rc.decide(state.Decision{Target: name, User: "*", Action: "run", Outcome: OutcomeSkipped,
				Reason: fmt.Sprintf("source %s has no snapshot yet", s)})
			return nil, errStopTarget
		}
	}
	return snaps, nil
}
