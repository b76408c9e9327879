package sync

// Stage "plan": the pure planner (MakePlan, plan.go) diffs the desired
// accounts against the cache; the orphans a read back found join the plan
// through the connector's gate, link conflicts become skips, and the next
// clock-driven change of the target is worked out.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/connector"
)

// Prepared is a target's planning input and plan, before the guard.
type Prepared struct {
	Spec    TargetSpec
	Input   PlanInput
	Plan    Plan
	Desired map[string]Desired
}

// plan fills f.in, f.plan and f.due, and hands the plan to the run's
// result. A plan-only run (plan files, explain, re-checks) ends here.
func (rc *runCtx) plan(_ context.Context, f *flow) error {
	e := rc.e
	capab := CapabilityOf(f.spec.Target)
	if len(f.spec.Config.Order) > 0 {
		capab.Order = nil
		for _, a := range f.spec.Config.Order {
			capab.Order = append(capab.Order, connector.Action(a))
		}
	}
	f.in = PlanInput{Target: f.name, Cap: capab, Rules: f.rules, Desired: f.desired, Cached: f.cached, Keys: f.keys,
		Known: f.known, Now: rc.now, QuarantineAfter: e.o.Limits.QuarantineAfter, RetryQuarantined: rc.ro.RetryQuarantined,
		Fresh: rc.ro.Keys == nil && !rc.ro.UseStored}
	f.plan = MakePlan(f.in)
	// Orphans pass the connector's gate like any step; a refused delete
	// suspends instead (fallback.go).
	addOrphans(&f.plan, capab, f.orphans, rc.now)
	rc.conflictSkips(f)
	f.due = rc.nextDue(f)
	p := &Prepared{Spec: f.spec, Input: f.in, Plan: f.plan, Desired: f.desired}
	if rc.ro.onPrepared != nil {
		rc.ro.onPrepared(p)
	}
	rc.mu.Lock()
	rc.res.Plans = append(rc.res.Plans, p.Plan)
	rc.res.Fingerprints[f.name] = Fingerprint(p.Input.Cached)
	rc.mu.Unlock()
	if rc.ro.NoApply {
		return errStopTarget
	}
	return nil
}

// conflictSkips adds a skip for every link conflict the run is about: the
// record is left out until the directory tells the two apart.
func (rc *runCtx) conflictSkips(f *flow) {
	keys := f.keys
	for _, c := range f.linked.Conflicts {
		if keys != nil && !keys[c.Record] && !slices.ContainsFunc(c.With, func(w string) bool { return keys[w] }) {
			continue
		}
		named := func(id string) string {
			if n := c.Names[id]; n != "" {
				return fmt.Sprintf("%s (%s)", id, n)
			}
			return id
		}
		var with []string
		for _, w := range c.With {
			with = append(with, named(w))
		}
		user := c.Names[c.Record]
		if user == "" {
			user = c.Record
		}
		f.plan.Skips = append(f.plan.Skips, Step{Target: f.name, Key: c.Record, User: user, Action: "link",
			Reason: fmt.Sprintf("conflict: %s and %s would join as one person (%s %s); %s is not merged and is left out until the directory tells them apart",
				named(c.Record), strings.Join(with, ", "), rc.e.o.JoinKey, c.Value, c.Record)})
	}
}

// nextDue is the clock: the next expiry or delayed deletion of this
// target, from every person (not only a targeted run's).
func (rc *runCtx) nextDue(f *flow) dueAt {
	var d dueAt
	if at, ks, ok := NextExpiry(f.desired, rc.now); ok {
		d = dueAt{at: at, keys: ks}
	}
	if at, ok := NextDeletion(f.cached, f.rules, rc.now); ok && (d.at.IsZero() || at.Before(d.at)) {
		d = dueAt{at: at}
	}
	return d
}
