package memtarget_test

import (
	"testing"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/memtarget"
	"github.com/dirsync/dirsync/target/targettest"
)

func TestConformance(t *testing.T) {
	var cur *memtarget.Target
	targettest.Run(t, targettest.Harness{
		New: func(t *testing.T) target.Target { cur = memtarget.New("mem"); return cur },
		Observe: func(t *testing.T, a identity.Account) (identity.Account, bool) {
			return cur.Get(a.Key)
		},
		Groups: []string{"a", "b"},
	})
}
