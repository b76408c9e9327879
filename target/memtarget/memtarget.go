// Package memtarget is an in-memory recording target that supports every
// action. Engine tests use it to assert on what was sent; a hook lets a test
// fail, delay or crash chosen calls.
package memtarget

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
)

// Call is one recorded call.
type Call struct {
	Action  target.Action
	Key     string
	Account identity.Account
	Time    time.Time
}

// Target is the in-memory target. The zero value is not usable: call New.
type Target struct {
	name string
	mu   sync.Mutex
	// Accounts is the application's state by Account.Key.
	accounts map[string]identity.Account
	calls    []Call
	// Hook, when set, runs before each call is applied; a non-nil error is
	// returned to the engine and the call is not applied.
	Hook func(action target.Action, a identity.Account) error
	// After, when set, runs after each call was applied; a non-nil error is
	// returned to the engine although the call landed (an answer lost on
	// the way back, a timeout after the application acted).
	After func(action target.Action, a identity.Account) error
	// GateFn, when set, is the target's Gate: a non-empty reason refuses
	// the action at plan time (a version gate, an account owned elsewhere).
	GateFn func(action target.Action, a identity.Account) string
	// NoList hides the Lister capability when true.
	NoList bool
	seq    int
	path   string
}

// New returns an empty target.
func New(name string) *Target {
	return &Target{name: name, accounts: map[string]identity.Account{}}
}

// Settings are the memory target's config keys.
type Settings struct {
	// Path, when set, keeps the accounts in this JSON file across
	// processes (CLI tests, demos); otherwise they live in memory only.
	Path string `yaml:"path"`
}

// Factory builds a Target from config (type "memory"), for demos and tests.
func Factory(cfg config.Target, _ target.Deps) (target.Target, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	t := New(cfg.Name)
	t.path = s.Path
	if s.Path != "" {
		b, err := os.ReadFile(s.Path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("memory: %w", err)
		default:
			if err := json.Unmarshal(b, &t.accounts); err != nil {
				return nil, fmt.Errorf("memory: %s: %w", s.Path, err)
			}
			if t.accounts == nil {
				t.accounts = map[string]identity.Account{}
			}
		}
	}
	return t, nil
}

// save writes the accounts to the file, if one is configured. Callers hold mu.
func (t *Target) save() error {
	if t.path == "" {
		return nil
	}
	b, err := json.Marshal(t.accounts)
	if err != nil {
		return err
	}
	tmp := t.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("memory: save: %w", err)
	}
	return os.Rename(tmp, t.path)
}

var (
	_ target.Creator              = (*Target)(nil)
	_ target.Updater              = (*Target)(nil)
	_ target.Suspender            = (*Target)(nil)
	_ target.ExpirySetter         = (*Target)(nil)
	_ target.PasswordChangeForcer = (*Target)(nil)
	_ target.RoleSetter           = (*Target)(nil)
	_ target.GroupSetter          = (*Target)(nil)
	_ target.Deleter              = (*Target)(nil)
	_ target.Lister               = (*Target)(nil)
	_ target.Reader               = (*Target)(nil)
	_ target.Gater                = (*Target)(nil)
)

// Gate implements target.Gater through GateFn.
func (t *Target) Gate(action target.Action, a identity.Account) string {
	t.mu.Lock()
	g := t.GateFn
	t.mu.Unlock()
	if g == nil {
		return ""
	}
	return g(action, a)
}

// Name implements target.Target.
func (t *Target) Name() string { return t.name }

// Type implements target.Target.
func (t *Target) Type() string { return "memory" }

func (t *Target) do(ctx context.Context, act target.Action, a *identity.Account, mutate func(cur *identity.Account)) error {
	if err := ctx.Err(); err != nil {
		return target.Retryable(err)
	}
	t.mu.Lock()
	hook, after := t.Hook, t.After
	t.mu.Unlock()
	if hook != nil {
		if err := hook(act, *a); err != nil {
			return err
		}
	}
	if err := t.apply(act, a, mutate); err != nil {
		return err
	}
	if after != nil {
		return after(act, a.Clone())
	}
	return nil
}

// apply changes the application's state for one call and records it.
func (t *Target) apply(act target.Action, a *identity.Account, mutate func(cur *identity.Account)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.accounts[a.Key]
	if act != target.ActCreate && !ok {
		return target.NotFound(fmt.Errorf("memory: %s %q: no such account", act, a.Username))
	}
	if act == target.ActCreate {
		if ok {
			return target.Permanent(fmt.Errorf("memory: create %q: already exists", a.Username))
		}
		t.seq++
		cur = a.Clone()
		cur.Exists = true
		cur.Remote = map[string]string{"id": fmt.Sprint(t.seq)}
		a.Remote = cur.Remote
	}
	mutate(&cur)
	t.calls = append(t.calls, Call{Action: act, Key: a.Key, Account: a.Clone(), Time: time.Now()})
	if act == target.ActDelete {
		delete(t.accounts, a.Key)
	} else {
		t.accounts[a.Key] = cur
	}
	return t.save()
}

// Create implements target.Creator.
func (t *Target) Create(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, target.ActCreate, a, func(*identity.Account) {})
}

// Update implements target.Updater.
func (t *Target) Update(ctx context.Context, _ identity.Account, a *identity.Account) error {
	return t.do(ctx, target.ActUpdate, a, func(c *identity.Account) {
		c.Username, c.Email, c.GivenName, c.FamilyName, c.DisplayName = a.Username, a.Email, a.GivenName, a.FamilyName, a.DisplayName
		c.Attributes = a.Clone().Attributes
	})
}

// Suspend implements target.Suspender.
func (t *Target) Suspend(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, target.ActSuspend, a, func(c *identity.Account) { c.Suspended = true })
}

