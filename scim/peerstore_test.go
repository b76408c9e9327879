package scim

import (
	"testing"

	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
)

// peerStore is the store the peer suites run on.
func peerStore(t *testing.T) state.Store {
	return memstore.New(memstore.Options{})
}
