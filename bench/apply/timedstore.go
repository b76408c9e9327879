package main

import (
	"context"
	stdsync "sync"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
)

// timedStore counts the state writes the engine makes during the apply and
// the time they take, so the results show what the state backend costs.
type timedStore struct {
	state.Store

	mu     stdsync.Mutex
	writes int
	total  time.Duration
}

func (s *timedStore) observe(start time.Time) {
	d := time.Since(start)
	s.mu.Lock()
	s.writes++
	s.total += d
	s.mu.Unlock()
}

// take returns the writes and their total time since the last take.
func (s *timedStore) take() (int, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, t := s.writes, s.total
	s.writes, s.total = 0, 0
	return n, t
}

func (s *timedStore) PutAccount(ctx context.Context, f state.Fence, target string, a identity.Account) error {
	defer s.observe(time.Now())
	return s.Store.PutAccount(ctx, f, target, a)
}

func (s *timedStore) AppendDecisions(ctx context.Context, ds []state.Decision) error {
	defer s.observe(time.Now())
	return s.Store.AppendDecisions(ctx, ds)
}

func (s *timedStore) PutRun(ctx context.Context, r state.Run) error {
	defer s.observe(time.Now())
	return s.Store.PutRun(ctx, r)
}

func (s *timedStore) PutSnapshot(ctx context.Context, f state.Fence, snap *identity.Snapshot) error {
	defer s.observe(time.Now())
	return s.Store.PutSnapshot(ctx, f, snap)
}
