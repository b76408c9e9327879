package sync_test

// The system under test of the model-based test: two sources, three
// targets, one shared store, two replicas, fault injection, and the checks
// made on every call and after every activity.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// guardLimit is every threshold of the model's guard: more than this many
// suspensions, deletions or access removals in one target and run is held.
const guardLimit = 3

// The model's targets. app: a full application (creates, lists, reads),
// scoped to staff, with roles and groups, suspending leavers and deleting
// them a week later. ezeelogin: write-only, every person, roles, suspends.
// vpn: scoped to vpn, disabled people excluded, deletes leavers.
var modelTargets = []targetModel{
	{name: "app", scope: "staff", includeInactive: true, roles: true, groups: true, creates: true},
	{name: "ezeelogin", includeInactive: true, roles: true, byUsername: true},
	{name: "vpn", scope: "vpn", deleteGone: true, creates: true},
}

// worldConf is the configuration the operator changes between runs.
type worldConf struct {
	drift, orphans string // app's and vpn's reconcile policy
	roleVariant    int
	scopeTypo      bool // app's scope reads "staf"
	protected      bool // app protects svc-p01 and allows ext-*
}

func (tm targetModel) config(conf worldConf) config.TargetCommon {
	return synctest.Common(func(c *config.TargetCommon) {
		c.Reconcile = config.Reconcile{Drift: conf.drift, Orphans: conf.orphans}
		if conf.protected && tm.name == "app" {
			c.Protected = []string{"svc-p01"}
			c.Reconcile.Allow = []string{"ext-*"}
		}
		c.Concurrency = 1 // calls in a fixed order: a seed replays the same run
		inc := tm.includeInactive
		c.IncludeInactive = &inc
		if tm.scope != "" {
			c.Scope = []string{tm.scope}
		}
		if tm.roles {
			c.Roles = nil
			for _, rr := range tm.roleRules() {
				c.Roles = append(c.Roles, config.RoleRule{Group: rr[0], Role: rr[1]})
			}
			c.DefaultRole = "user"
		}
		if tm.groups {
			c.Groups = []config.GroupRule{{Group: "vpn"}, {Group: "ops"}}
		}
		c.Deprovision = config.Deprovision{Action: "suspend", DeleteAfter: config.Duration(7 * 24 * time.Hour)}
		if tm.deleteGone {
			c.Deprovision = config.Deprovision{Action: "delete"}
		}
	})
}

// modelLimits are the guard thresholds: guardLimit for every count, no
// percentages, a 30% source shrink.
func modelLimits() config.Limits {
	return config.Limits{MaxSuspend: guardLimit, MaxDelete: guardLimit, MaxAccessRemoval: guardLimit,
		MaxSourceShrinkPercent: 30, QuarantineAfter: 3}
}

// violation is one broken invariant; code names its class, so shrinking
// keeps to the same bug.
type violation struct {
	code string
	msg  string
	step int
}

func (v violation) String() string { return fmt.Sprintf("step %d: %s: %s", v.step, v.code, v.msg) }

// faults are armed for the next activity only.
type faults struct {
	armedBy []int // ids of the events that armed them
	// callRate percent of calls fail with call (a callFault).
	callRate int
	call     callFault
	// The process dies at call crashAt to crashTarget, before it is sent
	// or, with crashLanded, right after it landed.
	crashAt     int
	crashTarget string
	crashLanded bool
	// At call stopAt to crashTarget the process is asked to stop (SIGTERM):
	// calls in flight finish, no new one starts.
	stopAt int
	// The store is unreachable, or storeFlaky percent of writes fail.
	storeDown  bool
	storeFlaky int
	// sourceFail names a source that fails to answer; zeroUsers makes the
	// directory return nobody; groupEmpty names a group it reads as empty.
	sourceFail string
	zeroUsers  bool
	groupEmpty string
	// staleLeader runs the activity on the former leader, which still
	// believes it leads.
	staleLeader bool
	// massEnd, when not zero, makes the directory read everyone with an
	// end date now+massEnd.
	massEnd time.Duration
}

// activity is the engine work in progress, and what faults do to it.
type activity struct {
	name   string
	faults faults
	cancel context.CancelFunc
	// standby is true when a replica without the lease acts: it must send
	// nothing and write nothing.
	standby bool
	// calls counts calls per target (within one target they come in a
	// fixed order); crashID is the call after which the process dies; dead
	// is true once it has.
	calls   map[string]int
	crashID string
	dead    bool
	stop    chan struct{} // closed on a graceful stop
	// short is true while a source reads short: reductions the guard lets
	// through (up to guardLimit people per target and kind, in budget) are
	// not violations.
	short bool
	// shortRead is what the directory reads during the activity when it
	// reads short (nil otherwise): what the engine acts on.
	shortRead version
	budget    map[string]map[string]bool
	// stored lists the sources whose snapshot the engine tried to store.
	stored map[string]bool
	// attempts counts attempts per call or store write, for fault
	// decisions; lost marks calls whose answer will be lost.
	attempts map[string]int
	lost     map[string]bool
	// landed lists the calls the applications applied, as "target/user/
	// action"; names maps a call to its username (a delete carries none).
	landed []string
	names  map[string]string
	// reduced lists, per "target/guard kind", the people whose access the
	// activity's calls reduced.
	reduced map[string]map[int]bool
}

