package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/redisstore"
	"github.com/dirsync/dirsync/state/statetest"
)

func newStore(t testing.TB, srv *redissrv.Server, prefix string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(config.Redis{Addrs: []string{srv.Addr()}, KeyPrefix: prefix, Password: config.NewSecret(srv.Password())}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{})
	var n atomic.Int64
	statetest.Run(t, func(t *testing.T) state.Store {
		// One server; every store gets its own key prefix.
		return newStore(t, srv, fmt.Sprintf("t%d:", n.Add(1)), redisstore.Options{JournalSize: statetest.JournalSize})
	})
}

// TestRestart checks a Store keeps working across a server restart (the
// client reconnects, scripts are reloaded), that Ping fails while the server
// is down, and that data and issued tokens survive with the AOF on.
func TestRestart(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{AppendOnly: true, Args: []string{"--appendfsync", "always"}})
	s := newStore(t, srv, "r:", redisstore.Options{JournalSize: 10})
	ctx := context.Background()

	l1, err := s.AcquireLock(ctx, "leader", "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccount(ctx, l1.Fence(), "t", identity.Account{Key: "k1", Username: "jo"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendDecisions(ctx, []state.Decision{{User: "jo"}}); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	down, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Ping(down); err == nil {
		t.Fatal("ping succeeded while the server is down")
	}
	t.Logf("ping failed after %v", time.Since(start))
	if err := s.PutAccount(down, l1.Fence(), "t", identity.Account{Key: "k2"}); err == nil {
		t.Fatal("write succeeded while the server is down")
	}

	srv.Restart()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	accts, err := s.Accounts(ctx, "t")
	if err != nil || len(accts) != 1 || accts["k1"].Username != "jo" {
		t.Fatalf("accounts after restart: %v %v", accts, err)
	}
	// The lease survived (AOF); the fenced script is reloaded on demand.
	if err := s.PutAccount(ctx, l1.Fence(), "t", identity.Account{Key: "k3"}); err != nil {
		t.Fatalf("fenced write after restart: %v", err)
	}
	if _, err := s.AcquireLock(ctx, "leader", "B", time.Minute); !errors.Is(err, state.ErrLockHeld) {
		t.Fatalf("lock after restart: %v", err)
	}
	if err := s.AppendDecisions(ctx, []state.Decision{{User: "al"}}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Decisions(ctx, state.DecisionQuery{})
	if err != nil || len(ds) != 2 || ds[1].Seq != 2 {
		t.Fatalf("journal after restart: %+v %v", ds, err)
	}
}