// Unsuspend implements target.Suspender.
func (t *Target) Unsuspend(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, target.ActUnsuspend, a, func(c *identity.Account) { c.Suspended = false })
}

// SetExpiry implements target.ExpirySetter.
func (t *Target) SetExpiry(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, target.ActSetExpiry, a, func(c *identity.Account) { c.Expires = a.Clone().Expires })
}

// ForcePasswordChange implements target.PasswordChangeForcer.
func (t *Target) ForcePasswordChange(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, target.ActForcePasswordChange, a, func(c *identity.Account) { c.MustChangePassword = true })
}

// SetRole implements target.RoleSetter.
func (t *Target) SetRole(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, target.ActSetRole, a, func(c *identity.Account) { c.Role = a.Role })
}

// SetGroups implements target.GroupSetter.
func (t *Target) SetGroups(ctx context.Context, _ identity.Account, a *identity.Account) error {
	return t.do(ctx, target.ActSetGroups, a, func(c *identity.Account) { c.Groups = slices.Clone(a.Groups) })
}

// Delete implements target.Deleter.
func (t *Target) Delete(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, target.ActDelete, a, func(*identity.Account) {})
}

// List implements target.Lister.
func (t *Target) List(ctx context.Context) ([]identity.Account, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]identity.Account, 0, len(t.accounts))
	for _, a := range t.accounts {
		out = append(out, a.Clone())
	}
	return out, nil
}

// Read implements target.Reader.
func (t *Target) Read(ctx context.Context, a identity.Account) (identity.Account, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.accounts[a.Key]
	if !ok {
		return identity.Account{}, target.NotFound(fmt.Errorf("memory: read %q: no such account", a.Username))
	}
	return cur.Clone(), nil
}

// Seed puts an account straight into the application's state, as if it had
// existed before dirsync.
func (t *Target) Seed(a identity.Account) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a.Exists = true
	t.accounts[a.Key] = a.Clone()
}

// Get returns the application's view of an account.
func (t *Target) Get(key string) (identity.Account, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.accounts[key]
	return a.Clone(), ok
}

// Calls returns a copy of every recorded call.
func (t *Target) Calls() []Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.calls)
}

// CallsFor returns the actions recorded for one account key, in order.
func (t *Target) CallsFor(key string) []target.Action {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []target.Action
	for _, c := range t.calls {
		if c.Key == key {
			out = append(out, c.Action)
		}
	}
	return out
}

// Reset forgets the recorded calls (not the accounts).
func (t *Target) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls = nil
}

// WriteOnly is a view of a Target that can change accounts but neither
// create, delete, list nor read them, as Ezeelogin's API: the engine must
// rely on its cache alone. Accounts the application has are Seeded into the
// underlying Target.
type WriteOnly struct{ t *Target }

// NewWriteOnly returns the write-only view of t.
func NewWriteOnly(t *Target) *WriteOnly { return &WriteOnly{t: t} }

var (
	_ target.Updater              = (*WriteOnly)(nil)
	_ target.Suspender            = (*WriteOnly)(nil)
	_ target.ExpirySetter         = (*WriteOnly)(nil)
	_ target.PasswordChangeForcer = (*WriteOnly)(nil)
	_ target.RoleSetter           = (*WriteOnly)(nil)
	_ target.GroupSetter          = (*WriteOnly)(nil)
	_ target.Gater                = (*WriteOnly)(nil)
)

// Name implements target.Target.
func (w *WriteOnly) Name() string { return w.t.Name() }

// Type implements target.Target.
func (w *WriteOnly) Type() string { return "memory-write-only" }

// Update implements target.Updater.
func (w *WriteOnly) Update(ctx context.Context, before identity.Account, a *identity.Account) error {
	return w.t.Update(ctx, before, a)
}

// Suspend implements target.Suspender.
func (w *WriteOnly) Suspend(ctx context.Context, a *identity.Account) error {
	return w.t.Suspend(ctx, a)
}

// Unsuspend implements target.Suspender.
func (w *WriteOnly) Unsuspend(ctx context.Context, a *identity.Account) error {
	return w.t.Unsuspend(ctx, a)
}

// SetExpiry implements target.ExpirySetter.
func (w *WriteOnly) SetExpiry(ctx context.Context, a *identity.Account) error {
	return w.t.SetExpiry(ctx, a)
}

// ForcePasswordChange implements target.PasswordChangeForcer.
func (w *WriteOnly) ForcePasswordChange(ctx context.Context, a *identity.Account) error {
	return w.t.ForcePasswordChange(ctx, a)
}

// SetRole implements target.RoleSetter.
func (w *WriteOnly) SetRole(ctx context.Context, a *identity.Account) error {
	return w.t.SetRole(ctx, a)
}

// SetGroups implements target.GroupSetter.
func (w *WriteOnly) SetGroups(ctx context.Context, before identity.Account, a *identity.Account) error {
	return w.t.SetGroups(ctx, before, a)
}

// Gate implements target.Gater.
func (w *WriteOnly) Gate(action target.Action, a identity.Account) string { return w.t.Gate(action, a) }

// LiveFields implements target.LiveFielder: List reports every field.
func (t *Target) LiveFields() []string {
	return []string{identity.FieldSuspended, identity.FieldRole, identity.FieldGroups, identity.FieldExpires, identity.FieldProfile}
}

// Edit changes an account in the application out of band, as an
// administrator would by hand; it reports whether the account exists.
func (t *Target) Edit(key string, change func(*identity.Account)) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.accounts[key]
	if !ok {
		return false
	}
	change(&a)
	t.accounts[key] = a
	return true
}

// Remove deletes an account out of band.
func (t *Target) Remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.accounts, key)
}
