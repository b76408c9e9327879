package scim

import (
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/redisstore"
)

// peerStore is the store the peer suites run on: a real redis-server on a
// loopback port (skipped, or failed under DIRSYNC_INTEGRATION=1, when
// redis-server is missing).
func peerStore(t *testing.T) state.Store {
	t.Helper()
	srv := redissrv.Start(t, redissrv.Options{AppendOnly: true})
	st, err := redisstore.New(config.Redis{Addrs: []string{srv.Addr()}, KeyPrefix: "dirsync:"}, redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}
