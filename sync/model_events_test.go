package sync_test

// The events of the model-based test and their random generator.

import (
	"fmt"
	"math/rand/v2"
	"time"
)

type eventKind int

const (
	// Directory events: they change a source's truth.
	evDisable eventKind = iota
	evEnable
	evSetExpiry
	evClearExpiry
	evGroupAdd
	evGroupRemove
	evLeave
	evComeBack
	evPasswordReset
	evPasswordChanged
	evRename
	evDupAdd
	evDupRemove
	// A successor (a person new to the directory) takes a leaver's email
	// (a role mailbox) or username (recycled): the leaver leaves first.
	evSuccessor
	// A person's email is set to another's while both are carried: two
	// records of one source now join into one person, a conflict.
	evShareEmail
	// An administrator changes an application by hand.
	evHandEdit
	// The clock.
	evClock
	// Engine activity and operator actions.
	evFullRun
	evMassRun // a full run with --allow-mass-change
	evTick    // the expiry timer fires if due
	evApprove
	evMakePlanFile
	evApplyPlanFile
	evDryRun
	evDiscard
	evRetryQuarantined
	evReconcile // a reconcile run: every listable application read back
	// Configuration changes between runs (the engine restarts with them).
	evPolicy // reconcile.drift and reconcile.orphans
	evRoles  // the role rules: as first written, a rule added on top, reordered
	evScope  // app's scope: a typo, or fixed
	// The state store's content is lost (a new embedded file, an empty
	// Redis): the engine starts again from the applications.
	evStateLoss
	// A target is renamed in the configuration (no renamed_from).
	evTargetRename
	// Faults: each applies to the next activity only.
	evCallFaults
	evCrash
	evStoreDown
	evStoreFlaky
	evSourceFail
	evZeroUsers
	evGroupEmpty
	evLeaderChange
	evStaleLeader
	evMassEnd // the directory reads everyone with an end date
)

// Hand edits in an application.
const (
	heReEnable = iota // a suspended account unsuspended (all: every one)
	heRaise           // role raised to admin
	heLower           // role lowered to user
	heGroupAdd        // an application group added
	heMake            // an account made for a person who has none
	heRemove          // an account deleted
	numHandEdits
)

var handEditNames = []string{"re-enable", "raise the role to admin of", "lower the role to user of", "add a group to", "make an account for", "delete the account of"}

// Role rule variants (evRoles): 0 as first written (admins → admin), 1 a
// rule {staff → user} added on top, 2 {ops → lead} added on top, 3 the two
// rules of 2 reordered, 4 every rule removed (default_role user).
var roleVariantNames = []string{"roles: [admins→admin]", "roles: [staff→user, admins→admin]", "roles: [ops→lead, admins→admin]",
	"roles: [admins→admin, ops→lead]", "roles: [] (the admin rule removed)"}

// Kinds of per-call faults.
type callFault int

const (
	fault4xx          callFault = iota // permanent
	fault5xx                           // retryable
	faultLost                          // uncertain, did not land
	faultLanded                        // uncertain, landed (answer lost)
	faultSkip                          // runtime skip
	faultMixed                         // any of the above
	numCallFaultKinds = faultMixed
)

var callFaultNames = []string{"4xx", "5xx", "timeout (not landed)", "timeout (landed)", "runtime skip", "mixed"}

// Push deliveries of an IdP change.
const (
	viaNone    = "" // not pushed: the next full run pulls it
	viaLeader  = "leader"
	viaStandby = "standby"
)

// event is one step of a sequence.
type event struct {
	kind   eventKind
	src    string
	person int
	group  string
	dur    time.Duration
	via    string
	fault  callFault
	rate   int // percent, for call faults and a flaky store
	n      int // crash point (call number), approve pick
	landed bool
	// graceful makes a crash event a SIGTERM instead.
	graceful bool
	only     bool // approve only suspensions
	// Hand edits: op (he*), in tgt; all applies a re-enable to every
	// suspended account.
	op  int
	tgt string
	all bool
	// Configuration: reconcile policy, role rule variant, scope typo;
	// mailbox says a successor takes the email (else the username).
	drift, orphans string
	variant        int
	typo           bool
	mailbox        bool
	// id is the event's place in the generated sequence: fault decisions
	// hash it, so a shrunk sequence keeps the faults of the events it keeps.
	id int
}