// replica is one daemon process: an engine, its lease, and whether it
// believes it leads.
type replica struct {
	name     string
	lease    atomic.Pointer[state.Lease]
	believes atomic.Bool
	engine   *dsync.Engine
}

// world is one sequence's system under test and its reference model.
type world struct {
	// discarded: an operator discarded a held plan in this sequence.
	discarded bool
	seed      uint64
	h         *synctest.Harness
	mem       *memstore.Store
	store     *synctest.FaultStore
	targets   map[string]*memtarget.Target
	reps      [2]*replica
	leader    int
	former    int // the replica that led before the last leader change, or -1
	ref       *reference
	people    int // changing people; more people never change
	total     int
	held      []string // held run ids in the order they appeared
	// forwarded are pushes a standby received, for the leader to merge.
	forwarded []source.Change
	handSeq   int
	renameSeq int
	// approving is what the held run being approved holds (heldAllowance).
	approving map[string]int
	plan      *dsync.PlanFile
	step      int
	mech      mechanisms
	conf      worldConf
	conns     map[string]connector.Connector
	// handDirty marks, per target, people whose account was changed by
	// hand since the cache last equalled the application.
	handDirty map[string]map[int]bool
	// renamed maps a target renamed in the configuration to its new name.
	renamed map[string]string
	// strangers are app's accounts no person has, as seeded.
	strangers map[string]identity.Account

	mu       stdsync.Mutex
	cur      *activity
	next     faults
	creates  map[string]map[int]int
	pwdCalls map[string]map[int]int
	// pwdUnsure counts forced password changes that landed while the
	// engine could not learn it (an answer lost, a crash, a store write
	// failing): invariant 4 lets it send each of them again.
	pwdUnsure  map[string]map[int]int
	violations []violation
}

var errDead = errors.New("the process is dead")

// newWorld builds the world for seed: its people, the targets seeded with
// the accounts a write-only application has, and a first full run.
func newWorld(t testing.TB, seed uint64, people, static int, mech mechanisms) *world {
	w := &world{seed: seed, people: people, total: people + static + modelSuccessors, former: -1, targets: map[string]*memtarget.Target{},
		mech: mech, conf: worldConf{drift: "fix", orphans: "report", protected: mech.on("protected")}, conns: map[string]connector.Connector{},
		handDirty: map[string]map[int]bool{}, strangers: map[string]identity.Account{}, renamed: map[string]string{},
		creates: map[string]map[int]int{}, pwdCalls: map[string]map[int]int{}, pwdUnsure: map[string]map[int]int{}}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	ad, idp := version{}, version{}
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for p := range people + static {
		rec := record{active: true, groups: []string{"staff"}, given: "Given"}
		if p < people {
			rec = randomRecord(r, start)
			if r.IntN(10) < 3 {
				idp[p] = rec.clone()
			}
		}
		ad[p] = rec
	}
	w.ref = newReference(ad, idp)
	var specs []dsync.TargetSpec
	for _, tm := range modelTargets {
		mt := memtarget.New(tm.name)
		name := tm.name
		mt.Hook = func(act connector.Action, a identity.Account) error { return w.onCall(name, act, a) }
		mt.After = func(act connector.Action, a identity.Account) error { return w.afterCall(name, act, a) }
		mt.ReadHook = func(op string) error { return w.onRead(name, op) }
		w.targets[name] = mt
		w.creates[name], w.pwdCalls[name], w.pwdUnsure[name] = map[int]int{}, map[int]int{}, map[int]int{}
		w.handDirty[name] = map[int]bool{}
		var tg connector.Connector = mt
		if tm.byUsername {
			tg = memtarget.NewWriteOnly(mt)
			for p := range w.total - modelSuccessors { // a successor's account appears when they join
				mt.Seed(ezeeloginAccount(p))
			}
		}
		if tm.name == "app" {
			for i, n := range strangerNames {
				if (n == "orphan-x" && !mech.on("orphans")) || (n != "orphan-x" && !mech.on("protected")) {
					continue
				}
				a := identity.Account{Key: n, Username: n, Email: strangerEmail(n), GivenName: "Someone", FamilyName: "Stranger",
					Role: "admin", Remote: map[string]string{"id": fmt.Sprintf("s%d", i+1)}, Exists: true}
				mt.Seed(a)
				w.strangers[n] = a
			}
		}
		w.conns[name] = tg
		specs = append(specs, synctest.Spec(tg, tm.config(w.conf)))
	}
	var h *synctest.Harness
	w.mem = memstore.New(memstore.Options{JournalSize: 1000, Now: func() time.Time { return h.Clock.Now() }})
	w.store = synctest.NewFaultStore(w.mem)
	w.store.SetHook(w.onStore)
	limits := modelLimits()
	h = synctest.New(t, specs, synctest.Options{Store: w.store, Limits: &limits, Now: start, MaxSleep: time.Nanosecond,
		Sources: []string{srcIdP, srcAD}})
	w.h = h
	h.Src(srcIdP).SetAllowEmpty(true) // a SCIM server nobody pushed to yet
	for i := range w.reps {
		w.reps[i] = &replica{name: fmt.Sprintf("replica-%d", i)}
		w.reps[i].engine = w.newEngine(w.reps[i])
	}
	w.takeLead(0)
	w.setSources()
	w.do(event{kind: evFullRun})
	return w
}

