package backends_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/internal/testenv"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/backends"
	"github.com/dirsync/dirsync/state/bolt"
	"github.com/dirsync/dirsync/state/redisstore"
)

const password = "s3cr3t-Pa55w0rd"

func logger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

// noLeak fails if the password shows in err or in any logged field.
func noLeak(t *testing.T, err error, logs *observer.ObservedLogs) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), password) {
		t.Fatalf("error leaks the password: %v", err)
	}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, password) {
			t.Fatalf("log leaks the password: %s", line)
		}
	}
}

func roundTrip(t *testing.T, s state.Store) {
	t.Helper()
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccount(ctx, state.Fence{}, "t", identity.Account{Key: "k"}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Accounts(ctx, "t"); err != nil || len(a) != 1 {
		t.Fatalf("accounts: %v %v", a, err)
	}
}

func TestEmbedded(t *testing.T) {
	log, logs := logger()
	path := filepath.Join(t.TempDir(), "state", "dirsync.db")
	s, err := backends.Open(context.Background(), config.State{Backend: "embedded", Path: path, JournalSize: 5}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*bolt.Store); !ok {
		t.Fatalf("embedded backend is %T", s)
	}
	roundTrip(t, s)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if logs.FilterMessage("state: embedded store opened").Len() != 1 {
		t.Fatalf("logs: %v", logs.All())
	}

	// The same file a second time: the error names state.path.
	_, err = backends.Open(context.Background(), config.State{Path: path}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "state.path: ") {
		t.Fatalf("second open: %v", err)
	}
}

func TestBadBackend(t *testing.T) {
	_, err := backends.Open(context.Background(), config.State{Backend: "etcd"}, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "state.backend: ") {
		t.Fatalf("unknown backend: %v", err)
	}
}

func TestRedis(t *testing.T) {
	srv := redissrv.Start(t, redissrv.Options{Password: password})
	ctx := context.Background()
	base := config.State{Backend: "redis", Redis: config.Redis{
		Addrs: []string{srv.Addr()}, Password: config.NewSecret(password), KeyPrefix: "bk:",
	}}

	t.Run("ok", func(t *testing.T) {
		log, logs := logger()
		s, err := backends.Open(ctx, base, log)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, ok := s.(*redisstore.Store); !ok {
			t.Fatalf("redis backend is %T", s)
		}
		roundTrip(t, s)
		if logs.FilterMessage("state: redis store opened").Len() != 1 {
			t.Fatalf("logs: %v", logs.All())
		}
		noLeak(t, nil, logs)
	})

	t.Run("wrong password", func(t *testing.T) {
		log, logs := logger()
		cfg := base
		cfg.Redis.Password = config.NewSecret(password + "-wrong")
		_, err := backends.Open(ctx, cfg, log)
		if err == nil || !strings.HasPrefix(err.Error(), "state.redis.password: ") {
			t.Fatalf("wrong password: %v", err)
		}
		t.Log(err)
		noLeak(t, err, logs)
	})

	t.Run("no password", func(t *testing.T) {
		cfg := base
		cfg.Redis.Password = config.Secret{}
		_, err := backends.Open(ctx, cfg, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "state.redis.password: ") {
			t.Fatalf("missing password: %v", err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		log, logs := logger()
		cfg := base
		cfg.Redis.Addrs = []string{fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
		_, err := backends.Open(ctx, cfg, log)
		if err == nil || !strings.HasPrefix(err.Error(), "state.redis.addrs: ") || !strings.Contains(err.Error(), cfg.Redis.Addrs[0]) {
			t.Fatalf("unreachable: %v", err)
		}
		t.Log(err)
		noLeak(t, err, logs)
	})

	t.Run("bad tls file", func(t *testing.T) {
		cfg := base
		cfg.Redis.TLS = config.TLS{Enabled: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")}
		_, err := backends.Open(ctx, cfg, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "state.redis.tls.ca_file: ") || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("bad ca file: %v", err)
		}
	})

	t.Run("no addrs", func(t *testing.T) {
		cfg := base
		cfg.Redis.Addrs = nil
		_, err := backends.Open(ctx, cfg, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "state.redis.addrs: ") {
			t.Fatalf("no addrs: %v", err)
		}
	})
}