func (e event) String() string {
	who := fmt.Sprintf("%s in %s", username(e.person), e.src)
	push := ""
	if e.src == srcIdP {
		push = " (not pushed)"
		if e.via != viaNone {
			push = " (pushed to the " + e.via + ")"
		}
	}
	switch e.kind {
	case evDisable:
		return "disable " + who + push
	case evEnable:
		return "enable " + who + push
	case evSetExpiry:
		return fmt.Sprintf("expiry of %s = now+%s%s", who, e.dur, push)
	case evClearExpiry:
		return "clear expiry of " + who + push
	case evGroupAdd:
		return fmt.Sprintf("add %s to %s%s", who, e.group, push)
	case evGroupRemove:
		return fmt.Sprintf("remove %s from %s%s", who, e.group, push)
	case evLeave:
		return who + " leaves (record removed)" + push
	case evComeBack:
		return who + " comes back (record added)" + push
	case evPasswordReset:
		return "password reset (must change) for " + who + push
	case evPasswordChanged:
		return "password changed for " + who + push
	case evRename:
		return "rename " + who + push
	case evDupAdd:
		return fmt.Sprintf("ad gains a second record %s with the email of %s", dupUsername(e.person), username(e.person))
	case evDupRemove:
		return fmt.Sprintf("ad drops the second record %s", dupUsername(e.person))
	case evSuccessor:
		what := "username"
		if e.mailbox {
			what = "email (a role mailbox)"
		}
		return fmt.Sprintf("%s leaves; successor %s joins ad (staff%s) with %s's %s", username(e.person), username(e.n), map[bool]string{true: ", admins"}[e.all], username(e.person), what)
	case evShareEmail:
		return fmt.Sprintf("ad gives %s the email of %s (both carried: a conflict)", username(e.person), username(e.n))
	case evStateLoss:
		return "the state store's content is lost"
	case evTargetRename:
		return "config: target " + e.tgt + " renamed"
	case evHandEdit:
		if e.all {
			return "by hand in " + e.tgt + ": re-enable every suspended account"
		}
		who := username(e.person)
		if e.person < 0 {
			who = strangerNames[-e.person-1]
		}
		return fmt.Sprintf("by hand in %s: %s %s", e.tgt, handEditNames[e.op], who)
	case evReconcile:
		return "reconcile run"
	case evPolicy:
		return fmt.Sprintf("config: reconcile {drift: %s, orphans: %s}", e.drift, e.orphans)
	case evRoles:
		return "config: " + roleVariantNames[e.variant]
	case evScope:
		if e.typo {
			return "config: app scope typo (staf)"
		}
		return "config: app scope fixed (staff)"
	case evMassEnd:
		return fmt.Sprintf("next activity: ad reads everyone with an end date now+%s", e.dur)
	case evClock:
		return fmt.Sprintf("clock +%s", e.dur)
	case evFullRun:
		return "full run"
	case evMassRun:
		return "full run with --allow-mass-change"
	case evTick:
		return "expiry timer (run over stored snapshots if Due() has passed)"
	case evApprove:
		if e.only {
			return fmt.Sprintf("approve held run #%d, suspensions only", e.n)
		}
		return fmt.Sprintf("approve held run #%d", e.n)
	case evDryRun:
		return "dry run"
	case evDiscard:
		return fmt.Sprintf("discard held run #%d", e.n)
	case evRetryQuarantined:
		return "full run with --retry-quarantined"
	case evMakePlanFile:
		return "make a plan file"
	case evApplyPlanFile:
		return "apply the plan file"
	case evCallFaults:
		return fmt.Sprintf("next activity: %d%% of calls fail with %s", e.rate, callFaultNames[e.fault])
	case evCrash:
		tgt := modelTargets[e.n%len(modelTargets)].name
		if e.graceful {
			return fmt.Sprintf("next activity: SIGTERM at call %d to %s (calls in flight finish, no new one starts)", e.n, tgt)
		}
		if e.landed {
			return fmt.Sprintf("next activity: the process dies right after call %d to %s lands", e.n, tgt)
		}
		return fmt.Sprintf("next activity: the process dies at call %d to %s, before it is sent", e.n, tgt)
	case evStoreDown:
		return "next activity: the store is unreachable"
	case evStoreFlaky:
		return fmt.Sprintf("next activity: %d%% of store writes fail", e.rate)
	case evSourceFail:
		return "next activity: " + e.src + " fails to answer"
	case evZeroUsers:
		return "next activity: ad returns zero users"
	case evGroupEmpty:
		return "next activity: ad reads group " + e.group + " as empty"
	case evLeaderChange:
		return "leader change: the other replica takes the lock"
	case evStaleLeader:
		return "next activity runs on the former leader, which still believes it leads"
	}
	return fmt.Sprintf("event %d", e.kind)
}

