package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/redisstore"
	"github.com/redis/go-redis/v9"
)

// TestPerTargetLayout checks the per-target layout on a real Redis Cluster:
// each target's lease, accounts and held plans sit under the target's own
// hash tag (different slots for different targets), a target's writes are
// fenced by its own lease only (the leader's and a stale one's are
// refused), held plans are found across targets, and the first holder of a
// target's lease copies the accounts written in the one-lease layout.
func TestPerTargetLayout(t *testing.T) {
	c := redissrv.StartCluster(t, 3)
	open := func(perTarget bool) *redisstore.Store {
		s, err := redisstore.New(config.Redis{Addrs: c.Addrs(), KeyPrefix: "p:"}, redisstore.Options{PerTarget: perTarget})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Written in the one-lease layout first.
	old := open(false)
	ll, err := old.AcquireLock(ctx, "leader", "A", time.Minute)
	must(err)
	for _, k := range []string{"k1", "k2", "k3"} {
		must(old.PutAccount(ctx, ll.Fence(), "vpn", identity.Account{Key: k, Username: k}))
	}

	s := open(true)
	vpn, err := s.AcquireLock(ctx, "target:vpn", "A", time.Minute)
	must(err)
	ssh, err := s.AcquireLock(ctx, "target:ssh", "B", time.Minute)
	must(err)
	got, err := s.Accounts(ctx, "vpn")
	must(err)
	if len(got) != 3 || got["k2"].Username != "k2" {
		t.Fatalf("accounts after the switch to per-target keys: %v", got)
	}
	must(s.PutAccount(ctx, vpn.Fence(), "vpn", identity.Account{Key: "k4"}))
	must(s.PutAccount(ctx, ssh.Fence(), "ssh", identity.Account{Key: "s1"}))
	if err := s.PutAccount(ctx, ssh.Fence(), "vpn", identity.Account{Key: "x"}); !errors.Is(err, state.ErrStaleFence) {
		t.Fatalf("another target's lease wrote vpn: %v", err)
	}
	if err := s.PutAccount(ctx, ll.Fence(), "vpn", identity.Account{Key: "x"}); !errors.Is(err, state.ErrStaleFence) {
		t.Fatalf("the leader lease wrote vpn in the per-target layout: %v", err)
	}
	// A new holder: the old lease's writes are refused; no second copy.
	must(s.ReleaseLock(ctx, vpn))
	vpn2, err := s.AcquireLock(ctx, "target:vpn", "C", time.Minute)
	must(err)
	if err := s.PutAccount(ctx, vpn.Fence(), "vpn", identity.Account{Key: "x"}); !errors.Is(err, state.ErrStaleFence) {
		t.Fatalf("stale target lease accepted: %v", err)
	}
	must(s.DeleteAccount(ctx, vpn2.Fence(), "vpn", "k1"))
	got, err = s.Accounts(ctx, "vpn")
	must(err)
	if len(got) != 3 || got["k1"].Key != "" || got["k4"].Key != "k4" {
		t.Fatalf("accounts: %v", got)
	}
	// Held plans per target, listed together.
	must(s.PutHeld(ctx, vpn2.Fence(), "r1/vpn", []byte("v")))
	must(s.PutHeld(ctx, ssh.Fence(), "r1/ssh", []byte("s")))
	must(s.PutHeld(ctx, ll.Fence(), "r1/sources", []byte("src")))
	ids, err := s.HeldRuns(ctx)
	must(err)
	if !slices.Equal(ids, []string{"r1/sources", "r1/ssh", "r1/vpn"}) {
		t.Fatalf("held runs: %v", ids)
	}
	if b, err := s.GetHeld(ctx, "r1/ssh"); err != nil || string(b) != "s" {
		t.Fatalf("held r1/ssh: %q %v", b, err)
	}
	must(s.DeleteHeld(ctx, ssh.Fence(), "r1/ssh"))
	if _, err := s.GetHeld(ctx, "r1/ssh"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleted held plan: %v", err)
	}
	// Different targets, different slots.
	cc := s.Client().(*redis.ClusterClient)
	slot := func(key string) int64 {
		n, err := cc.ClusterKeySlot(ctx, key).Result()
		must(err)
		return n
	}
	if slot("p:{target:vpn}:acct") == slot("p:{target:ssh}:acct") || slot("p:{target:vpn}:acct") != slot("p:{target:vpn}:tokens") {
		t.Fatal("targets share a slot, or a target's keys are split")
	}
	for _, k := range []string{"p:{target:vpn}:acct", "p:{target:vpn}:tokens", "p:{target:vpn}:lock", "p:{target:vpn}:held", "p:{target:vpn}:migrated"} {
		if n, _ := cc.Exists(ctx, k).Result(); n != 1 {
			t.Errorf("key %s missing", k)
		}
	}
}