// ezeeloginAccount is the account Ezeelogin has for a person (its users
// come from the directory in Ezeelogin itself).
func ezeeloginAccount(p int) identity.Account {
	return identity.Account{Key: username(p), Username: username(p), Email: username(p) + "@example.test",
		GivenName: "Given", FamilyName: familyName(p), DisplayName: "Given " + familyName(p)}
}

func randomRecord(r *rand.Rand, now time.Time) record {
	rec := record{active: r.IntN(4) > 0, given: "Given"}
	for i, pct := range []int{85, 40, 20, 30} { // modelGroups in order
		if r.IntN(100) < pct {
			rec.groups = append(rec.groups, modelGroups[i])
		}
	}
	rec.groups = identity.SortedSet(rec.groups)
	if r.IntN(5) == 0 {
		e := now.Add(time.Duration(1+r.IntN(240)) * time.Hour)
		rec.expires = &e
	}
	rec.mustChange = r.IntN(7) == 0
	return rec
}

func (w *world) newEngine(rep *replica) *dsync.Engine {
	return w.h.NewEngine(func(o *dsync.Options) {
		o.Store = w.store
		o.Targets = w.specs()
		o.Fence = func() state.Fence {
			if l := rep.lease.Load(); l != nil {
				return l.Fence()
			}
			return state.Fence{}
		}
		o.Leading = rep.believes.Load
	})
}

// tm returns the model of the target named name under the current
// configuration.
func (w *world) tm(name string) targetModel {
	tm := targetModelOf(name)
	if tm.roles {
		tm.roleVariant = w.conf.roleVariant
	}
	if tm.name == "app" && w.conf.scopeTypo {
		tm.scope = "staf"
	}
	return tm
}

// specs returns the engine's targets under the current configuration.
func (w *world) specs() []dsync.TargetSpec {
	var out []dsync.TargetSpec
	for _, tm := range modelTargets {
		c := w.tm(tm.name).config(w.conf)
		if tm.name == "app" && w.conf.scopeTypo {
			c.Scope = []string{"staf"}
		}
		var conn connector.Connector = w.conns[tm.name]
		if n := w.renamed[tm.name]; n != "" {
			conn = renamedTarget{Target: w.targets[tm.name], name: n}
		}
		out = append(out, synctest.Spec(conn, c))
	}
	return out
}

// renamedTarget is a listable target under a new name in the configuration:
// the same application, every capability of it.
type renamedTarget struct {
	*memtarget.Target
	name string
}

// Name implements connector.Connector.
func (r renamedTarget) Name() string { return r.name }

// ssoPerson signs in to vpn through an IdP (the ssodelete mechanism): vpn
// refuses to delete their account, as Netmaker refuses IdP users.
const ssoPerson = 5

// ssoUser reports whether tgt refuses to delete p's account.
func (w *world) ssoUser(tgt string, p int) bool {
	return w.mech.on("ssodelete") && tgt == "vpn" && p == ssoPerson
}

// engineName returns the name the engine knows a model target by.
func (w *world) engineName(model string) string {
	if n := w.renamed[model]; n != "" {
		return n
	}
	return model
}

// modelName returns the model's name of a target the engine names.
func (w *world) modelName(engine string) string {
	for m, n := range w.renamed {
		if n == engine {
			return m
		}
	}
	return engine
}

// renameTarget renames a target in the configuration: nothing the engine
// stored under the old name is its any more, so a forced password change
// may be sent again.
func (w *world) renameTarget(tgt string) {
	w.renameSeq++
	w.renamed[tgt] = fmt.Sprintf("%s-r%d", tgt, w.renameSeq)
	w.reconfigure()
	for p := range w.total {
		if w.ref.merged(p).mustChange {
			w.pwdUnsure[tgt][p]++
		}
	}
}

// reconfigure restarts both replicas with the current configuration.
func (w *world) reconfigure() {
	for _, rep := range w.reps {
		rep.engine = w.newEngine(rep)
	}
}

// takeLead makes replica i the leader: the other loses its lease.
func (w *world) takeLead(i int) {
	ctx := context.Background()
	if old := w.reps[w.leader].lease.Load(); old != nil {
		_ = w.mem.ReleaseLock(ctx, *old)
		w.reps[w.leader].believes.Store(false)
		w.former = w.leader
	}
	l, err := w.mem.AcquireLock(ctx, "leader", w.reps[i].name, 365*24*time.Hour)
	if err != nil {
		panic(fmt.Sprintf("model: take the lead: %v", err))
	}
	w.reps[i].lease.Store(&l)
	w.reps[i].believes.Store(true)
	w.leader = i
}

// setSources makes the sources return the truth (only src when given).
func (w *world) setSources(only ...string) {
	for _, src := range []string{srcAD, srcIdP} {
		if len(only) > 0 && !slices.Contains(only, src) {
			continue
		}
		s := w.h.Src(src)
		s.Fail(nil)
		s.Set(w.ref.users(src, w.ref.truth[src])...)
	}
}

