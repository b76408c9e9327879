package connector

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind classifies a connector error so the engine knows what to do with it.
type Kind int

// The kinds of error.
const (
	// KindRetryable: a 5xx, a timeout, a dropped connection. Retry with backoff.
	KindRetryable Kind = iota + 1
	// KindRateLimited: 429 or similar; wait RetryAfter (when known) and retry.
	KindRateLimited
	// KindPermanent: the request is wrong for this account; do not retry.
	KindPermanent
	// KindNotFound: the account does not exist in the application.
	KindNotFound
	// KindSkipped: not an error: the connector declines this action for a
	// reason worth a skipped decision (account owned by another system...).
	KindSkipped
	// KindUncertain: the request may or may not have been applied (timeout
	// after sending a non-idempotent call). Re-read before retrying.
	KindUncertain
)

func (k Kind) String() string {
	switch k {
	case KindRetryable:
		return "retryable"
	case KindRateLimited:
		return "rate_limited"
	case KindPermanent:
		return "permanent"
	case KindNotFound:
		return "not_found"
	case KindSkipped:
		return "skipped"
	case KindUncertain:
		return "uncertain"
	}
	return "unknown"
}

// Cause refines a skip: why the action was not done. The engine reads it
// to keep invariants 11 and 12 (DESIGN.md).
type Cause int

// The causes of a skip.
const (
	// CauseDeclined: a skip like any other (a protected account, a
	// version gate).
	CauseDeclined Cause = iota
	// CauseImpossible: the application cannot do this action for this
	// account (Netmaker refuses to delete an SSO user). The engine does
	// the next access-removing action that can be done instead (a suspend
	// for a delete), with a decision.
	CauseImpossible
	// CauseUnreadable: the application lists the account but cannot read
	// it back (Netmaker answers "record not found" for a user whose role it
	// does not have). The account is neither gone nor re-created: the
	// step waits, with a decision that says why.
	CauseUnreadable
)

// Error is a classified connector error.
type Error struct {
	Kind       Kind
	RetryAfter time.Duration
	// Cause refines KindSkipped.
	Cause Cause
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Retryable marks err as worth retrying.
func Retryable(err error) error { return &Error{Kind: KindRetryable, Err: err} }

// RateLimited marks err as a rate limit; after may be 0 when unknown.
func RateLimited(err error, after time.Duration) error {
	return &Error{Kind: KindRateLimited, RetryAfter: after, Err: err}
}

// Permanent marks err as not worth retrying.
func Permanent(err error) error { return &Error{Kind: KindPermanent, Err: err} }

// NotFound marks err as "the account does not exist".
func NotFound(err error) error { return &Error{Kind: KindNotFound, Err: err} }

// Uncertain marks err as "may have been applied": re-read before retrying.
func Uncertain(err error) error { return &Error{Kind: KindUncertain, Err: err} }

// Skip declines an action with a reason that becomes a skipped decision.
func Skip(format string, args ...any) error {
	return &Error{Kind: KindSkipped, Err: fmt.Errorf(format, args...)}
}

// Impossible declines an action the application cannot do for this
// account (its kind is KindSkipped, so it is never retried); the engine
// falls back to the next access-removing action.
func Impossible(format string, args ...any) error {
	return &Error{Kind: KindSkipped, Cause: CauseImpossible, Err: fmt.Errorf(format, args...)}
}

// Unreadable marks err as "the application lists this account but cannot
// read it back": a skip (the step waits), never "not found".
func Unreadable(err error) error {
	return &Error{Kind: KindSkipped, Cause: CauseUnreadable, Err: err}
}

// CauseOf returns the cause of a skip (CauseDeclined for anything else).
func CauseOf(err error) Cause {
	var e *Error
	if errors.As(err, &e) {
		return e.Cause
	}
	return CauseDeclined
}

// KindOf returns err's kind; unclassified errors count as retryable (a
// network error we did not anticipate), nil as 0.
func KindOf(err error) Kind {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindRetryable
}

// RetryAfterOf returns the Retry-After carried by err, if any.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrNotLeading is wrapped by the error of a request a connector did not
// send because this process no longer holds the leader lease (it was frozen,
// or cut off from the store): another replica may be the leader now. The
// error's kind is retryable: nothing was sent.
var ErrNotLeading = errors.New("not sent: this process no longer holds the leader lease")

func errUnknownAction(a Action) error { return fmt.Errorf("unknown action %q", a) }

// ParseRetryAfter reads a Retry-After value (seconds or an HTTP date).
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
