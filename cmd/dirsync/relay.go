package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"go.uber.org/zap"
)

// Only the leader writes shared state (snapshots, accounts, links). What a
// standby receives — a SCIM push lands on whichever replica the load
// balancer picked — and what a CLI asks of a running daemon (`approve`) go
// through two append-only KV buckets the leader consumes: the change log
// and the request queue. Each entry is claimed by deleting it with its
// version, so two replicas never both act on one.
const (
	changeLogBucket = "changelog"
	requestBucket   = "requests"
	responseBucket  = "responses"
	relayInterval   = 200 * time.Millisecond
)

// forwarded is one change-log entry.
type forwarded struct {
	Source string        `json:"source"`
	Change source.Change `json:"change"`
	// Seen is when the standby received the change (propagation metric).
	Seen time.Time `json:"seen"`
}

// request is one entry of the request queue.
type request struct {
	Op    string             `json:"op"` // approve (discard: handed to targets' holders)
	RunID string             `json:"run_id"`
	Only  []connector.Action `json:"only,omitempty"`
	By    string             `json:"by,omitempty"`
}

// response answers a request.
type response struct {
	RunID  string         `json:"run_id,omitempty"`
	Status string         `json:"status,omitempty"`
	Counts map[string]int `json:"counts,omitempty"`
	Held   bool           `json:"held,omitempty"`
	Error  string         `json:"error,omitempty"`
}

func entryID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%020d-%s", time.Now().UnixNano(), hex.EncodeToString(b[:]))
}

// forward appends a change received by a standby to the change log.
func (d *daemon) forward(ctx context.Context, src string, ch source.Change) {
	b, err := json.Marshal(forwarded{Source: src, Change: ch, Seen: time.Now().UTC()})
	if err == nil {
		_, err = d.a.store.KVPut(ctx, changeLogBucket, entryID(), b, 0)
	}
	if err != nil {
		d.log.Warn("change not forwarded to the leader: left to the next full run", zap.String("source", src), zap.Error(err))
		return
	}
	d.log.Debug("change forwarded to the leader", zap.String("source", src), zap.String("reason", ch.Reason))
}

// relay runs on every replica; while it leads, it consumes the change log
// and the request queue.
func (d *daemon) relay(ctx context.Context) {
	t := time.NewTicker(relayInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if perTarget(d.a.cfg) {
			d.consumeTargetRuns(ctx)
			d.serveTargetRequests(ctx)
		}
		if !d.leader.Load() {
			continue
		}
		d.consumeChanges(ctx)
		d.serveRequests(ctx)
	}
}