func (w *world) violate(code, format string, args ...any) {
	w.violations = append(w.violations, violation{code: code, msg: fmt.Sprintf(format, args...), step: w.step})
}

// chance returns a deterministic number in [0,100) for one fault decision
// of the armed faults.
func (w *world) chance(f faults, parts ...any) int {
	h := fnv.New64a()
	fmt.Fprint(h, w.seed, f.armedBy, parts)
	return int(h.Sum64() % 100)
}

// onStore is the shared store's fault hook.
func (w *world) onStore(op synctest.Op, detail string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.cur
	switch {
	case c == nil:
		return nil
	case op == synctest.OpPutSnapshot:
		c.stored[detail] = true
	}
	switch {
	case c.dead || c.faults.storeDown:
		return errors.New("store unreachable")
	case c.faults.storeFlaky > 0 && op != synctest.OpAccounts && op != synctest.OpGetSnapshot && op != synctest.OpGetHeld && op != synctest.OpPutRun:
		if op == synctest.OpPutHeld || op == synctest.OpDeleteHeld {
			detail = "" // a run id: random, so no part of a replayable decision
		}
		c.attempts[string(op)+detail]++
		if w.chance(c.faults, op, detail, c.attempts[string(op)+detail]) < c.faults.storeFlaky {
			return errors.New("store write timed out")
		}
	}
	return nil
}

// onCall runs before each call reaches an application: it injects the
// armed faults, then judges the call against the reference model.
func (w *world) onCall(tgt string, act connector.Action, a identity.Account) error {
	a.Username = w.nameOf(tgt, a)
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.cur
	if c == nil {
		w.violate("call outside any activity", "%s %s in %s", act, a.Username, tgt)
		return nil
	}
	if c.dead {
		return connector.Retryable(errDead)
	}
	if p, _, ok := personOfAccount(a); ok && w.ssoUser(tgt, p) && act == connector.ActDelete {
		return connector.Impossible(`400 "cannot delete idp user %s"`, a.Username) // as the Netmaker connector answers
	}
	c.calls[tgt]++
	id := tgt + "/" + a.Key + "/" + string(act)
	if c.faults.stopAt == c.calls[tgt] && tgt == c.faults.crashTarget {
		close(c.stop)
	}
	if c.faults.crashAt == c.calls[tgt] && tgt == c.faults.crashTarget {
		if !c.faults.crashLanded {
			w.die(c)
			return connector.Retryable(errDead)
		}
		c.crashID = id
	}
	c.attempts[id]++
	c.names[id] = a.Username
	if c.faults.callRate > 0 && w.chance(c.faults, id, c.attempts[id]) < c.faults.callRate {
		kind := c.faults.call
		if kind == faultMixed {
			kind = callFault(w.chance(c.faults, id, c.attempts[id], "kind") % int(numCallFaultKinds))
		}
		switch kind {
		case fault4xx:
			return connector.Permanent(errors.New("400 bad request"))
		case fault5xx:
			return connector.Retryable(errors.New("503 service unavailable"))
		case faultLost:
			return connector.Uncertain(errors.New("timeout: request not sent"))
		case faultSkip:
			return connector.Skip("declined by the application at run time")
		case faultLanded:
			c.lost[id] = true
		}
	}
	if !w.intentRecorded(tgt, act, a) {
		w.violate("call without intent", "%s: %s for %s sent with no pending intent in its cache record", tgt, act, a.Username)
	}
	if c.name == "dry run" || c.name == "plan" {
		w.violate("read-only run sent a call", "a %s sent %s for %s to %s", c.name, act, a.Username, tgt)
	}
	if c.standby {
		w.violate("standby call", "a replica without the lease sent %s for %s to %s", act, a.Username, tgt)
	}
	w.judge(c, tgt, act, a)
	return nil
}

// onRead runs before the engine lists or re-reads an application's
// accounts: armed call faults make reads fail too (as a 5xx).
func (w *world) onRead(tgt, op string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.cur
	switch {
	case c == nil:
		return nil
	case c.dead:
		return connector.Retryable(errDead)
	case c.faults.callRate > 0:
		id := tgt + "/" + op
		c.attempts[id]++
		if w.chance(c.faults, id, c.attempts[id]) < c.faults.callRate {
			return connector.Retryable(fmt.Errorf("503 service unavailable while %sing", op))
		}
	}
	return nil
}

// afterCall runs after a call landed: the answer may be lost, or the
// process may die before it hears it.
func (w *world) afterCall(tgt string, act connector.Action, a identity.Account) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.cur
	if c == nil {
		return nil
	}
	id := tgt + "/" + a.Key + "/" + string(act)
	c.landed = append(c.landed, tgt+"/"+c.names[id]+"/"+string(act))
	w.checkLanded(tgt, act, a)
	if p, dup, ok := personOf(c.names[id]); ok && !dup && act == connector.ActForcePasswordChange && (c.lost[id] || c.crashID == id) {
		w.pwdUnsure[tgt][p]++
	}
	switch {
	case c.crashID == id:
		c.crashID = ""
		w.die(c)
		return connector.Retryable(errDead)
	case c.lost[id]:
		delete(c.lost, id)
		return connector.Uncertain(errors.New("timeout: the answer never came"))
	}
	return nil
}

