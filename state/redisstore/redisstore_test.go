package redisstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/dirsync/dirsync/config"
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
