package bolt_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/bolt"
	"github.com/dirsync/dirsync/state/statetest"
)

func open(t testing.TB, path string, opts bolt.Options) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		return open(t, filepath.Join(t.TempDir(), "state.db"), bolt.Options{JournalSize: statetest.JournalSize})
	})
}

// TestReopen checks data and issued tokens survive a reopen: the lock is
// free again (it is process-local), but new tokens are higher and old
// fences stay stale.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "state.db")
	s, err := bolt.Open(path, bolt.Options{JournalSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	l1, err := s.AcquireLock(ctx, "leader", "A", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccount(ctx, l1.Fence(), "t", identity.Account{Key: "k", Username: "jo"}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := s.AppendDecisions(ctx, []state.Decision{{User: "u", Reason: string(rune('a' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.KVPut(ctx, "users", "u1", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, bolt.Options{JournalSize: 4})
	l2, err := s.AcquireLock(ctx, "leader", "B", time.Hour)
	if err != nil {
		t.Fatalf("lock after reopen: %v", err)
	}
	if l2.Token <= l1.Token {
		t.Fatalf("token after reopen %d, want > %d", l2.Token, l1.Token)
	}
	if err := s.PutAccount(ctx, l1.Fence(), "t", identity.Account{Key: "k"}); !errors.Is(err, state.ErrStaleFence) {
		t.Fatalf("old fence after reopen: %v", err)
	}
	if err := s.PutAccount(ctx, state.Fence{}, "t", identity.Account{Key: "k"}); !errors.Is(err, state.ErrStaleFence) {
		t.Fatalf("zero fence after reopen: %v", err)
	}
	accts, err := s.Accounts(ctx, "t")
	if err != nil || accts["k"].Username != "jo" {
		t.Fatalf("accounts after reopen: %v, %v", accts, err)
	}
	ds, err := s.Decisions(ctx, state.DecisionQuery{})
	if err != nil || len(ds) != 4 || ds[0].Reason != "c" || ds[3].Seq != 6 {
		t.Fatalf("journal after reopen: %+v, %v", ds, err)
	}
	if err := s.AppendDecisions(ctx, []state.Decision{{Reason: "g"}}); err != nil {
		t.Fatal(err)
	}
	ds, _ = s.Decisions(ctx, state.DecisionQuery{Limit: 1})
	if len(ds) != 1 || ds[0].Seq != 7 {
		t.Fatalf("seq after reopen: %+v", ds)
	}
	if v, ver, err := s.KVGet(ctx, "users", "u1"); err != nil || string(v) != "v" || ver != 1 {
		t.Fatalf("kv after reopen: %q %d %v", v, ver, err)
	}
}

// TestJournalShrinks checks a smaller journal size takes effect at the next append.
func TestJournalShrinks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := bolt.Open(path, bolt.Options{JournalSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	ds := make([]state.Decision, 10)
	if err := s.AppendDecisions(ctx, ds); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, bolt.Options{JournalSize: 3})
	if err := s.AppendDecisions(ctx, ds[:1]); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Decisions(ctx, state.DecisionQuery{})
	if len(got) != 3 || got[0].Seq != 9 {
		t.Fatalf("journal: %+v", got)
	}
}

// TestSecondOpenFails checks a second opener of the same file gives up with
// a clear error instead of hanging.
func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	open(t, path, bolt.Options{})
	_, err := bolt.Open(path, bolt.Options{OpenTimeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("second open succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error does not explain: %v", err)
	}
}

func TestClosed(t *testing.T) {
	s, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("ping on a closed store succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestBadPath(t *testing.T) {
	dir := t.TempDir()
	if _, err := bolt.Open(dir, bolt.Options{}); err == nil || !strings.HasPrefix(err.Error(), "bolt: open ") {
		t.Fatalf("open a directory: %v", err)
	}
}