// nameOf returns the username of the account a call is about: a delete
// carries only the key and the application's ids.
func (w *world) nameOf(tgt string, a identity.Account) string {
	if a.Username != "" {
		return a.Username
	}
	if cur, ok := w.targets[tgt].Find(a); ok {
		return cur.Username
	}
	return ""
}

// intentRecorded reports whether the account's cache record holds the
// intent of the call about to land, as it must: a crash then leaves a trace.
func (w *world) intentRecorded(tgt string, act connector.Action, a identity.Account) bool {
	recs, err := w.mem.Accounts(context.Background(), w.engineName(tgt))
	if err != nil {
		return false
	}
	if rec, ok := recs[a.Key]; ok && !targetModelOf(tgt).byUsername {
		return rec.Pending == string(act)
	}
	for _, rec := range recs {
		if rec.Username == a.Username && rec.Pending == string(act) {
			return true
		}
	}
	return false
}

// die kills the process running the activity: nothing reaches the store
// or an application any more, and its context ends.
func (w *world) die(c *activity) {
	c.dead = true
	c.cancel()
}

// do applies one event.
func (w *world) do(e event) {
	if e.activity() && len(w.forwarded) > 0 {
		w.relay()
	}
	if e.kind >= evCallFaults {
		w.next.armedBy = append(w.next.armedBy, e.id)
	}
	switch e.kind {
	case evCallFaults:
		w.next.callRate, w.next.call = e.rate, e.fault
	case evCrash:
		w.next.crashTarget = modelTargets[e.n%len(modelTargets)].name
		if e.graceful {
			w.next.stopAt = e.n
		} else {
			w.next.crashAt, w.next.crashLanded = e.n, e.landed
		}
	case evStoreDown:
		w.next.storeDown = true
	case evStoreFlaky:
		w.next.storeFlaky = e.rate
	case evSourceFail:
		w.next.sourceFail = e.src
	case evZeroUsers:
		w.next.zeroUsers = true
	case evGroupEmpty:
		w.next.groupEmpty = e.group
	case evMassEnd:
		w.next.massEnd = e.dur
	case evLeaderChange:
		w.takeLead(1 - w.leader)
	case evStaleLeader:
		w.next.staleLeader = true
	case evClock:
		w.h.Clock.Advance(e.dur)
	case evFullRun, evMassRun:
		ro := dsync.RunOptions{Trigger: "schedule", AllowMassChange: e.kind == evMassRun}
		name := "full run"
		if e.kind == evMassRun {
			w.next.zeroUsers, w.next.groupEmpty, w.next.massEnd = false, "", 0 // an operator vouches for what the sources say
			name = "mass run"
		}
		w.activity(name, func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) { return w.run(ctx, en, ro) })
	case evReconcile:
		w.activity("reconcile", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
			return w.run(ctx, en, dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
		})
	case evPolicy:
		w.conf.drift, w.conf.orphans = e.drift, e.orphans
		w.reconfigure()
	case evRoles:
		w.conf.roleVariant = e.variant
		w.reconfigure()
	case evScope:
		w.conf.scopeTypo = e.typo
		w.reconfigure()
	case evHandEdit:
		w.handEdit(e)
	case evStateLoss:
		w.loseState()
	case evTargetRename:
		w.renameTarget(e.tgt)
	case evTick:
		at, _ := w.reps[w.leader].engine.Due()
		if at.IsZero() || w.h.Clock.Now().Before(at) {
			return
		}
		w.activity("expiry", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
			return w.run(ctx, en, dsync.RunOptions{Trigger: "expiry", UseStored: true})
		})
	case evApprove:
		if !w.mech.on("approvesrc") {
			w.next.zeroUsers, w.next.groupEmpty, w.next.massEnd = false, "", 0 // an approver vouches for what the sources say
		} // else an approval accepts what was reviewed, nothing more: a source broken since is still guarded
		live := w.heldRuns()
		if len(live) == 0 {
			return
		}
		id := live[e.n%len(live)]
		var only []connector.Action
		if e.only {
			only = []connector.Action{connector.ActSuspend}
		}
		w.approving = w.heldAllowance(id)
		w.activity("approve", func(_ context.Context, en *dsync.Engine) (*dsync.Result, error) {
			return nil, approve(en, id, only...)
		})
	case evRetryQuarantined:
		w.activity("full run", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
			return w.run(ctx, en, dsync.RunOptions{Trigger: "schedule", RetryQuarantined: true})
		})
	case evDryRun:
		w.activity("dry run", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
			return w.run(ctx, en, dsync.RunOptions{Trigger: "cli", DryRun: true})
		})
	case evDiscard:
		if live := w.heldRuns(); len(live) > 0 {
			id := live[e.n%len(live)]
			w.activity("discard", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
				return nil, en.Discard(ctx, id, "test-operator")
			})
			// A discarded plan stays discarded while the sources say the
			// same: only an operator's --allow-mass-change releases it.
			w.discarded = true
		}
	case evMakePlanFile:
		w.activity("plan", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
			pf, err := en.MakePlanFile(ctx, dsync.RunOptions{})
			w.plan = pf
			return nil, err
		})
	case evApplyPlanFile:
		if w.plan == nil {
			return
		}
		pf := w.plan
		w.plan = nil
		w.activity("apply plan file", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
			return en.ApplyPlanFile(ctx, pf, dsync.RunOptions{})
		})
	default:
		w.directory(e)
	}
}

