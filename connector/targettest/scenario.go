package targettest

import (
	"maps"
	"slices"
	"testing"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// People is a scenario's directory: the users a test sets and edits,
// handed to the engine harness's source in key order.
type People map[string]identity.User

// Set adds or replaces us and hands everyone to h's source.
func (p People) Set(h *synctest.Harness, us ...identity.User) {
	for _, u := range us {
		p[u.Key] = u
	}
	all := make([]identity.User, 0, len(p))
	for _, k := range slices.Sorted(maps.Keys(p)) {
		all = append(all, p[k])
	}
	h.Source.Set(all...)
}

// Edit changes the user key with f and hands everyone to h's source.
func (p People) Edit(h *synctest.Harness, key string, f func(*identity.User)) {
	u := p[key]
	f(&u)
	p.Set(h, u)
}

// RunOK runs h once and returns the run's decisions; a failed decision
// fails t.
func RunOK(t testing.TB, h *synctest.Harness) []state.Decision {
	t.Helper()
	res := h.Run(dsync.RunOptions{Trigger: "test"})
	ds := h.DecisionsOf(res.RunID)
	for _, d := range ds {
		if d.Outcome == "failed" {
			t.Fatalf("failed decision: %+v", d)
		}
	}
	return ds
}
