package connector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	stdsync "sync"
)

// Memory keeps what a connector learnt about its application at run time
// (which field shows a suspension, which id a call takes), so that a
// restarted process does not have to guess again. Keys are the
// connector's own; values are small. The daemon backs it with the state
// store (one bucket per target); tests may share one MapMemory between
// connectors to play several processes in a row.
type Memory interface {
	// Recall returns the value kept under key, or nil when there is none.
	Recall(ctx context.Context, key string) ([]byte, error)
	// Remember keeps val under key, replacing what was there.
	Remember(ctx context.Context, key string, val []byte) error
}

// MapMemory is a Memory held in this process only: what it keeps is lost
// when the process ends. It is what a connector uses when Deps carry none.
type MapMemory struct {
	mu stdsync.Mutex
	m  map[string][]byte
}

// NewMapMemory returns an empty MapMemory.
func NewMapMemory() *MapMemory { return &MapMemory{m: map[string][]byte{}} }

// Recall implements Memory.
func (m *MapMemory) Recall(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.m[key]), nil
}

// Remember implements Memory.
func (m *MapMemory) Remember(_ context.Context, key string, val []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[key] = slices.Clone(val)
	return nil
}

// Keys returns the keys kept, sorted (for tests).
func (m *MapMemory) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.m))
}

// MemoryOf returns deps.Memory, or a new MapMemory when it is nil.
func MemoryOf(deps Deps) Memory {
	if deps.Memory != nil {
		return deps.Memory
	}
	return NewMapMemory()
}

// Notes collect what a connector wants said in the decision of the action
// it is carrying out: how it did it when that differs from what the
// action's name says (a far date sent for a cleared expiry, an invitation
// withdrawn), or what went with it (the policies a deletion removed).
type Notes struct {
	mu    stdsync.Mutex
	items []string
}

type notesKey struct{}

// WithNotes returns a context that collects notes, and the collector. The
// engine makes one per action and appends what was noted to its decision.
func WithNotes(ctx context.Context) (context.Context, *Notes) {
	n := &Notes{}
	return context.WithValue(ctx, notesKey{}, n), n
}

// Note adds a note to the decision of the action ctx belongs to. Without a
// collector (a connector called outside the engine) it does nothing.
func Note(ctx context.Context, format string, args ...any) {
	n, _ := ctx.Value(notesKey{}).(*Notes)
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.items = append(n.items, fmt.Sprintf(format, args...))
}

// String joins the notes with "; " ("" when there are none).
func (n *Notes) String() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.items, "; ")
}

// unknownError is a failed action's error that also says which account
// fields the failure left unknown in the application.
type unknownError struct {
	err    error
	fields []string
}

func (e *unknownError) Error() string { return e.err.Error() }
func (e *unknownError) Unwrap() error { return e.err }

// LeftUnknown wraps the error of a failed action with the account fields
// (identity.FieldSuspended, ...) the failure left unknown in the
// application: a call that changes them may have landed before a later one
// failed. The engine marks them unknown in its record, so the next plan
// sends their desired value again whatever the cache says (an Ezeelogin
// set_user_expiry that unsuspended the user, whose re-suspension failed).
// The error keeps its kind.
func LeftUnknown(err error, fields ...string) error {
	if err == nil {
		return nil
	}
	return &unknownError{err: err, fields: fields}
}

// UnknownFields returns the fields err says were left unknown (nil when it
// says nothing).
func UnknownFields(err error) []string {
	var out []string
	for err != nil {
		var u *unknownError
		if !errors.As(err, &u) {
			break
		}
		out = append(out, u.fields...)
		err = u.err
	}
	return out
}
