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
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
)

// Call is one recorded call.
type Call struct {
	Action  connector.Action
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
	Hook func(action connector.Action, a identity.Account) error
	// After, when set, runs after each call was applied; a non-nil error is
	// returned to the engine although the call landed (an answer lost on
	// the way back, a timeout after the application acted).
	After func(action connector.Action, a identity.Account) error
	// ReadHook, when set, runs before each List ("list") and Read ("read")
	// the engine makes; a non-nil error is returned instead of the answer.
	ReadHook func(op string) error
	// GateFn, when set, is the target's Gate: a non-empty reason refuses
	// the action at plan time (a version gate, an account owned elsewhere).
	GateFn func(action connector.Action, a identity.Account) string
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
func Factory(cfg config.Target, _ connector.Deps) (connector.Connector, error) {
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
	_ connector.Creator              = (*Target)(nil)
	_ connector.Updater              = (*Target)(nil)
	_ connector.Suspender            = (*Target)(nil)
	_ connector.ExpirySetter         = (*Target)(nil)
	_ connector.PasswordChangeForcer = (*Target)(nil)
	_ connector.RoleSetter           = (*Target)(nil)
	_ connector.GroupSetter          = (*Target)(nil)
	_ connector.Deleter              = (*Target)(nil)
	_ connector.Lister               = (*Target)(nil)
	_ connector.Reader               = (*Target)(nil)
	_ connector.Gater                = (*Target)(nil)
)

// Gate implements connector.Gater through GateFn.
func (t *Target) Gate(action connector.Action, a identity.Account) string {
	t.mu.Lock()
	g := t.GateFn
	t.mu.Unlock()
	if g == nil {
		return ""
	}
	return g(action, a)
}

// Name implements connector.Connector.
func (t *Target) Name() string { return t.name }

// Type implements connector.Connector.
func (t *Target) Type() string { return "memory" }

func (t *Target) do(ctx context.Context, act connector.Action, a *identity.Account, mutate func(cur *identity.Account)) error {
	if err := ctx.Err(); err != nil {
		return connector.Retryable(err)
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
func (t *Target) apply(act connector.Action, a *identity.Account, mutate func(cur *identity.Account)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := t.keyOf(*a)
	cur, ok := t.accounts[key]
	if act != connector.ActCreate && !ok {
		return connector.NotFound(fmt.Errorf("memory: %s %q: no such account", act, a.Username))
	}
	if act == connector.ActCreate {
		if ok {
			return connector.Permanent(fmt.Errorf("memory: create %q: already exists", a.Username))
		}
		t.seq++
		cur = a.Clone()
		// Created with the application's defaults: role, groups and flags
		// are set by their own calls (the role a create carries only says
		// what the person will be).
		cur.Role, cur.Groups, cur.Suspended, cur.MustChangePassword = "", nil, false, false
		cur.Exists = true
		cur.Remote = map[string]string{"id": fmt.Sprint(t.seq)}
		a.Remote = cur.Remote
	}
	mutate(&cur)
	t.calls = append(t.calls, Call{Action: act, Key: key, Account: a.Clone(), Time: time.Now()})
	if act == connector.ActDelete {
		delete(t.accounts, key)
	} else {
		t.accounts[key] = cur
	}
	return t.save()
}

// keyOf finds the account a call is about: by key, or — like a real
// application, which knows its accounts by its own ids — by the id it
// assigned (Remote["id"]) when the engine's key for it changed. Callers
// hold mu.
func (t *Target) keyOf(a identity.Account) string {
	if _, ok := t.accounts[a.Key]; ok || a.Remote["id"] == "" {
		return a.Key
	}
	for k, c := range t.accounts {
		if c.Remote["id"] == a.Remote["id"] {
			return k
		}
	}
	return a.Key
}

// Create implements connector.Creator.
func (t *Target) Create(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, connector.ActCreate, a, func(*identity.Account) {})
}

// Update implements connector.Updater.
func (t *Target) Update(ctx context.Context, _ identity.Account, a *identity.Account) error {
	return t.do(ctx, connector.ActUpdate, a, func(c *identity.Account) {
		c.Username, c.Email, c.GivenName, c.FamilyName, c.DisplayName = a.Username, a.Email, a.GivenName, a.FamilyName, a.DisplayName
		c.Attributes = a.Clone().Attributes
	})
}

// Suspend implements connector.Suspender.
func (t *Target) Suspend(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, connector.ActSuspend, a, func(c *identity.Account) { c.Suspended = true })
}

// Unsuspend implements connector.Suspender.
func (t *Target) Unsuspend(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, connector.ActUnsuspend, a, func(c *identity.Account) { c.Suspended = false })
}

// SetExpiry implements connector.ExpirySetter.
func (t *Target) SetExpiry(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, connector.ActSetExpiry, a, func(c *identity.Account) { c.Expires = a.Clone().Expires })
}

// ForcePasswordChange implements connector.PasswordChangeForcer.
func (t *Target) ForcePasswordChange(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, connector.ActForcePasswordChange, a, func(c *identity.Account) { c.MustChangePassword = true })
}

