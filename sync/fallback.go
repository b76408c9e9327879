package sync

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
)

// Invariants 11 and 12 (DESIGN.md), in one place:
//   - Unknown is not gone: an account an application lists but cannot read
//     back (a connector's connector.Unreadable) keeps its record; its steps
//     wait with a skipped decision, and an interrupted call on it is sent
//     again as for an application that cannot be read at all.
//   - No leaver keeps access because one action is impossible: when the
//     configured deletion cannot be done for an account — the target
//     cannot delete, its gate refuses at plan time, or the application
//     answers connector.Impossible at apply time — the account is
//     suspended instead (the suspension passes the gate on its own, so a
//     protected account is still never touched), with a decision.
//   - Adoption reads what it needs: a full run lists the application to
//     adopt people missing from the cache even when the target refuses to
//     create them; only a name the application cannot hold
//     (connector.Holder) spares the list.

// cannotHold reports whether t says no account of its application can
// belong to a (a name it cannot take): no reason to list it for adoption.
func cannotHold(t connector.Connector, a identity.Account) bool {
	h, ok := t.(connector.Holder)
	return ok && h.CannotHold(a) != ""
}

// insteadWhy is the reason of a suspension done because a deletion cannot
// be: what the deletion was for, why it cannot be done.
func insteadWhy(reason, why string) string {
	return fmt.Sprintf("%s; the delete cannot be done for this account (%s): suspended instead, so the leaver keeps no access", reason, why)
}

// deleteOrSuspend plans the deletion of a leaver's account or, when the
// target cannot delete it (not supported, or refused by the gate), its
// suspension; an account already suspended needs nothing more.
func (a *acc) deleteOrSuspend(reason string) {
	steps, skips := len(a.steps), len(a.p.Skips)
	a.step(connector.ActDelete, reason, false, func(n *identity.Account) { n.Exists = false })
	if len(a.steps) > steps {
		return
	}
	// The refusal is the skip step just added (not supported, or gated).
	why := a.in.Target + " cannot delete accounts"
	if len(a.p.Skips) > skips {
		s := a.p.Skips[len(a.p.Skips)-1].Reason
		if i := strings.LastIndex(s, "; skipped: "); i >= 0 {
			why = s[i+len("; skipped: "):]
		}
	}
	if a.cur.Suspended && !a.cur.IsUnknown(identity.FieldSuspended) {
		return
	}
	now := a.in.Now
	a.step(connector.ActSuspend, insteadWhy(reason, why), false, func(n *identity.Account) {
		n.Suspended, n.Deprovisioned, n.SuspendedAt = true, true, &now
	})
}

// addOrphans adds what reconcile's read-back plans to a plan: orphan steps
// and the skips of drift left on protected accounts. Each passes the
// connector's gate like any step (the owner of dirsync's token, the
// super-admin and protected accounts are never acted on); an orphan whose
// deletion is refused is suspended instead. An orphan the plan already
// deals with (a record kept from an earlier suspension, planned as gone)
// is not planned twice.
func addOrphans(plan *Plan, capab Capability, orphans []Step, now time.Time) {
	planned := map[string]bool{}
	for _, s := range plan.Steps {
		planned[s.Key] = true
	}
	for _, s := range plan.Skips {
		planned[s.Key] = true
	}
	gate := func(s Step) string {
		if capab.Gate == nil {
			return ""
		}
		return capab.Gate(s.Action, s.Before)
	}
	for _, s := range orphans {
		if s.Action == "drift" {
			// Drift on an account the gate refuses to change: its skip
			// (see protectedDrift).
			plan.Skips = append(plan.Skips, s)
			continue
		}
		if planned[s.Key] {
			continue
		}
		why := gate(s)
		if why == "" {
			plan.Steps = append(plan.Steps, s)
			continue
		}
		reason := s.Reason
		s.Reason += "; skipped: " + why
		plan.Skips = append(plan.Skips, s)
		if s.Action != connector.ActDelete || (s.Before.Suspended && !s.Before.IsUnknown(identity.FieldSuspended)) || !capab.Supports(connector.ActSuspend) {
			continue
		}
		sus := Step{Target: s.Target, Key: s.Key, User: s.User, Action: connector.ActSuspend, Reason: insteadWhy(reason, why), Before: s.Before,
			After: deprovisioned(s.Before, now)}
		if why := gate(sus); why != "" {
			continue // refused too: the delete's skip says why
		}
		plan.Steps = append(plan.Steps, sus)
	}
}

