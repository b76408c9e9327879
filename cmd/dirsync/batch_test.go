package main

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestBatchMerges(t *testing.T) {
	b := newBatch()
	if m := b.take(); m != nil {
		t.Fatalf("empty batch took %+v", m)
	}
	t0 := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	b.add(trigger{name: "syncrepl", keys: []string{"a"}, observed: t0.Add(time.Second)})
	b.add(trigger{name: "scim", keys: []string{"b", "a"}, observed: t0})
	b.add(trigger{name: "expiry", stored: true})
	select {
	case <-b.ready:
	default:
		t.Fatal("no ready token after add")
	}
	m := b.take()
	if m == nil || m.full || m.name != "syncrepl" || !m.observed.Equal(t0) || len(m.keys) != 2 || !m.keys["a"] || !m.keys["b"] {
		t.Fatalf("merged %+v", m)
	}
	// A full request absorbs the keyed ones and names the run.
	b.add(trigger{name: "scim", keys: []string{"c"}})
	b.add(trigger{name: "schedule", reconcile: true, fallback: "why"})
	m = b.take()
	if m == nil || !m.full || m.name != "schedule" || !m.reconcile || m.fallback != "why" {
		t.Fatalf("merged %+v", m)
	}
	if m := b.take(); m != nil {
		t.Fatalf("second take got %+v", m)
	}
	select {
	case <-b.ready:
		t.Fatal("a ready token left after take")
	default:
	}
}

// TestBatchBurst: 10,000 changes arriving while runs take 2 ms each all
// reach a run, and become far fewer runs than changes (the first at once).
func TestBatchBurst(t *testing.T) {
	b := newBatch()
	const n = 10000
	var runs [][]string
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := 0
		for seen < n {
			<-b.ready
			m := b.take()
			if m == nil {
				continue
			}
			var keys []string
			for k := range m.keys {
				keys = append(keys, k)
			}
			runs = append(runs, keys)
			seen += len(keys)
			time.Sleep(2 * time.Millisecond) // the run
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				b.add(trigger{name: "watch", keys: []string{fmt.Sprint(i)}})
			}
		}()
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("not every change reached a run")
	}
	var all []string
	for _, r := range runs {
		all = append(all, r...)
	}
	slices.Sort(all)
	if len(all) != n || len(slices.Compact(all)) != n {
		t.Fatalf("%d keys in runs, want %d distinct", len(all), n)
	}
	if len(runs) > n/10 {
		t.Fatalf("%d runs for %d changes", len(runs), n)
	}
	t.Logf("%d changes in %d runs", n, len(runs))
}
