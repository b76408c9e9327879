// Package connector defines what a downstream application connector is: a
// small core interface (Connector), optional capability interfaces (one per
// action), typed error kinds that tell the engine whether to retry, and the
// factory type the registry in connector/all maps type names to. A target,
// in config (targets:), is a configured instance of a connector.
package connector

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// Action is one kind of change the engine can ask a connector to make.
type Action string

// The actions, in the default per-user order the engine applies them:
// unsuspend before changes so they land on a live account, expiry before
// suspend (Ezeelogin's set_user_expiry unsuspends), delete last.
const (
	ActCreate              Action = "create"
	ActUnsuspend           Action = "unsuspend"
	ActUpdate              Action = "update"
	ActSetRole             Action = "set_role"
	ActSetGroups           Action = "set_groups"
	ActSetExpiry           Action = "set_expiry"
	ActForcePasswordChange Action = "force_password_change"
	ActSuspend             Action = "suspend"
	ActDelete              Action = "delete"
)

// DefaultOrder is the per-user action order unless a target overrides it.
var DefaultOrder = []Action{ActCreate, ActUnsuspend, ActUpdate, ActSetRole, ActSetGroups, ActSetExpiry, ActForcePasswordChange, ActSuspend, ActDelete}

// Destructive reports whether the safety guard counts a.
func (a Action) Destructive() bool { return a == ActSuspend || a == ActDelete }

// Target is the core every connector implements. What else it can do is
// declared by the optional interfaces below; the planner reads them through
// Supports and never emits an action a target cannot do.
type Connector interface {
	// Name is the configured target name.
	Name() string
	// Type is the connector type ("netmaker").
	Type() string
}

// Creator creates (or invites) an account. It may fill a.Remote with the
// identifiers the application assigned.
type Creator interface {
	Create(ctx context.Context, a *identity.Account) error
}

// Updater changes profile fields (names, email, attributes); before is the
// cached account.
type Updater interface {
	Update(ctx context.Context, before identity.Account, a *identity.Account) error
}

// Suspender suspends and unsuspends accounts.
type Suspender interface {
	Suspend(ctx context.Context, a *identity.Account) error
	Unsuspend(ctx context.Context, a *identity.Account) error
}

// ExpirySetter sets (or clears, when a.Expires is nil) an account's expiry.
type ExpirySetter interface {
	SetExpiry(ctx context.Context, a *identity.Account) error
}

// PasswordChangeForcer makes the user change their password at next login.
type PasswordChangeForcer interface {
	ForcePasswordChange(ctx context.Context, a *identity.Account) error
}

// RoleSetter sets the account's role (a.Role).
type RoleSetter interface {
	SetRole(ctx context.Context, a *identity.Account) error
}

// GroupSetter makes the account's application groups exactly a.Groups;
// before.Groups is what the cache believes they are now.
type GroupSetter interface {
	SetGroups(ctx context.Context, before identity.Account, a *identity.Account) error
}

// Deleter removes an account.
type Deleter interface {
	Delete(ctx context.Context, a *identity.Account) error
}

// Lister lists the application's accounts, for drift detection and for
// adopting accounts that exist before dirsync first runs. Returned accounts
// have Exists set.
type Lister interface {
	List(ctx context.Context) ([]identity.Account, error)
}

// LiveFielder is implemented by a Lister whose List reports these account
// fields as the application has them (identity.FieldSuspended, FieldRole,
// FieldGroups, FieldExpires, FieldProfile). A reconcile compares only those
// with the cache; a Lister without it is compared on suspension only.
type LiveFielder interface {
	LiveFields() []string
}

// RemoteIDer is implemented by a connector whose Account.Remote also holds
// values that identify nothing (a guest tag, a cached group list shared by
// many accounts): it names the Remote keys that do identify an account.
// A reconcile matches live accounts to cached ones only by those; without
// it, by every Remote key.
type RemoteIDer interface {
	RemoteIDs() []string
}

// Reader re-reads one account (matched by its Remote ids, email or username)
// before an uncertain action is retried, e.g. after a crash or a timeout. It
// returns an error of kind NotFound when the account does not exist.
type Reader interface {
	Read(ctx context.Context, a identity.Account) (identity.Account, error)
}

// Gater refuses, at plan time, actions the configured application cannot do
// for this account (a version gate, a community edition, an account owned by
// another system). A non-empty reason makes the action a skipped decision.
type Gater interface {
	Gate(action Action, a identity.Account) (reason string)
}