// directory applies a directory event to the truth and, for the IdP,
// delivers the push.
func (w *world) directory(e event) {
	p := e.person
	switch e.kind {
	case evShareEmail:
		q := e.n
		_, pin := w.ref.truth[srcAD][p]
		_, qin := w.ref.truth[srcAD][q]
		if !pin || !qin {
			return
		}
		w.ref.change(srcAD, p, func(r *record) *record {
			r.email = username(q) + "@example.test"
			return r
		})
		w.ref.conflicted[p], w.ref.conflicted[q] = true, true
		w.setSources(srcAD)
		return
	case evSuccessor:
		q := e.n
		if _, there := w.ref.truth[srcAD][q]; there {
			return // the successor joined already
		}
		for _, src := range []string{srcIdP, srcAD} {
			w.ref.change(src, p, func(*record) *record { return nil })
		}
		w.ref.change(srcAD, q, func(*record) *record {
			r := record{active: true, groups: []string{"staff"}, given: "Given"}
			if e.all {
				r.groups = []string{"admins", "staff"}
			}
			if e.mailbox {
				r.email = username(p) + "@example.test"
			} else {
				r.uname = username(p)
				w.ref.recycled[p], w.ref.recycled[q] = true, true
			}
			return &r
		})
		if e.mailbox {
			w.targets["ezeelogin"].Seed(ezeeloginAccount(q)) // a recycled username finds the leaver's
		}
		w.setSources()
		return
	case evDupAdd, evDupRemove:
		_, inAD := w.ref.truth[srcAD][p]
		w.ref.dups[p] = e.kind == evDupAdd && inAD
		w.ref.change(srcAD, p, func(r *record) *record { return r })
		w.setSources(srcAD)
		return
	}
	_, carried := w.ref.truth[e.src][p]
	w.ref.change(e.src, p, func(r *record) *record {
		if e.kind == evComeBack {
			if r != nil {
				return r
			}
			// A new record: active staff, or for the IdP a copy of what
			// the directory says (an IdP starting to carry someone).
			base := record{active: true, groups: []string{"staff"}, given: "Given"}
			if ad, ok := w.ref.truth[srcAD][p]; ok && e.src == srcIdP {
				base = ad.clone()
			}
			return &base
		}
		if r == nil {
			return nil
		}
		switch e.kind {
		case evDisable:
			r.active = false
		case evEnable:
			r.active = true
		case evSetExpiry:
			t := w.h.Clock.Now().Add(e.dur)
			r.expires = &t
		case evClearExpiry:
			r.expires = nil
		case evGroupAdd:
			r.groups = identity.SortedSet(append(r.groups, e.group))
		case evGroupRemove:
			r.groups = slices.DeleteFunc(r.groups, func(g string) bool { return g == e.group })
		case evLeave:
			return nil
		case evPasswordReset:
			r.mustChange = true
		case evPasswordChanged:
			r.mustChange = false
		case evRename:
			r.given += "x"
		}
		return r
	})
	w.setSources(e.src)
	if _, carries := w.ref.truth[e.src][p]; e.src != srcIdP || e.via == viaNone || (!carried && !carries) {
		return // nothing to push: not the IdP, or it does not carry the person
	}
	ch := source.Change{Deletes: []string{sourceKey(srcIdP, p)}}
	if rec, ok := w.ref.truth[srcIdP][p]; ok {
		ch = source.Change{Upserts: []identity.User{rec.user(srcIdP, p)}}
	}
	if e.via == viaStandby {
		w.activity("push to the standby", func(ctx context.Context, _ *dsync.Engine) (*dsync.Result, error) {
			_, err := w.reps[1-w.leader].engine.MergeChange(ctx, srcIdP, ch)
			if errors.Is(err, dsync.ErrNotLeader) {
				w.forwarded = append(w.forwarded, ch) // the daemon's change log
			}
			return nil, err
		})
		return
	}
	w.activityOn("push", []int{p}, func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
		keys, err := en.MergeChange(ctx, srcIdP, ch)
		if err != nil {
			return nil, err
		}
		return w.run(ctx, en, dsync.RunOptions{Trigger: "scim", Keys: keys})
	})
}

// loseState replaces the store with an empty one, as a new embedded file
// or an empty Redis would: the leader takes the lock again, and every
// forced password change may be sent once more (nothing says it was).
func (w *world) loseState() {
	var h = w.h
	w.mem = memstore.New(memstore.Options{JournalSize: 1000, Now: func() time.Time { return h.Clock.Now() }})
	w.store = synctest.NewFaultStore(w.mem)
	w.store.SetHook(w.onStore)
	for _, rep := range w.reps {
		rep.lease.Store(nil)
		rep.believes.Store(false)
	}
	l, err := w.mem.AcquireLock(context.Background(), "leader", w.reps[w.leader].name, 365*24*time.Hour)
	if err != nil {
		panic(fmt.Sprintf("model: take the lead: %v", err))
	}
	w.reps[w.leader].lease.Store(&l)
	w.reps[w.leader].believes.Store(true)
	w.former = -1
	w.held = nil
	w.reconfigure()
	for _, tm := range modelTargets {
		for p := range w.total {
			if w.ref.merged(p).mustChange {
				w.pwdUnsure[tm.name][p]++
			}
		}
	}
}

