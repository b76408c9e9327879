package main

// Targets shared across replicas (state.leases: per_target). Each target
// has a fenced lease of its own ("target:NAME"); a replica holds at most
// its fair share of them — ceil(targets / live replicas), liveness being a
// heartbeat entry per replica in the members bucket that expires with the
// lock TTL — and plans and applies only the targets it holds. The leader
// lease stays: its holder alone writes the sources' shared state
// (snapshots, links, cursors), runs the directory watchers and merges the
// changes the other replicas forward; it then tells each target's holder
// what to plan through the target-runs bucket (one entry per target,
// coalesced), which every replica consumes for the targets it holds.

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"go.uber.org/zap"
)

const (
	targetLockPrefix = "target:"
	membersBucket    = "members"
	targetRunsBucket = "targetruns"
	// targetRequestsBucket carries approvals to the targets' holders
	// ("TARGET/ENTRY" → request).
	targetRequestsBucket = "targetrequests"
	// maxPostedKeys bounds a target-runs entry: past it, the entry asks for
	// a full plan over the stored snapshots instead.
	maxPostedKeys = 10000
)

// targetLock names a target's lease.
func targetLock(target string) string { return targetLockPrefix + target }

// perTarget reports whether replicas share the targets.
func perTarget(cfg *config.Config) bool { return cfg.State.Leases == config.LeasesPerTarget }

// leaseSet is the set of target leases one process holds. fenceFor is
// what the engine and the connectors ask before every write and call.
type leaseSet struct {
	mu     sync.Mutex
	leases map[string]state.Lease // target → lease
}

func newLeaseSet() *leaseSet { return &leaseSet{leases: map[string]state.Lease{}} }

// fenceFor returns the fence for a target's writes and whether its lease
// is held and unexpired by this process's clock. A target not held gets a
// fence no store accepts.
func (s *leaseSet) fenceFor(target string) (state.Fence, bool) {
	s.mu.Lock()
	l, ok := s.leases[target]
	s.mu.Unlock()
	if !ok {
		return state.Fence{Lock: targetLock(target), Token: -1}, false
	}
	return l.Fence(), time.Now().Before(l.Expires)
}

func (s *leaseSet) held() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t := range s.leases {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (s *leaseSet) put(target string, l state.Lease) {
	s.mu.Lock()
	s.leases[target] = l
	s.mu.Unlock()
}

func (s *leaseSet) drop(target string) (state.Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[target]
	delete(s.leases, target)
	return l, ok
}

// renew renews every held lease; a lease that cannot be renewed is
// dropped at once (its target is no longer called or written).
func (s *leaseSet) renew(ctx context.Context, st state.Store, ttl time.Duration, log *zap.Logger) {
	for _, t := range s.held() {
		s.mu.Lock()
		l := s.leases[t]
		s.mu.Unlock()
		nl, err := st.RenewLock(ctx, l, ttl)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.drop(t)
			log.Warn("lost the target's lease: another replica applies it", zap.String("target", t), zap.Error(err))
			continue
		}
		s.mu.Lock()
		if cur, ok := s.leases[t]; ok && cur.Token == nl.Token {
			s.leases[t] = nl
		}
		s.mu.Unlock()
	}
}

// releaseAll gives every held lease up (shutdown, end of a CLI command).
func (s *leaseSet) releaseAll(st state.Store) {
	for _, t := range s.held() {
		if l, ok := s.drop(t); ok {
			_ = st.ReleaseLock(context.Background(), l)
		}
	}
}

// member is a replica's heartbeat entry.
type member struct {
	Expires time.Time `json:"expires"`
}

