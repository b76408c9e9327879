package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

const leaderLock = "leader"

// errDaemonLeads: a one-shot command found the leader lock held.
var errDaemonLeads = errors.New("another dirsync (a daemon?) holds the leader lock and is applying; stop it, or let it do the run")

func ownerID(kind string) string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%s-%d-%d", kind, h, os.Getpid(), time.Now().UnixNano()%1e6)
}

// leadOnce takes the leader lock for a one-shot command (sync, apply,
// approve), so it never applies alongside a running daemon, and keeps it
// renewed until release is called.
func (a *app) leadOnce(ctx context.Context) (release func(), err error) {
	ttl := a.cfg.State.LockTTL.D()
	l, err := a.store.AcquireLock(ctx, leaderLock, ownerID("cli"), ttl)
	if errors.Is(err, state.ErrLockHeld) {
		return nil, exitError{code: exitFailed, err: errDaemonLeads}
	}
	if err != nil {
		return nil, fmt.Errorf("leader lock: %w", err)
	}
	var cur atomic.Pointer[state.Lease]
	cur.Store(&l)
	a.fence = func() state.Fence { return cur.Load().Fence() }
	// With a lease per target, the command holds every target's too: no
	// daemon replica applies alongside it.
	targets := newLeaseSet()
	if perTarget(a.cfg) {
		for _, t := range a.targetNames() {
			tl, err := a.store.AcquireLock(ctx, targetLock(t), l.Owner, ttl)
			if err != nil {
				targets.releaseAll(a.store)
				_ = a.store.ReleaseLock(context.Background(), l)
				if errors.Is(err, state.ErrLockHeld) {
					return nil, exitError{code: exitFailed, err: errDaemonLeads}
				}
				return nil, fmt.Errorf("lease of target %s: %w", t, err)
			}
			targets.put(t, tl)
		}
		a.fenceFor = targets.fenceFor
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				nl, err := a.store.RenewLock(rctx, *cur.Load(), ttl)
				if err != nil {
					a.log.Warn("leader lock renewal failed", zap.Error(err))
					continue
				}
				cur.Store(&nl)
				targets.renew(rctx, a.store, ttl, a.log)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		targets.releaseAll(a.store)
		_ = a.store.ReleaseLock(context.Background(), *cur.Load())
	}, nil
}

// approver names the person running `dirsync approve` for the decisions:
// the login name, or "the CLI" when unknown.
func approver() string {
	for _, k := range []string{"SUDO_USER", "USER", "LOGNAME"} {
		if v := os.Getenv(k); v != "" {
			return v + " (CLI)"
		}
	}
	return "the CLI"
}
