package memtarget_test

import (
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/connector/targettest"
	"github.com/dirsync/dirsync/identity"
)

func TestConformance(t *testing.T) {
	var cur *memtarget.Target
	targettest.Run(t, targettest.Harness{
		New: func(t *testing.T) connector.Connector { cur = memtarget.New("mem"); return cur },
		Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
			return cur.Get(a.Key)
		},
		Groups: []string{"a", "b"},
	})
}