// claim lists a bucket and returns its entries in order, each already
// removed from the bucket (so no other replica acts on it too).
func (d *daemon) claim(ctx context.Context, bucket string) [][]byte {
	all, err := d.a.store.KVList(ctx, bucket)
	if err != nil || len(all) == 0 {
		return nil
	}
	var keys []string
	for k := range all {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out [][]byte
	for _, k := range keys {
		_, ver, err := d.a.store.KVGet(ctx, bucket, k)
		if err != nil {
			continue
		}
		if err := d.a.store.KVDelete(ctx, bucket, k, ver); err != nil {
			continue // another replica claimed it
		}
		out = append(out, all[k])
	}
	return out
}

func (d *daemon) consumeChanges(ctx context.Context) {
	for _, raw := range d.claim(ctx, changeLogBucket) {
		var f forwarded
		if err := json.Unmarshal(raw, &f); err != nil {
			d.log.Warn("corrupt change-log entry dropped", zap.Error(err))
			continue
		}
		ch := f.Change
		if r, ok := d.sourceNamed(f.Source).(source.Resolver); ok && !ch.Full {
			// Merge the records as they are now, not as the standby saw
			// them: a forwarded change may arrive after a newer one.
			keys := slices.Clone(ch.Deletes)
			for _, u := range ch.Upserts {
				keys = append(keys, u.Key)
			}
			now, err := r.Resolve(ctx, keys, ch.Reason)
			if err != nil {
				now = source.Change{Full: true, Reason: ch.Reason + " (could not re-read the forwarded users: full pull)"}
			}
			ch = now
		}
		d.mergeAndTriggerSeen(ctx, f.Source, ch, "forwarded", f.Seen)
	}
}

// sourceNamed returns the configured source called name, or nil.
func (d *daemon) sourceNamed(name string) source.Source {
	for _, s := range d.a.sources {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// mergeAndTrigger folds a change into the leader's snapshot and asks for a
// targeted run of the people it touches.
func (d *daemon) mergeAndTrigger(ctx context.Context, src string, ch source.Change, how string) {
	d.mergeAndTriggerSeen(ctx, src, ch, how, time.Now())
}

// changeKind names how a change arrived, from its reason ("syncrepl: ...",
// "usn: ...", "notify: ...", "scim PATCH ..."): the propagation metric's
// trigger label.
func changeKind(reason string) string {
	i := strings.IndexAny(reason, ": ")
	if i <= 0 {
		return ""
	}
	switch k := reason[:i]; k {
	case "syncrepl", "usn", "notify", "dirsync", "modify_timestamp", "scim":
		return k
	}
	return ""
}

// mergeAndTriggerSeen is mergeAndTrigger for a change first seen at seen
// (by this replica, or by the standby that forwarded it).
func (d *daemon) mergeAndTriggerSeen(ctx context.Context, src string, ch source.Change, how string, seen time.Time) {
	if seen.IsZero() {
		seen = time.Now()
	}
	name := "incremental:" + src
	if k := changeKind(ch.Reason); k != "" {
		name += ":" + k
	}
	if ch.Full {
		why := ch.Reason
		if why == "" {
			why = "the change could not be resolved to people"
		}
		d.Trigger(trigger{name: name, fallback: src + ": " + why + ": full run instead of a targeted one", observed: seen})
		return // the full run posts to the other targets' holders when it is done
	}
	d.changes.add(queuedChange{src: src, name: name, how: how, ch: ch, seen: seen})
}

// merger folds queued changes into their sources' snapshots (see
// changeQueue) and asks for a targeted run of the people they touch, until
// stop is closed.
func (d *daemon) merger(ctx context.Context, stop chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-d.changes.ready:
		}
		srcs, by := d.changes.take()
		for _, src := range srcs {
			qs := by[src]
			chs := make([]source.Change, len(qs))
			seen := qs[0].seen
			for i, q := range qs {
				chs[i] = q.ch
				if q.seen.Before(seen) {
					seen = q.seen
				}
			}
			keys, err := d.a.engine.MergeChanges(ctx, src, chs)
			if errors.Is(err, dsync.ErrNotLeader) {
				for _, ch := range chs {
					d.forward(ctx, src, ch)
				}
				continue
			}
			if err != nil {
				d.log.Warn("incremental change not merged: left to the next full run", zap.String("source", src), zap.String("via", qs[0].how),
					zap.Int("changes", len(chs)), zap.Error(err))
				continue
			}
			d.Trigger(trigger{name: qs[0].name, keys: keys, observed: seen})
			d.postTargetRuns(ctx, qs[0].name, keys, seen)
		}
	}
}

func (d *daemon) serveRequests(ctx context.Context) {
	for _, raw := range d.claim(ctx, requestBucket) {
		var r request
		var resp response
		if err := json.Unmarshal(raw, &r); err != nil {
			continue
		}
		id := r.RunID
		switch r.Op {
		case "approve":
			d.handOverApproval(ctx, r)
			res, err := d.a.engine.Approve(context.WithoutCancel(ctx), dsync.ApproveRequest{RunID: r.RunID, Only: r.Only, By: r.By})
			if res != nil {
				resp = response{RunID: res.RunID, Status: res.Status, Counts: res.Counts, Held: res.Held}
			}
			if err != nil {
				resp.Error = err.Error()
			}
		default:
			resp.Error = fmt.Sprintf("unknown request %q", r.Op)
		}
		b, _ := json.Marshal(resp)
		if _, err := d.a.store.KVPut(ctx, responseBucket, r.Op+":"+id+":"+r.By, b, -1); err != nil {
			d.log.Warn("answer a request", zap.String("op", r.Op), zap.Error(err))
		}
	}
}

// askLeader queues an approval for the running daemon's leader and waits
// for its answer.
func askLeader(ctx context.Context, st state.Store, r request, wait time.Duration) (*dsync.Result, error) {
	b, _ := json.Marshal(r)
	respKey := r.Op + ":" + r.RunID + ":" + r.By
	_ = st.KVDelete(ctx, responseBucket, respKey, -1)
	if _, err := st.KVPut(ctx, requestBucket, entryID(), b, 0); err != nil {
		return nil, fmt.Errorf("queue the request for the leader: %w", err)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		raw, _, err := st.KVGet(ctx, responseBucket, respKey)
		if err == nil {
			_ = st.KVDelete(ctx, responseBucket, respKey, -1)
			var resp response
			if err := json.Unmarshal(raw, &resp); err != nil {
				return nil, fmt.Errorf("the leader's answer: %w", err)
			}
			var res *dsync.Result
			if resp.RunID != "" {
				res = &dsync.Result{RunID: resp.RunID, Status: resp.Status, Counts: resp.Counts, Held: resp.Held}
			}
			if resp.Error != "" {
				return res, errors.New(resp.Error)
			}
			return res, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(relayInterval):
		}
	}
	return nil, fmt.Errorf("the leader did not answer within %s (is a daemon running and leading?)", wait)
}
