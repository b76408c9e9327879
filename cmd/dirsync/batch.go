package main

import (
	"sync"
	"time"

	"github.com/dirsync/dirsync/source"
)

// batch merges the triggers that arrive while a run is under way into the
// next run. The first change of a quiet period starts a run at once (no
// waiting to gather); whatever arrives meanwhile waits for that run to end
// and then goes as one run, so a burst of 10,000 changes becomes a handful
// of runs, and none is dropped however long the burst.
type batch struct {
	mu      sync.Mutex
	pending *merged
	// ready holds one token while anything is pending.
	ready chan struct{}
}

// merged is the union of pending triggers.
type merged struct {
	name string
	full bool // a full run absorbs every keyed one
	// storedAll: a plan of everyone over the stored snapshots was asked
	// for (the expiry timer); it absorbs keyed ones.
	storedAll bool
	reconcile bool
	fallback  string
	keys      map[string]bool
	observed  time.Time // the earliest change behind it
}

func newBatch() *batch { return &batch{ready: make(chan struct{}, 1)} }

// add merges t into the pending run and signals the worker.
func (b *batch) add(t trigger) {
	b.mu.Lock()
	if b.pending == nil {
		b.pending = &merged{name: t.name, keys: map[string]bool{}}
	}
	b.pending.merge(t)
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take returns everything pending and empties the batch (nil when nothing
// is).
func (b *batch) take() *merged {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.pending
	b.pending = nil
	select { // the token of what was just taken
	case <-b.ready:
	default:
	}
	return m
}

func (m *merged) merge(t trigger) {
	if t.keys == nil && !t.stored {
		// A full request: its name and fallback say what the run is.
		m.full, m.name, m.fallback = true, t.name, t.fallback
	}
	m.storedAll = m.storedAll || (t.stored && t.keys == nil)
	m.reconcile = m.reconcile || t.reconcile
	for _, k := range t.keys {
		m.keys[k] = true
	}
	if !t.observed.IsZero() && (m.observed.IsZero() || t.observed.Before(m.observed)) {
		m.observed = t.observed
	}
}

// changeQueue holds incremental changes waiting to be folded into their
// source's stored snapshot. A watcher only adds to it and goes back to
// reading its directory; the merger folds everything queued in one store
// round trip per source, so a burst of changes arriving while a run holds
// the engine becomes one merge and one run, not one of each per change.
type changeQueue struct {
	mu      sync.Mutex
	pending []queuedChange
	ready   chan struct{}
}

type queuedChange struct {
	src, name, how string
	ch             source.Change
	seen           time.Time
}

func newChangeQueue() *changeQueue { return &changeQueue{ready: make(chan struct{}, 1)} }

func (q *changeQueue) add(c queuedChange) {
	q.mu.Lock()
	q.pending = append(q.pending, c)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns what is queued, by source, each source's changes in the
// order they came, and the sources in the order they first appear.
func (q *changeQueue) take() (srcs []string, by map[string][]queuedChange) {
	q.mu.Lock()
	all := q.pending
	q.pending = nil
	q.mu.Unlock()
	by = map[string][]queuedChange{}
	for _, c := range all {
		if _, ok := by[c.src]; !ok {
			srcs = append(srcs, c.src)
		}
		by[c.src] = append(by[c.src], c)
	}
	return srcs, by
}