// Holder is implemented by a connector that can tell from an account's
// names alone that the application holds no account for it (a username it
// cannot take). A full run reads the application's list to adopt a person
// missing from the cache unless this says so: a refused create is no such
// reason, because accounts made by hand or by an SSO sign-in are adopted.
type Holder interface {
	CannotHold(a identity.Account) (reason string)
}

// Warner reports settings that are valid but probably not what the
// operator wants (dirsync validate prints them).
type Warner interface {
	Warnings() []string
}

// Orderer overrides the per-user action order.
type Orderer interface {
	Order() []Action
}

// Opener is implemented by connectors that need a network check or discovery
// before the first action (token exchange, edition detection). The engine
// calls it once per process before the first run that uses the target.
type Opener interface {
	Open(ctx context.Context) error
}

// Supports reports whether t implements action a.
func Supports(t Connector, a Action) bool {
	switch a {
	case ActCreate:
		_, ok := t.(Creator)
		return ok
	case ActUpdate:
		_, ok := t.(Updater)
		return ok
	case ActSuspend, ActUnsuspend:
		_, ok := t.(Suspender)
		return ok
	case ActSetExpiry:
		_, ok := t.(ExpirySetter)
		return ok
	case ActForcePasswordChange:
		_, ok := t.(PasswordChangeForcer)
		return ok
	case ActSetRole:
		_, ok := t.(RoleSetter)
		return ok
	case ActSetGroups:
		_, ok := t.(GroupSetter)
		return ok
	case ActDelete:
		_, ok := t.(Deleter)
		return ok
	}
	return false
}

// Capabilities lists the actions t supports, for display.
func Capabilities(t Connector) []Action {
	var out []Action
	for _, a := range DefaultOrder {
		if Supports(t, a) {
			out = append(out, a)
		}
	}
	return out
}

// Do dispatches one action to t. before is the cached account, a the desired
// one (connectors may write a.Remote). An action t does not implement is a
// permanent error, never a panic.
func Do(ctx context.Context, t Connector, act Action, before identity.Account, a *identity.Account) error {
	missing := func() error {
		return Permanent(fmt.Errorf("%s: the %s connector cannot do %s", t.Name(), t.Type(), act))
	}
	switch act {
	case ActCreate:
		if c, ok := t.(Creator); ok {
			return c.Create(ctx, a)
		}
	case ActUpdate:
		if c, ok := t.(Updater); ok {
			return c.Update(ctx, before, a)
		}
	case ActSuspend:
		if c, ok := t.(Suspender); ok {
			return c.Suspend(ctx, a)
		}
	case ActUnsuspend:
		if c, ok := t.(Suspender); ok {
			return c.Unsuspend(ctx, a)
		}
	case ActSetExpiry:
		if c, ok := t.(ExpirySetter); ok {
			return c.SetExpiry(ctx, a)
		}
	case ActForcePasswordChange:
		if c, ok := t.(PasswordChangeForcer); ok {
			return c.ForcePasswordChange(ctx, a)
		}
	case ActSetRole:
		if c, ok := t.(RoleSetter); ok {
			return c.SetRole(ctx, a)
		}
	case ActSetGroups:
		if c, ok := t.(GroupSetter); ok {
			return c.SetGroups(ctx, before, a)
		}
	case ActDelete:
		if c, ok := t.(Deleter); ok {
			return c.Delete(ctx, a)
		}
	default:
		return Permanent(errUnknownAction(act))
	}
	return missing()
}

// Deps are what the engine hands every connector.
type Deps struct {
	Logger *zap.Logger
	// Now is the clock; tests pass a fake.
	Now func() time.Time
	// HTTPClient is a base client (timeouts set); connectors may wrap its
	// transport. Nil means build their own.
	HTTPClient *http.Client
	// Leading, when set, says whether this process still holds the leader
	// lease. Connectors ask it immediately before sending each request and
	// send nothing when it says false (ErrNotLeading). Nil means always.
	Leading func() bool
	// Memory keeps what the connector learns about its application at run
	// time across restarts (see Memory). Nil means this process only.
	Memory Memory
}

// Factory builds a connector from its config. It must validate and fill
// defaults only: no network until Open or the first action.
type Factory func(cfg config.Target, deps Deps) (Connector, error)
