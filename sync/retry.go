package sync

import (
	"context"
	"time"

	"github.com/dirsync/dirsync/target"
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
}

// retryResult is what the loop ended with.
type retryResult struct {
	err      error
	attempts int
	// tooLong is the Retry-After that exceeded the policy's maximum.
	tooLong time.Duration
}

// do calls fn until it succeeds, fails for good, or the attempts run out.
// fn returns its error and, optionally, a Retry-After learned elsewhere (a
// re-read after an uncertain answer); the larger one is honoured.
func (p retryPolicy) do(ctx context.Context, fn func(attempt int) (error, time.Duration)) retryResult {
	var r retryResult
	for attempt := 1; ; attempt++ {
		r.attempts = attempt
		err, extraWait := fn(attempt)
		r.err = err
		if err == nil {
			return r
		}
		k := target.KindOf(err)
		transient := k == target.KindRetryable || k == target.KindRateLimited || (p.uncertain && k == target.KindUncertain)
		if !transient || attempt >= max(p.attempts, 1) || ctx.Err() != nil {
			return r
		}
		wait := p.base << (attempt - 1)
		ra := max(target.RetryAfterOf(err), extraWait)
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
