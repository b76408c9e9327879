package sync

import (
	"context"
	"errors"
	"time"

	"github.com/dirsync/dirsync/connector"
)

// retryPolicy is how a call to an application is retried: transient errors
// (retryable, rate limited, and uncertain when allowed) are retried with a
// doubling delay, honouring Retry-After up to max; a longer Retry-After
// ends the loop and is reported through tooLong.
type retryPolicy struct {
	attempts      int
	base          time.Duration
	maxRetryAfter time.Duration
	sleep         func(ctx context.Context, d time.Duration) error
	// uncertain retries KindUncertain too (the caller re-reads before).
	uncertain bool
	// final, when set, ends the loop on errors it accepts whatever their
	// kind (a one-shot action whose answer was lost).
	final func(error) bool
}

// retryResult is what the loop ended with.
type retryResult struct {
	err      error
	attempts int
	// tooLong is the Retry-After that exceeded the policy's maximum.
	tooLong time.Duration
}

// do calls fn until it succeeds, fails for good, or the attempts run out.
func (p retryPolicy) do(ctx context.Context, fn func() error) retryResult {
	return p.doWait(ctx, func() (time.Duration, error) { return 0, fn() })
}

// doWait is do for a fn that may also return a Retry-After learned
// elsewhere (a re-read after an uncertain answer); the larger of it and the
// error's own is honoured.
func (p retryPolicy) doWait(ctx context.Context, fn func() (time.Duration, error)) retryResult {
	var r retryResult
	for attempt := 1; ; attempt++ {
		r.attempts = attempt
		extraWait, err := fn()
		r.err = err
		if err == nil {
			return r
		}
		if (p.final != nil && p.final(err)) || errors.Is(err, connector.ErrNotLeading) {
			return r // a process without the lease sends nothing more
		}
		k := connector.KindOf(err)
		transient := k == connector.KindRetryable || k == connector.KindRateLimited || (p.uncertain && k == connector.KindUncertain)
		if !transient || attempt >= max(p.attempts, 1) || ctx.Err() != nil {
			return r
		}
		wait := p.base << (attempt - 1)
		ra := max(connector.RetryAfterOf(err), extraWait)
		if ra > 0 {
			if p.maxRetryAfter > 0 && ra > p.maxRetryAfter {
				r.tooLong = ra
				return r
			}
			wait = ra
		}
		if p.sleep(ctx, wait) != nil {
			return r
		}
	}
}