// activity reports whether the event makes the engine act.
func (e event) activity() bool {
	switch e.kind {
	case evFullRun, evMassRun, evTick, evApprove, evMakePlanFile, evApplyPlanFile, evDryRun, evDiscard, evRetryQuarantined, evReconcile:
		return true
	}
	return e.src == srcIdP && e.via != viaNone && e.kind <= evRename
}

// generator draws events for a world of `people` changing people.
type generator struct {
	r      *rand.Rand
	people int
	mech   mechanisms
}

// weighted picks an index by weight.
func (g *generator) weighted(ws ...int) int {
	total := 0
	for _, w := range ws {
		total += w
	}
	n := g.r.IntN(total)
	for i, w := range ws {
		if n < w {
			return i
		}
		n -= w
	}
	return len(ws) - 1
}

func (g *generator) sequence(n int) []event {
	out := make([]event, 0, n)
	for i := range n {
		e := g.event()
		e.id = i + 1
		out = append(out, e)
	}
	return out
}

func (g *generator) event() event {
	switch g.weighted(50, 8, 25, 17, g.on("handedits", 8)+g.on("handmade", 2), g.on("reconcile", 6)+g.on("roles", 2)+g.on("scope", 2)+g.on("stateloss", 1)+g.on("rename", 1)) {
	case 0:
		if g.mech.on("sharedemail") && g.r.IntN(25) == 0 {
			return event{kind: evSuccessor, person: g.r.IntN(g.people), n: modelPeople + modelStatic + g.r.IntN(modelSuccessors),
				mailbox: g.r.IntN(2) == 0, all: g.r.IntN(3) == 0, src: srcAD}
		}
		if g.mech.on("conflicts") && g.r.IntN(25) == 0 {
			p := g.r.IntN(g.people)
			return event{kind: evShareEmail, src: srcAD, person: p, n: (p + 1 + g.r.IntN(g.people-1)) % g.people}
		}
		if g.mech.on("clock") && g.r.IntN(12) == 0 {
			// An expiry passes, then a push for someone else.
			return event{kind: evSetExpiry, src: srcAD, person: g.r.IntN(g.people), dur: 30 * time.Minute}
		}
		return g.directory()
	case 4:
		return g.handEdit()
	case 5:
		return g.config()
	case 1:
		durs := []time.Duration{time.Hour, 26 * time.Hour, 4 * 24 * time.Hour, 8 * 24 * time.Hour}
		return event{kind: evClock, dur: durs[g.r.IntN(len(durs))]}
	case 2:
		return g.operator()
	default:
		return g.fault()
	}
}

// on returns w when the mechanism is on, else 0 (a weight).
func (g *generator) on(mech string, w int) int {
	if g.mech.on(mech) {
		return w
	}
	return 0
}

func (g *generator) handEdit() event {
	tgt := []string{"app", "app", "vpn"}[g.r.IntN(3)]
	e := event{kind: evHandEdit, tgt: tgt, op: g.weighted(8, 4, 4, 4, g.on("handmade", 3), 3), person: g.r.IntN(g.people)}
	if !g.mech.on("handedits") {
		e.op = heMake
	}
	if tgt == "vpn" && (e.op == heRaise || e.op == heLower || e.op == heGroupAdd) {
		e.op = heReEnable // vpn has neither roles nor groups
	}
	if e.op == heReEnable && g.r.IntN(3) == 0 {
		e.all = true // many leavers re-enabled at once: the reconcile that undoes it is held
	}
	if (g.mech.on("protected") || g.mech.on("orphans")) && g.r.IntN(5) == 0 && e.op != heMake && e.op != heRemove {
		switch {
		case g.mech.on("protected"):
			e.person = -1 - g.r.IntN(len(strangerNames)) // an account no person has
		case g.mech.on("orphans"):
			e.person = -1 // the orphan
		}
	}
	return e
}

