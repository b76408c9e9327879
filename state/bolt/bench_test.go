package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/bolt"
	"github.com/dirsync/dirsync/state/statetest"
)

// BenchmarkPutAccount is one fenced, fsynced transaction per account, as the
// engine writes after each confirmed action.
func BenchmarkPutAccount(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "state.db"), bolt.Options{})
	ctx := context.Background()
	l, err := s.AcquireLock(ctx, "leader", "bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := s.PutAccount(ctx, l.Fence(), "t", statetest.BenchAccount(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkPutAccountParallel writes from several goroutines (targets
// applied in parallel).
func BenchmarkPutAccountParallel(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "state.db"), bolt.Options{})
	ctx := context.Background()
	l, err := s.AcquireLock(ctx, "leader", "bench", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.PutAccount(ctx, l.Fence(), "t", statetest.BenchAccount(int(n.Add(1)))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkAccounts100k loads a target of 100,000 cached accounts.
func BenchmarkAccounts100k(b *testing.B) {
	const n = 100000
	s := open(b, filepath.Join(b.TempDir(), "state.db"), bolt.Options{})
	ctx := context.Background()
	as := make([]identity.Account, n)
	for i := range as {
		as[i] = statetest.BenchAccount(i)
	}
	if err := s.PutAccounts(ctx, state.Fence{}, "t", as); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu := statetest.CPUTime()
	for b.Loop() {
		m, err := s.Accounts(ctx, "t")
		if err != nil || len(m) != n {
			b.Fatalf("%d accounts, %v", len(m), err)
		}
	}
	b.ReportMetric(float64((statetest.CPUTime()-cpu).Milliseconds())/float64(b.N), "client-cpu-ms/op")
}

// BenchmarkKVRangePage reads one page of 100 records from the middle of an
// index of 10,000 and of 100,000 entries, the way an IdP pages through
// every user: the page before was read, so its end position is cached.
// The time per page should not grow with the index.
func BenchmarkKVRangePage(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "state.db"), bolt.Options{})
			ctx := context.Background()
			val := bytes.Repeat([]byte("x"), 600) // about a user record
			var wg sync.WaitGroup
			for w := range 50 { // concurrent writers share commits
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < n; i += 50 {
						k := fmt.Sprintf("id%07d", i)
						if _, err := s.KVPutIndexed(ctx, "users", k, val, 0, nil,
							[]state.IndexEntry{{Index: "created", Term: fmt.Sprintf("t%09d", i)}}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			r := state.IndexRange{Index: "created"}
			off := n / 2
			if _, _, err := s.KVRange(ctx, "users", r, off-100, 100); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				total, items, err := s.KVRange(ctx, "users", r, off, 100)
				if err != nil || total != n || len(items) != 100 {
					b.Fatalf("range: %d, %d items, %v", total, len(items), err)
				}
			}
		})
	}
}