// suspendInstead runs, after the application answered that a deletion is
// impossible for this account (connector.Impossible), the suspension that
// takes the leaver's access away instead. rec is the account's record as
// it stands.
func (e *Engine) suspendInstead(ctx context.Context, rc *runCtx, spec TargetSpec, s Step, rec identity.Account, cause error, br *breaker) (identity.Account, error) {
	if rec.Suspended && !rec.IsUnknown(identity.FieldSuspended) {
		return rec, nil
	}
	name := spec.Target.Name()
	sus := Step{Target: s.Target, Key: s.Key, User: s.User, Action: connector.ActSuspend, Reason: insteadWhy(s.Reason, cause.Error()), Before: rec.Clone(),
		After: deprovisioned(rec, e.o.Now())}
	why := ""
	if !connector.Supports(spec.Target, connector.ActSuspend) {
		why = name + " cannot suspend accounts either"
	} else if g, ok := spec.Target.(connector.Gater); ok {
		why = g.Gate(connector.ActSuspend, rec)
	}
	if why == "" && !br.takeInstead() {
		// The guard counted the deletion, not this suspension: it may not
		// take the target's suspensions past the guard's limit. The
		// deletion is planned again next run, and suspended instead then.
		why = "one more suspension would pass the safety guard's limit for this run; the delete is tried again next run"
	}
	if why != "" {
		rc.decide(state.Decision{Target: name, User: s.User, Action: string(connector.ActSuspend), Outcome: OutcomeSkipped,
			Reason: sus.Reason + "; skipped: " + why})
		return rec, nil
	}
	return e.applyStep(ctx, rc, spec, sus, rec, br)
}

// unreadable keeps the record of an account an interrupted call left
// pending when the application lists it but cannot read it back: as for a
// write-only application, the interrupted step's field becomes unknown so
// the plan sends it again, and a decision says why.
func (rc *runCtx) unreadable(tgt string, c identity.Account, err error) identity.Account {
	rc.decide(state.Decision{Target: tgt, User: displayUser(c), Action: "reread", Outcome: OutcomeSkipped,
		Reason: fmt.Sprintf("an interrupted %s could not be checked: the application lists the account but cannot read it back; it is kept (not taken as gone) and the step is sent again", c.Pending),
		Error:  err.Error()})
	return assumeUncertain(withoutPending(c), connector.Action(c.Pending), c)
}

// deprovisioned returns a suspended as a deprovisioning leaves it: suspended
// at now, to be deleted after deprovision.delete_after.
func deprovisioned(a identity.Account, now time.Time) identity.Account {
	n := a.Clone()
	n.Suspended, n.Deprovisioned, n.SuspendedAt = true, true, &now
	return n
}

// fixOutcome is the outcome of what a reconcile corrects in the cache: a
// dry run only says what it would do.
func (rc *runCtx) fixOutcome() string {
	if rc.ro.DryRun {
		return OutcomeDryRun
	}
	return OutcomeApplied
}

// fixAction is the action that puts a drifted field back.
func fixAction(field string, c identity.Account) connector.Action {
	switch field {
	case identity.FieldSuspended:
		if c.Suspended {
			return connector.ActSuspend
		}
		return connector.ActUnsuspend
	case identity.FieldRole:
		return connector.ActSetRole
	case identity.FieldGroups:
		return connector.ActSetGroups
	case identity.FieldExpires:
		return connector.ActSetExpiry
	}
	return connector.ActUpdate
}