// handEdit changes an application by hand, as an administrator would.
func (w *world) handEdit(e event) {
	mt := w.targets[e.tgt]
	var keys []string
	for _, a := range mt.All() {
		p, dup, ok := personOfAccount(a)
		switch {
		case e.person < 0:
			if a.Username == strangerNames[-e.person-1] {
				keys = append(keys, a.Key)
			}
		case e.all:
			if a.Suspended && ok && !dup {
				keys = append(keys, a.Key)
			}
		case ok && !dup && p == e.person && a.Username != "" && !strings.HasPrefix(a.Username, "svc-") && !strings.HasPrefix(a.Username, "ext-"):
			keys = append(keys, a.Key)
		}
	}
	slices.Sort(keys)
	if e.op == heMake {
		if len(keys) > 0 {
			return // they have one
		}
		w.handSeq++
		u := username(e.person)
		mt.Seed(identity.Account{Key: fmt.Sprintf("hand-%d", w.handSeq), Username: u, Email: u + "@example.test", GivenName: "Given",
			FamilyName: familyName(e.person), Role: "admin", Remote: map[string]string{"id": fmt.Sprintf("h%d", w.handSeq)}})
		w.handDirty[e.tgt][e.person] = true
		return
	}
	for _, k := range keys {
		if e.person >= 0 || e.all {
			if a, ok := mt.Get(k); ok {
				if p, _, ok := personOfAccount(a); ok {
					w.handDirty[e.tgt][p] = true
				}
			}
		}
		if e.op == heRemove {
			mt.Remove(k)
			continue
		}
		defer func() {
			if a, ok := mt.Get(k); ok && w.strangers[a.Username].Username != "" {
				w.strangers[a.Username] = a // as the administrator left it
			}
		}()
		mt.Edit(k, func(a *identity.Account) {
			switch e.op {
			case heReEnable:
				a.Suspended = false
			case heRaise:
				a.Role = "admin"
			case heLower:
				a.Role = "user"
			case heGroupAdd:
				a.Groups = identity.SortedSet(append(a.Groups, "ops"))
			}
		})
	}
}

// run runs the engine once, stoppable by a graceful-stop fault.
func (w *world) run(ctx context.Context, en *dsync.Engine, ro dsync.RunOptions) (*dsync.Result, error) {
	w.mu.Lock()
	ro.Stop = w.cur.stop
	w.mu.Unlock()
	return en.Run(ctx, ro)
}

// relay delivers the pushes standbys forwarded, in order, as the daemon's
// leader does when it consumes the change log: merge, then a targeted run.
// A change the leader cannot merge stays queued.
func (w *world) relay() {
	stale := w.next.staleLeader
	w.next.staleLeader = false // the change log is the leader's: a former leader does not consume it
	defer func() { w.next.staleLeader = stale }()
	w.activity("change log", func(ctx context.Context, en *dsync.Engine) (*dsync.Result, error) {
		var res *dsync.Result
		for len(w.forwarded) > 0 {
			// As the daemon does (cmd/dirsync relay.go): the forwarded
			// users are read back as the source holds them now, so a late
			// entry never overwrites a newer push.
			fw := w.forwarded[0]
			keys := slices.Clone(fw.Deletes)
			for _, u := range fw.Upserts {
				keys = append(keys, u.Key)
			}
			now, _ := w.h.Src(srcIdP).Resolve(ctx, keys, fw.Reason)
			keys, err := en.MergeChange(ctx, srcIdP, now)
			if err != nil {
				return res, err
			}
			w.forwarded = w.forwarded[1:]
			if res, err = w.run(ctx, en, dsync.RunOptions{Trigger: "scim", Keys: keys}); err != nil {
				return res, err
			}
		}
		return res, nil
	})
}

// heldRuns returns the held runs still stored, oldest first.
func (w *world) heldRuns() []string {
	ids, _ := w.mem.HeldRuns(context.Background())
	var out []string
	for _, id := range w.held {
		if slices.Contains(ids, id) {
			out = append(out, id)
		}
	}
	return out
}

// activity runs fn on the acting replica with the armed faults, then
// checks what it left behind.
func (w *world) activity(name string, fn func(context.Context, *dsync.Engine) (*dsync.Result, error)) {
	w.activityOn(name, nil, fn)
}

