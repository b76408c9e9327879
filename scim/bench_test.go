package scim

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/bolt"
	"github.com/dirsync/dirsync/state/memstore"
)

func memberPatch(op string, ids []string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"schemas":["` + urnPatchOp + `"],"Operations":[{"op":"` + op + `","path":"members","value":[`)
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"value":%q}`, id)
	}
	b.WriteString(`]}]}`)
	return b.Bytes()
}

// BenchmarkGroupPatch10k adds 10,000 members to a 50,000-member group and
// removes them again by value list (one op = both PATCHes). Before the
// value-keyed member set this was quadratic (8,000 members took 7 s).
func BenchmarkGroupPatch10k(b *testing.B) {
	b.Run("memstore", func(b *testing.B) { benchGroupPatch(b, memstore.New(memstore.Options{})) })
	b.Run("bolt", func(b *testing.B) {
		st, err := bolt.Open(filepath.Join(b.TempDir(), "state.db"), bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		benchGroupPatch(b, st)
	})
}

func benchGroupPatch(b *testing.B, st state.Store) {
	e := newEnv(b, envOpt{quiet: true, store: st})
	gid := e.createGroup("Staff")
	ids := make([]string, 60000)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	for i := 0; i < 50000; i += 10000 {
		e.must(http.StatusNoContent, e.do("PATCH", "/Groups/"+gid, memberPatch("add", ids[i:i+10000])))
	}
	add, del := memberPatch("add", ids[50000:]), memberPatch("remove", ids[50000:])
	b.ResetTimer()
	for range b.N {
		e.must(http.StatusNoContent, e.do("PATCH", "/Groups/"+gid, add))
		e.must(http.StatusNoContent, e.do("PATCH", "/Groups/"+gid, del))
	}
}
