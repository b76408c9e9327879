package sync_test

import (
	"context"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

// With a lease per target (Options.FenceFor), a replica plans and applies
// only the targets it holds, under each target's own fence; a replica
// without the sources' lease plans from the stored snapshots and writes
// none; a lease lost mid-way stops the target's calls.
func TestFenceForSharesTargets(t *testing.T) {
	ctx := context.Background()
	a, b := memtarget.New("a"), memtarget.New("b")
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(a, synctest.Common()), synctest.Spec(b, synctest.Common())}, synctest.Options{})
	lead, err := h.Store.AcquireLock(ctx, "leader", "r1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	la, err := h.Store.AcquireLock(ctx, "target:a", "r1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := h.Store.AcquireLock(ctx, "target:b", "r2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	holds := func(ls ...state.Lease) func(string) (state.Fence, bool) {
		return func(tg string) (state.Fence, bool) {
			for _, l := range ls {
				if l.Name == "target:"+tg {
					return l.Fence(), true
				}
			}
			return state.Fence{Lock: "target:" + tg, Token: -1}, false
		}
	}
	leading := true
	r1 := h.NewEngine(func(o *dsync.Options) {
		o.Fence, o.Leading, o.FenceFor = lead.Fence, func() bool { return leading }, holds(la)
	})
	r2 := h.NewEngine(func(o *dsync.Options) {
		o.Fence, o.Leading, o.FenceFor = func() state.Fence { return state.Fence{Lock: "leader", Token: -1} }, func() bool { return false }, holds(lb)
	})
	h.Source.Set(people(5)...)
	// r2 first: no stored snapshot yet, and it does not pull.
	if _, err := r2.Run(ctx, dsync.RunOptions{}); err == nil {
		t.Fatal("a replica without the sources' lease ran before any snapshot was stored")
	}
	if len(b.Calls()) != 0 || h.Source.Pulls() != 0 {
		t.Fatalf("r2 pulled (%d) or called b (%d)", h.Source.Pulls(), len(b.Calls()))
	}
	if _, err := r1.Run(ctx, dsync.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(a.Calls()) == 0 || len(b.Calls()) != 0 {
		t.Fatalf("r1 holds a only: calls a=%d b=%d", len(a.Calls()), len(b.Calls()))
	}
	pulls := h.Source.Pulls()
	if _, err := r2.Run(ctx, dsync.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if h.Source.Pulls() != pulls {
		t.Fatal("r2 pulled the source: only the sources' holder does")
	}
	if got, _ := h.Store.Accounts(ctx, "b"); len(got) != 5 || len(b.Calls()) == 0 {
		t.Fatalf("r2 applied b from the stored snapshot: %d accounts, %d calls", len(got), len(b.Calls()))
	}
	// Its lease lost, r1 sends nothing to a (the sources are still its).
	ps := people(6)
	ps[0].Active = false
	h.Source.Set(ps...)
	before := len(a.Calls())
	r1lost := h.NewEngine(func(o *dsync.Options) {
		o.Fence, o.Leading, o.FenceFor = lead.Fence, func() bool { return leading }, holds()
	})
	if _, err := r1lost.Run(ctx, dsync.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(a.Calls()) != before {
		t.Fatalf("a replica holding no target called a: %d calls", len(a.Calls())-before)
	}
}