// SetRole implements connector.RoleSetter.
func (t *Target) SetRole(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, connector.ActSetRole, a, func(c *identity.Account) { c.Role = a.Role })
}

// SetGroups implements connector.GroupSetter.
func (t *Target) SetGroups(ctx context.Context, _ identity.Account, a *identity.Account) error {
	return t.do(ctx, connector.ActSetGroups, a, func(c *identity.Account) { c.Groups = slices.Clone(a.Groups) })
}

// Delete implements connector.Deleter.
func (t *Target) Delete(ctx context.Context, a *identity.Account) error {
	return t.do(ctx, connector.ActDelete, a, func(*identity.Account) {})
}

// List implements connector.Lister.
func (t *Target) List(ctx context.Context) ([]identity.Account, error) {
	if err := t.readHook("list"); err != nil {
		return nil, err
	}
	return t.All(), nil
}

// readHook runs ReadHook, if set.
func (t *Target) readHook(op string) error {
	t.mu.Lock()
	h := t.ReadHook
	t.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(op)
}

// All returns the application's accounts, bypassing ReadHook: what a test
// looks at, not what the engine asks.
func (t *Target) All() []identity.Account {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]identity.Account, 0, len(t.accounts))
	for _, a := range t.accounts {
		out = append(out, a.Clone())
	}
	return out
}

// Read implements connector.Reader.
func (t *Target) Read(ctx context.Context, a identity.Account) (identity.Account, error) {
	if err := t.readHook("read"); err != nil {
		return identity.Account{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur, ok := t.accounts[t.keyOf(a)]
	if !ok {
		return identity.Account{}, connector.NotFound(fmt.Errorf("memory: read %q: no such account", a.Username))
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

// Find returns the application's view of the account a call about a would
// reach: by key, or by the id the application assigned.
func (t *Target) Find(a identity.Account) (identity.Account, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.accounts[t.keyOf(a)]
	return c.Clone(), ok
}

// Calls returns a copy of every recorded call.
func (t *Target) Calls() []Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.calls)
}

// CallsFor returns the actions recorded for one account key, in order.
func (t *Target) CallsFor(key string) []connector.Action {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []connector.Action
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
// rely on its cache alone. Like Ezeelogin it addresses accounts by
// username: the underlying Target keeps them under Key = Username, and the
// accounts the application has are Seeded there.
type WriteOnly struct{ t *Target }

// NewWriteOnly returns the write-only view of t.
func NewWriteOnly(t *Target) *WriteOnly { return &WriteOnly{t: t} }

var (
	_ connector.Updater              = (*WriteOnly)(nil)
	_ connector.Suspender            = (*WriteOnly)(nil)
	_ connector.ExpirySetter         = (*WriteOnly)(nil)
	_ connector.PasswordChangeForcer = (*WriteOnly)(nil)
	_ connector.RoleSetter           = (*WriteOnly)(nil)
	_ connector.GroupSetter          = (*WriteOnly)(nil)
	_ connector.Gater                = (*WriteOnly)(nil)
)

// byName returns the account as the application addresses it.
func byName(a *identity.Account) *identity.Account {
	c := a.Clone()
	c.Key = c.Username
	return &c
}

// Name implements connector.Connector.
func (w *WriteOnly) Name() string { return w.t.Name() }

// Type implements connector.Connector.
func (w *WriteOnly) Type() string { return "memory-write-only" }

// Update implements connector.Updater.
func (w *WriteOnly) Update(ctx context.Context, before identity.Account, a *identity.Account) error {
	return w.t.Update(ctx, *byName(&before), byName(a))
}

// Suspend implements connector.Suspender.
func (w *WriteOnly) Suspend(ctx context.Context, a *identity.Account) error {
	return w.t.Suspend(ctx, byName(a))
}

// Unsuspend implements connector.Suspender.
func (w *WriteOnly) Unsuspend(ctx context.Context, a *identity.Account) error {
	return w.t.Unsuspend(ctx, byName(a))
}

// SetExpiry implements connector.ExpirySetter.
func (w *WriteOnly) SetExpiry(ctx context.Context, a *identity.Account) error {
	return w.t.SetExpiry(ctx, byName(a))
}

// ForcePasswordChange implements connector.PasswordChangeForcer.
func (w *WriteOnly) ForcePasswordChange(ctx context.Context, a *identity.Account) error {
	return w.t.ForcePasswordChange(ctx, byName(a))
}

// SetRole implements connector.RoleSetter.
func (w *WriteOnly) SetRole(ctx context.Context, a *identity.Account) error {
	return w.t.SetRole(ctx, byName(a))
}

// SetGroups implements connector.GroupSetter.
func (w *WriteOnly) SetGroups(ctx context.Context, before identity.Account, a *identity.Account) error {
	return w.t.SetGroups(ctx, *byName(&before), byName(a))
}

// Gate implements connector.Gater.
func (w *WriteOnly) Gate(action connector.Action, a identity.Account) string {
	return w.t.Gate(action, a)
}

// LiveFields implements connector.LiveFielder: List reports every field.
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