func (g *generator) config() event {
	switch g.weighted(g.on("reconcile", 6), g.on("reconcile", 4), g.on("roles", 2), g.on("scope", 2), g.on("stateloss", 1), g.on("rename", 1)) {
	case 0:
		return event{kind: evReconcile}
	case 1:
		return event{kind: evPolicy, drift: []string{"fix", "report"}[g.r.IntN(2)], orphans: []string{"report", "suspend", "delete"}[g.r.IntN(3)]}
	case 2:
		return event{kind: evRoles, variant: g.r.IntN(len(roleVariantNames))}
	case 3:
		return event{kind: evScope, typo: g.r.IntN(2) == 0}
	case 4:
		return event{kind: evStateLoss}
	default:
		return event{kind: evTargetRename, tgt: []string{"app", "vpn"}[g.r.IntN(2)]}
	}
}

func (g *generator) directory() event {
	// Weights by kind, evDisable to evDupRemove.
	kind := g.weighted(12, 12, 10, 5, 10, 10, 6, 6, 6, 3, 5, 3, 3)
	e := event{kind: eventKind(kind), src: srcAD, person: g.r.IntN(g.people)}
	if g.r.IntN(3) == 0 {
		e.src = srcIdP
		e.via = []string{viaNone, viaLeader, viaLeader, viaStandby}[g.r.IntN(4)]
	}
	switch e.kind {
	case evSetExpiry:
		durs := []time.Duration{-time.Hour, 2 * time.Hour, 30 * time.Hour, 5 * 24 * time.Hour}
		e.dur = durs[g.r.IntN(len(durs))]
	case evGroupAdd, evGroupRemove:
		e.group = modelGroups[g.r.IntN(len(modelGroups))]
	case evDupAdd, evDupRemove:
		e.src, e.via = srcAD, viaNone
	}
	return e
}

func (g *generator) operator() event {
	switch g.weighted(42, 8, 14, 14, 6, 8, 3, 2, 3) {
	case 0:
		return event{kind: evFullRun}
	case 1:
		return event{kind: evMassRun}
	case 2:
		return event{kind: evTick}
	case 3:
		return event{kind: evApprove, n: g.r.IntN(3), only: g.r.IntN(3) == 0}
	case 4:
		return event{kind: evMakePlanFile}
	case 5:
		return event{kind: evApplyPlanFile}
	case 6:
		return event{kind: evDryRun}
	case 7:
		return event{kind: evDiscard, n: g.r.IntN(3)}
	default:
		return event{kind: evRetryQuarantined}
	}
}

func (g *generator) fault() event {
	switch g.weighted(40, 12, 6, 8, 8, 4, 6, 8, 8, g.on("massend", 4)) {
	case 0:
		return event{kind: evCallFaults, fault: callFault(g.r.IntN(int(numCallFaultKinds) + 1)), rate: []int{20, 50, 100}[g.r.IntN(3)]}
	case 1:
		return event{kind: evCrash, n: 1 + g.r.IntN(9), landed: g.r.IntN(2) == 0, graceful: g.r.IntN(3) == 0}
	case 2:
		return event{kind: evStoreDown}
	case 3:
		return event{kind: evStoreFlaky, rate: []int{20, 50}[g.r.IntN(2)]}
	case 4:
		return event{kind: evSourceFail, src: []string{srcAD, srcIdP}[g.r.IntN(2)]}
	case 5:
		return event{kind: evZeroUsers}
	case 6:
		return event{kind: evGroupEmpty, group: []string{"vpn", "admins", "staff"}[g.r.IntN(3)]}
	case 7:
		return event{kind: evLeaderChange}
	case 8:
		return event{kind: evStaleLeader}
	default:
		return event{kind: evMassEnd, dur: []time.Duration{-time.Hour, 2 * time.Hour}[g.r.IntN(2)]}
	}
}