// preference orders the targets for one replica (rendezvous hashing): each
// replica tries its own order, so replicas starting together take
// different targets, and releases from the end of it.
func preference(owner string, targets []string) []string {
	out := slices.Clone(targets)
	score := func(t string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(owner))
		h.Write([]byte{0})
		h.Write([]byte(t))
		return h.Sum64()
	}
	slices.SortFunc(out, func(a, b string) int {
		sa, sb := score(a), score(b)
		switch {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}

// share keeps this replica's fair share of the target leases: it beats
// its heartbeat, renews what it holds, gives up what exceeds its share and
// takes free targets up to it, every third of the lock TTL. A target it
// takes gets a catch-up run over the stored snapshots.
func (d *daemon) share(ctx context.Context) {
	ttl := d.a.cfg.State.LockTTL.D()
	targets := d.a.targetNames()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.shareOnce(ctx, ttl, targets)
		t.Reset(ttl / 3)
	}
}

func (d *daemon) shareOnce(ctx context.Context, ttl time.Duration, targets []string) {
	st := d.a.store
	// Renew first: a slow heartbeat must not cost the leases.
	d.leases.renew(ctx, st, ttl, d.log)
	now := time.Now()
	b, _ := json.Marshal(member{Expires: now.Add(ttl)})
	if _, err := st.KVPut(ctx, membersBucket, d.owner, b, -1); err != nil {
		d.log.Warn("replica heartbeat", zap.Error(err))
		return
	}
	all, err := st.KVList(ctx, membersBucket)
	if err != nil {
		d.log.Warn("list replicas", zap.Error(err))
		return
	}
	live := 0
	for name, raw := range all {
		var m member
		if json.Unmarshal(raw, &m) == nil && now.Before(m.Expires) {
			live++
			continue
		}
		if name != d.owner {
			_ = st.KVDelete(ctx, membersBucket, name, -1) // gone: no heartbeat for a TTL
		}
	}
	live = max(live, 1)
	fair := (len(targets) + live - 1) / live
	order := preference(d.owner, targets)
	held := d.leases.held()
	// Over the share (a replica joined): give up the least preferred.
	for i := len(order) - 1; i >= 0 && len(held) > fair; i-- {
		if !slices.Contains(held, order[i]) {
			continue
		}
		if l, ok := d.leases.drop(order[i]); ok {
			_ = st.ReleaseLock(ctx, l)
			d.log.Info("target handed over: more replicas are live", zap.String("target", order[i]), zap.Int("replicas", live), zap.Int("share", fair))
		}
		held = d.leases.held()
	}
	var taken []string
	for _, tgt := range order {
		if len(held)+len(taken) >= fair {
			break
		}
		if slices.Contains(held, tgt) {
			continue
		}
		l, err := st.AcquireLock(ctx, targetLock(tgt), d.owner, ttl)
		switch {
		case err == nil:
			d.leases.put(tgt, l)
			taken = append(taken, tgt)
			d.log.Info("took the target's lease", zap.String("target", tgt), zap.Int64("fencing_token", l.Token), zap.Int("replicas", live), zap.Int("share", fair))
		case !errors.Is(err, state.ErrLockHeld):
			d.log.Warn("target lease", zap.String("target", tgt), zap.Error(err))
		}
	}
	if len(taken) > 0 {
		// Catch up: plan the taken targets over the stored snapshots (the
		// previous holder may have died in the middle of a change).
		d.Trigger(trigger{name: "lease", stored: true})
	}
}

// targetRun is one target-runs entry: what the target's holder must plan.
type targetRun struct {
	// Full: a full plan over the stored snapshots (after a pull).
	Full     bool      `json:"full,omitempty"`
	Keys     []string  `json:"keys,omitempty"`
	Name     string    `json:"name"`
	Observed time.Time `json:"observed,omitzero"`
}

// postTargetRuns asks the holders of the targets this replica does not
// hold to plan keys (nil: everything, over the stored snapshots). Entries
// are merged per target with a versioned write, so a burst of changes is
// one entry per target.
func (d *daemon) postTargetRuns(ctx context.Context, name string, keys []string, observed time.Time) {
	if !perTarget(d.a.cfg) {
		return
	}
	for _, tgt := range d.a.targetNames() {
		if _, ok := d.leases.fenceFor(tgt); ok {
			continue
		}
		for range 8 {
			raw, ver, err := d.a.store.KVGet(ctx, targetRunsBucket, tgt)
			var tr targetRun
			switch {
			case errors.Is(err, state.ErrNotFound):
				ver = 0
			case err != nil:
				d.log.Warn("post a run for the target's holder", zap.String("target", tgt), zap.Error(err))
				ver = -2
			default:
				_ = json.Unmarshal(raw, &tr)
			}
			if ver == -2 {
				break
			}
			tr.Name = name
			if !observed.IsZero() && (tr.Observed.IsZero() || observed.Before(tr.Observed)) {
				tr.Observed = observed
			}
			if keys == nil || tr.Full || len(tr.Keys)+len(keys) > maxPostedKeys {
				tr.Full, tr.Keys = true, nil
			} else {
				tr.Keys = append(tr.Keys, keys...)
			}
			b, _ := json.Marshal(tr)
			if _, err := d.a.store.KVPut(ctx, targetRunsBucket, tgt, b, ver); !errors.Is(err, state.ErrVersionMismatch) {
				if err != nil {
					d.log.Warn("post a run for the target's holder", zap.String("target", tgt), zap.Error(err))
				}
				break
			}
		}
	}
}

// claimForHeld claims, in key order, the entries of bucket whose target
// (the key up to its first "/") this replica holds: each is removed with
// its version, so no other replica acts on it too.
func (d *daemon) claimForHeld(ctx context.Context, bucket string) (keys []string, vals [][]byte) {
	held := d.leases.held()
	if len(held) == 0 {
		return nil, nil
	}
	all, err := d.a.store.KVList(ctx, bucket)
	if err != nil || len(all) == 0 {
		return nil, nil
	}
	for _, k := range slices.Sorted(maps.Keys(all)) {
		tgt, _, _ := strings.Cut(k, "/")
		if !slices.Contains(held, tgt) {
			continue
		}
		raw, ver, err := d.a.store.KVGet(ctx, bucket, k)
		if err != nil || d.a.store.KVDelete(ctx, bucket, k, ver) != nil {
			continue // changed or claimed meanwhile: whole next time
		}
		keys, vals = append(keys, k), append(vals, raw)
	}
	return keys, vals
}

// consumeTargetRuns claims the target-runs entries of the targets this
// replica holds and triggers their runs.
func (d *daemon) consumeTargetRuns(ctx context.Context) {
	keys, vals := d.claimForHeld(ctx, targetRunsBucket)
	for i, raw := range vals {
		var tr targetRun
		if err := json.Unmarshal(raw, &tr); err != nil {
			d.log.Warn("corrupt target-runs entry dropped", zap.String("target", keys[i]), zap.Error(err))
			continue
		}
		if tr.Full || len(tr.Keys) == 0 {
			d.Trigger(trigger{name: tr.Name, stored: true, observed: tr.Observed})
		} else {
			d.Trigger(trigger{name: tr.Name, keys: tr.Keys, observed: tr.Observed})
		}
	}
}

// handOverApproval passes the part of an approval (or a discard) that
// concerns targets this replica does not hold to their holders: each
// approves the held plans of its own targets (the engine applies only
// held targets).
func (d *daemon) handOverApproval(ctx context.Context, r request) {
	if !perTarget(d.a.cfg) {
		return
	}
	hps, err := d.a.engine.HeldPlans(ctx)
	if err != nil {
		d.log.Warn("hand the approval over to the targets' holders", zap.String("run", r.RunID), zap.Error(err))
		return
	}
	b, _ := json.Marshal(r)
	done := map[string]bool{}
	for _, hp := range hps {
		if hp.Target == "" || done[hp.Target] || (hp.ID != r.RunID && heldRunOf(hp.ID) != r.RunID) {
			continue
		}
		if _, ok := d.leases.fenceFor(hp.Target); ok {
			continue
		}
		done[hp.Target] = true
		if _, err := d.a.store.KVPut(ctx, targetRequestsBucket, hp.Target+"/"+entryID(), b, 0); err != nil {
			d.log.Warn("hand the approval over to the target's holder", zap.String("run", r.RunID), zap.String("target", hp.Target), zap.Error(err))
			continue
		}
		d.log.Info("approval handed over to the target's holder", zap.String("run", r.RunID), zap.String("target", hp.Target))
	}
}

// heldRunOf is the run id of a held plan's key ("RUN/TARGET" → RUN).
func heldRunOf(id string) string {
	run, _, _ := strings.Cut(id, "/")
	return run
}

// serveTargetRequests claims the approvals handed over for the targets
// this replica holds and applies them.
func (d *daemon) serveTargetRequests(ctx context.Context) {
	keys, vals := d.claimForHeld(ctx, targetRequestsBucket)
	for i, raw := range vals {
		tgt, _, _ := strings.Cut(keys[i], "/")
		var r request
		if err := json.Unmarshal(raw, &r); err != nil {
			continue
		}
		if r.Op == "discard" {
			if err := d.a.engine.Discard(context.WithoutCancel(ctx), r.RunID, r.By); err != nil {
				d.log.Warn("discard for the targets held here", zap.String("run", r.RunID), zap.String("target", tgt), zap.Error(err))
			}
			continue
		}
		if r.Op != "approve" {
			continue
		}
		res, err := d.a.engine.Approve(context.WithoutCancel(ctx), dsync.ApproveRequest{RunID: r.RunID, Only: r.Only, By: r.By})
		if err != nil {
			d.log.Warn("approval for the targets held here", zap.String("run", r.RunID), zap.String("target", tgt), zap.Error(err))
			continue
		}
		d.log.Info("approval applied for the targets held here", zap.String("run", r.RunID), zap.String("target", tgt), zap.String("approve_run", res.RunID))
	}
}
