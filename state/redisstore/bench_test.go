package redisstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/redisstore"
	"github.com/dirsync/dirsync/state/statetest"
)

// BenchmarkPutAccount is one fenced script call per account, as the engine
// writes after each confirmed action.
func BenchmarkPutAccount(b *testing.B) {
	srv := redissrv.Start(b, redissrv.Options{})
	s := newStore(b, srv, "b:", redisstore.Options{})
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

// BenchmarkPutAccountParallel writes from several goroutines.
func BenchmarkPutAccountParallel(b *testing.B) {
	srv := redissrv.Start(b, redissrv.Options{})
	s := newStore(b, srv, "b:", redisstore.Options{})
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

// BenchmarkAccounts100k loads a target of 100,000 cached accounts (one HGETALL).
func BenchmarkAccounts100k(b *testing.B) {
	const n = 100000
	srv := redissrv.Start(b, redissrv.Options{})
	s := newStore(b, srv, "b:", redisstore.Options{})
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