// TestDataLossKeepsFencing checks that when Redis loses everything (restart
// without persistence), an old leader's token never becomes current again.
func TestDataLossKeepsFencing(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{})
	s := newStore(t, srv, "d:", redisstore.Options{})
	ctx := context.Background()
	old, err := s.AcquireLock(ctx, "leader", "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	srv.Restart() // all data gone
	var last int64
	for i := range 5 {
		l, err := s.AcquireLock(ctx, "leader", fmt.Sprintf("B%d", i), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if l.Token <= old.Token || l.Token <= last {
			t.Fatalf("token %d after data loss, old %d, previous %d", l.Token, old.Token, last)
		}
		last = l.Token
		if err := s.PutAccount(ctx, old.Fence(), "t", identity.Account{Key: "k"}); !errors.Is(err, state.ErrStaleFence) {
			t.Fatalf("old fence accepted after data loss: %v", err)
		}
		if err := s.ReleaseLock(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyLayout checks every key is under the prefix and fenced keys share
// one hash tag (Cluster).
func TestKeyLayout(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{})
	s := newStore(t, srv, "app1:", redisstore.Options{})
	other := newStore(t, srv, "app2:", redisstore.Options{})
	ctx := context.Background()
	l, err := s.AcquireLock(ctx, "leader", "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	f := l.Fence()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.PutAccount(ctx, f, "netmaker", identity.Account{Key: "k"}))
	must(s.PutHeld(ctx, f, "run-1", []byte("{}")))
	must(s.PutSnapshot(ctx, f, &identity.Snapshot{Source: "ad"}))
	must(s.PutLinks(ctx, f, map[string]string{"ad:k": "k"}))
	must(s.PutCursor(ctx, "ad", []byte("1")))
	must(s.PutRun(ctx, state.Run{ID: "run-1"}))
	must(s.AppendDecisions(ctx, []state.Decision{{User: "u"}}))
	_, err = s.KVPut(ctx, "users", "u1", []byte("x"), 0)
	must(err)

	keys, err := s.Client().Keys(ctx, "*").Result()
	must(err)
	sort.Strings(keys)
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "dirsync-registry:endpoints" }) // shared by design
	want := []string{
		"app1:cursor:ad", "app1:kv:users",
		"app1:{fenced}:acct:netmaker", "app1:{fenced}:held", "app1:{fenced}:links", "app1:{fenced}:lock:leader", "app1:{fenced}:snaps", "app1:{fenced}:tokens",
		"app1:{journal}:log", "app1:{journal}:seq", "app1:{runs}:data", "app1:{runs}:idx",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys:\n got  %q\n want %q", keys, want)
	}
	// The other prefix sees nothing and is not fenced by app1's lock.
	if a, _ := other.Accounts(ctx, "netmaker"); len(a) != 0 {
		t.Fatalf("prefix leak: %v", a)
	}
	must(other.PutAccount(ctx, state.Fence{}, "netmaker", identity.Account{Key: "k"}))
}

// TestClusterConformance runs the suite against a 3-master Redis Cluster
// (UniversalClient picks the cluster client for 2+ addresses): every script
// and transaction must keep its keys in one slot.
func TestClusterConformance(t *testing.T) {
	c := redissrv.StartCluster(t, 3)
	var n atomic.Int64
	statetest.Run(t, func(t *testing.T) state.Store {
		s, err := redisstore.New(config.Redis{Addrs: c.Addrs(), KeyPrefix: fmt.Sprintf("c%d:", n.Add(1))},
			redisstore.Options{JournalSize: statetest.JournalSize})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if _, ok := s.Client().(*redis.ClusterClient); !ok {
			t.Fatalf("client is %T, want a cluster client", s.Client())
		}
		return s
	})
}

// TestSentinel reaches the master through a Sentinel when master_name is set.
func TestSentinel(t *testing.T) {
	m := redissrv.Start(t, redissrv.Options{Password: "sentinel-pw"})
	sen := redissrv.StartSentinel(t, m, "mymaster")
	s, err := redisstore.New(config.Redis{
		Addrs: []string{sen.Addr()}, MasterName: "mymaster", Password: config.NewSecret("sentinel-pw"), KeyPrefix: "s:",
	}, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLock(ctx, "leader", "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccount(ctx, l.Fence(), "t", identity.Account{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	// The data is on the master.
	if r, err := m.Do("HEXISTS", "s:{fenced}:acct:t", "k"); err != nil || r != ":1" {
		t.Fatalf("master: %q %v", r, err)
	}
}

// TestTLS connects over TLS, trusting the CA from tls.ca_file, and fails
// without it.
func TestTLS(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{TLS: true})
	ctx := context.Background()
	cfg := config.Redis{Addrs: []string{srv.Addr()}, KeyPrefix: "tls:",
		TLS: config.TLS{Enabled: true, CAFile: srv.TLS().CAFile, ServerName: "localhost"}}
	s, err := redisstore.New(cfg, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("ping over tls: %v", err)
	}
	if err := s.PutCursor(ctx, "c", []byte("v")); err != nil {
		t.Fatal(err)
	}

	cfg.TLS.CAFile = ""
	untrusted, err := redisstore.New(cfg, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = untrusted.Close() })
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := untrusted.Ping(pctx); err == nil {
		t.Fatal("ping succeeded without trusting the CA")
	}

	cfg.TLS.CAFile = srv.TLS().CertFile + ".missing"
	if _, err := redisstore.New(cfg, redisstore.Options{}); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("missing ca file: %v", err)
	}
}

// TestEndpointRegistrySeesOtherPrefixes: two deployments on one Redis with
// different key prefixes see each other's claims on an application
// endpoint (two writers to one application); a claim lapses after its ttl.
func TestEndpointRegistrySeesOtherPrefixes(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{})
	now := time.Now()
	clock := func() time.Time { return now }
	a := newStore(t, srv, "a:", redisstore.Options{Now: clock})
	b := newStore(t, srv, "b:", redisstore.Options{Now: clock})
	ctx := context.Background()
	if err := a.ClaimEndpoints(ctx, map[string]string{"netmaker https://nm": "vpn"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.ClaimEndpoints(ctx, map[string]string{"netmaker https://nm": "netmaker", "scim https://x": "x"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	claims, err := a.EndpointClaims(ctx)
	if err != nil {
		t.Fatal(err)
	}
	others := state.OtherWriters(claims, a.Deployment(), map[string]string{"netmaker https://nm": "vpn"})
	if len(others) != 1 || others[0].Deployment != "b:" || others[0].Target != "netmaker" {
		t.Fatalf("other writers %+v (claims %+v)", others, claims)
	}
	now = now.Add(2 * time.Minute)
	if claims, _ := a.EndpointClaims(ctx); len(claims) != 0 {
		t.Fatalf("lapsed claims still listed: %+v", claims)
	}
}
