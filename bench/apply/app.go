package main

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	stdsync "sync"
	"time"

	"golang.org/x/time/rate"
)

// App puts in front of an application's handler what a hosted API does to
// its clients: a token bucket of Rate requests per second (Burst at once)
// answers 429 with Retry-After at once to every request beyond it, and every
// accepted request is answered after Latency.
type App struct {
	next    http.Handler
	latency time.Duration
	lim     *rate.Limiter
	now     func() time.Time
	// wait sleeps for the latency; false when the request went away.
	wait func(ctx context.Context, d time.Duration) bool

	mu       stdsync.Mutex
	accepted int
	limited  int
}

// AppOptions shape an App.
type AppOptions struct {
	// Rate is the limit in requests per second.
	Rate float64
	// Burst is how many requests the bucket takes at once (default Rate).
	Burst int
	// Latency is how long an accepted request takes.
	Latency time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Wait sleeps for the latency (default a timer honouring ctx).
	Wait func(ctx context.Context, d time.Duration) bool
}

// NewApp wraps next.
func NewApp(next http.Handler, o AppOptions) *App {
	if o.Burst <= 0 {
		o.Burst = max(1, int(o.Rate))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Wait == nil {
		o.Wait = func(ctx context.Context, d time.Duration) bool {
			if d <= 0 {
				return true
			}
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
				return true
			}
		}
	}
	return &App{next: next, latency: o.Latency, lim: rate.NewLimiter(rate.Limit(o.Rate), o.Burst), now: o.Now, wait: o.Wait}
}

// Counts returns how many requests were accepted and how many were answered
// 429 so far.
func (a *App) Counts() (accepted, limited int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.accepted, a.limited
}

// ServeHTTP implements http.Handler.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := a.now()
	a.mu.Lock()
	ok := a.lim.AllowN(now, 1)
	var after time.Duration
	if ok {
		a.accepted++
	} else {
		a.limited++
		res := a.lim.ReserveN(now, 1)
		after = res.DelayFrom(now)
		res.CancelAt(now)
	}
	a.mu.Unlock()
	if !ok {
		// Retry-After is in whole seconds: round up, at least 1.
		secs := max(1, int(math.Ceil(after.Seconds())))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(map[string]any{"Code": http.StatusTooManyRequests, "Message": "rate limit exceeded"})
		return
	}
	if !a.wait(r.Context(), a.latency) {
		return
	}
	a.next.ServeHTTP(w, r)
}
