package synctest

import (
	"context"
	"fmt"
	stdsync "sync"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
)

// Op names a store operation a FaultStore can interfere with.
type Op string

// The operations a FaultStore passes through its hook.
const (
	OpPutSnapshot   Op = "put_snapshot"
	OpGetSnapshot   Op = "get_snapshot"
	OpAccounts      Op = "accounts"
	OpPutAccount    Op = "put_account"
	OpDeleteAccount Op = "delete_account"
	OpPutHeld       Op = "put_held"
	OpGetHeld       Op = "get_held"
	OpDeleteHeld    Op = "delete_held"
	OpPutRun        Op = "put_run"
)

// FaultStore wraps a store so a test can fail, or act at, chosen operations:
// a store that becomes unreachable, a process that dies between two writes,
// another replica that writes in between. Operations it does not list pass
// straight through.
type FaultStore struct {
	state.Store

	mu   stdsync.Mutex
	hook func(op Op, detail string) error
}

// NewFaultStore wraps s with no hook.
func NewFaultStore(s state.Store) *FaultStore { return &FaultStore{Store: s} }

// SetHook sets the function run before each listed operation; detail is the
// source, target/key or run id concerned. A non-nil error is returned in
// place of the operation, which is then not performed. nil removes it.
func (f *FaultStore) SetHook(h func(op Op, detail string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook = h
}

func (f *FaultStore) before(op Op, detail string) error {
	f.mu.Lock()
	h := f.hook
	f.mu.Unlock()
	if h == nil {
		return nil
	}
	if err := h(op, detail); err != nil {
		return fmt.Errorf("faultstore: %s %s: %w", op, detail, err)
	}
	return nil
}

// PutSnapshot implements state.Store.
func (f *FaultStore) PutSnapshot(ctx context.Context, fence state.Fence, snap *identity.Snapshot) error {
	if err := f.before(OpPutSnapshot, snap.Source); err != nil {
		return err
	}
	return f.Store.PutSnapshot(ctx, fence, snap)
}

// PutLinks implements state.Store.
func (f *FaultStore) PutLinks(ctx context.Context, fence state.Fence, links map[string]string) error {
	if err := f.before(OpPutSnapshot, "links"); err != nil {
		return err
	}
	return f.Store.PutLinks(ctx, fence, links)
}

// GetSnapshot implements state.Store.
func (f *FaultStore) GetSnapshot(ctx context.Context, source string) (*identity.Snapshot, error) {
	if err := f.before(OpGetSnapshot, source); err != nil {
		return nil, err
	}
	return f.Store.GetSnapshot(ctx, source)
}

// Accounts implements state.Store.
func (f *FaultStore) Accounts(ctx context.Context, target string) (map[string]identity.Account, error) {
	if err := f.before(OpAccounts, target); err != nil {
		return nil, err
	}
	return f.Store.Accounts(ctx, target)
}

// PutAccount implements state.Store.
func (f *FaultStore) PutAccount(ctx context.Context, fe state.Fence, target string, a identity.Account) error {
	if err := f.before(OpPutAccount, target+"/"+a.Key); err != nil {
		return err
	}
	return f.Store.PutAccount(ctx, fe, target, a)
}

// DeleteAccount implements state.Store.
func (f *FaultStore) DeleteAccount(ctx context.Context, fe state.Fence, target, key string) error {
	if err := f.before(OpDeleteAccount, target+"/"+key); err != nil {
		return err
	}
	return f.Store.DeleteAccount(ctx, fe, target, key)
}

// PutHeld implements state.Store.
func (f *FaultStore) PutHeld(ctx context.Context, fe state.Fence, runID string, plan []byte) error {
	if err := f.before(OpPutHeld, runID); err != nil {
		return err
	}
	return f.Store.PutHeld(ctx, fe, runID, plan)
}

// GetHeld implements state.Store.
func (f *FaultStore) GetHeld(ctx context.Context, runID string) ([]byte, error) {
	if err := f.before(OpGetHeld, runID); err != nil {
		return nil, err
	}
	return f.Store.GetHeld(ctx, runID)
}

// DeleteHeld implements state.Store.
func (f *FaultStore) DeleteHeld(ctx context.Context, fe state.Fence, runID string) error {
	if err := f.before(OpDeleteHeld, runID); err != nil {
		return err
	}
	return f.Store.DeleteHeld(ctx, fe, runID)
}

// PutRun implements state.Store.
func (f *FaultStore) PutRun(ctx context.Context, r state.Run) error {
	if err := f.before(OpPutRun, r.ID); err != nil {
		return err
	}
	return f.Store.PutRun(ctx, r)
}