// activityOn is activity for a run about some people only (a targeted
// run): the checks after it look at them.
func (w *world) activityOn(name string, focus []int, fn func(context.Context, *dsync.Engine) (*dsync.Result, error)) {
	f := w.next
	w.next = faults{}
	rep := w.reps[w.leader]
	standby := name == "push to the standby"
	if f.staleLeader && w.former >= 0 && w.former != w.leader {
		rep = w.reps[w.former]
		rep.believes.Store(true)
		standby = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &activity{name: name, faults: f, cancel: cancel, standby: standby,
		stop: make(chan struct{}), calls: map[string]int{}, stored: map[string]bool{}, budget: map[string]map[string]bool{}, attempts: map[string]int{}, lost: map[string]bool{}, names: map[string]string{}, reduced: map[string]map[int]bool{}}
	var short version
	if f.sourceFail != "" {
		w.h.Src(f.sourceFail).Fail(errors.New(f.sourceFail + ": connection reset"))
	}
	if f.zeroUsers {
		w.h.Src(srcAD).Set()
		c.short = true
	}
	if f.massEnd != 0 {
		short = w.ref.truth[srcAD].clone()
		end := w.h.Clock.Now().Add(f.massEnd)
		for p, r := range short {
			if r.expires == nil || r.expires.After(end) {
				r.expires = &end
			}
			short[p] = r
		}
		w.h.Src(srcAD).Set(w.ref.users(srcAD, short)...)
		c.short = true
	}
	if f.groupEmpty != "" {
		short = w.ref.truth[srcAD].clone()
		for p, r := range short {
			r.groups = slices.DeleteFunc(r.groups, func(g string) bool { return g == f.groupEmpty })
			short[p] = r
		}
		w.h.Src(srcAD).Set(w.ref.users(srcAD, short)...)
		c.short = true
	}
	c.shortRead = short
	if f.zeroUsers && short == nil {
		// Zero users is what the directory reads only if no later fault
		// of this activity set it again: a mass end date or an emptied
		// group, set after, is what it returns (and what the engine acts
		// on), so the judge takes that read, not an empty one.
		c.shortRead = version{}
	}
	readOnly := name == "dry run" || name == "plan"
	var before string
	if standby || readOnly {
		before = w.storedState()
	}
	journal := len(w.h.Decisions())
	w.mu.Lock()
	w.cur = c
	w.mu.Unlock()
	res, err := fn(ctx, rep.engine)
	cancel()
	w.mu.Lock()
	w.cur = nil
	w.mu.Unlock()
	if f.sourceFail != "" || c.short {
		w.setSources()
	}
	if c.dead {
		rep.engine = w.newEngine(rep) // the process restarts on the same store
	}
	if readOnly && w.storedState() != before {
		w.violate("read-only run wrote state", "a %s changed stored snapshots, accounts or held plans", name)
	}
	if standby {
		if after := w.storedState(); after != before {
			w.violate("standby wrote shared state", "%s: a replica without the lease changed stored snapshots, accounts or held plans", name)
		}
		if rep != w.reps[w.leader] {
			rep.believes.Store(false)
		}
	}
	if !c.dead {
		w.checkDecided(c, w.h.Decisions()[journal:])
	}
	if w.step > 0 { // the first run adopts what the applications had
		w.checkGuard(c, w.approving)
	}
	w.approving = nil
	if c.dead || f.storeFlaky > 0 || f.storeDown {
		// A forced change that landed may never have been recorded.
		for _, call := range c.landed {
			parts := strings.Split(call, "/")
			if p, dup, ok := personOf(parts[1]); ok && !dup && parts[2] == string(connector.ActForcePasswordChange) {
				w.pwdUnsure[parts[0]][p]++
			}
		}
	}
	w.noteHeld()
	w.noteStored(c, short)
	w.checkCache()
	healthy := len(f.armedBy) == 0 && !standby && err == nil && res != nil &&
		(name == "full run" || name == "mass run" || name == "expiry" || name == "push" || name == "reconcile")
	if healthy {
		w.checkAfterHealthyRun(res, focus, name == "reconcile")
	}
}

// storedState fingerprints the shared state only the leader may change:
// snapshots, accounts, held plans.
func (w *world) storedState() string {
	ctx := context.Background()
	var b strings.Builder
	for _, src := range []string{srcAD, srcIdP} {
		if snap, err := w.mem.GetSnapshot(ctx, src); err == nil {
			fmt.Fprintf(&b, "%s: %s\n", src, fingerprint(snap.Users))
		}
	}
	for _, tm := range modelTargets {
		accts, _ := w.mem.Accounts(ctx, w.engineName(tm.name))
		fmt.Fprintf(&b, "%s: %s\n", tm.name, dsync.Fingerprint(accts))
	}
	held, _ := w.mem.HeldRuns(ctx)
	fmt.Fprintln(&b, held)
	return b.String()
}

// noteHeld records held runs that appeared, in order.
func (w *world) noteHeld() {
	ids, _ := w.mem.HeldRuns(context.Background())
	sort.Strings(ids)
	for _, id := range ids {
		if !slices.Contains(w.held, id) {
			w.held = append(w.held, id)
		}
	}
}

// noteStored tells the reference what the engine stored.
func (w *world) noteStored(c *activity, short version) {
	for _, src := range []string{srcAD, srcIdP} {
		if !c.stored[src] {
			continue
		}
		snap, err := w.mem.GetSnapshot(context.Background(), src)
		if err != nil {
			continue
		}
		fp := fingerprint(snap.Users)
		switch {
		case fp == fingerprint(w.ref.users(src, w.ref.truth[src])):
			w.ref.stored(src, nil, true)
		case src == srcAD && short != nil && fp == fingerprint(w.ref.users(src, short)):
			w.ref.stored(src, short, false)
		}
	}
}
