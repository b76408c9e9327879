package memstore_test

import (
	"context"
	"errors"
	"time"

	"testing"

	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
	"github.com/dirsync/dirsync/state/statetest"
)

func TestConformance(t *testing.T) {
	statetest.Run(t, func(t *testing.T) state.Store {
		s := memstore.New(memstore.Options{JournalSize: statetest.JournalSize})
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestInjectedClock shows lock expiry follows Options.Now, without sleeping.
func TestInjectedClock(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := memstore.New(memstore.Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	a, err := s.AcquireLock(ctx, "leader", "A", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Expires.Equal(now.Add(time.Minute)) {
		t.Fatalf("expires %v", a.Expires)
	}
	now = now.Add(59 * time.Second)
	if _, err := s.AcquireLock(ctx, "leader", "B", time.Minute); !errors.Is(err, state.ErrLockHeld) {
		t.Fatalf("before expiry: %v", err)
	}
	now = now.Add(time.Second)
	b, err := s.AcquireLock(ctx, "leader", "B", time.Minute)
	if err != nil || b.Token != a.Token+1 {
		t.Fatalf("after expiry: %+v, %v", b, err)
	}
}

func TestClosed(t *testing.T) {
	s := memstore.New(memstore.Options{})
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
