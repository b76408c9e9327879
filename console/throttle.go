package console

import (
	"net"
	"net/http"
	stdsync "sync"
	"time"
)

// throttle counts failed sign-ins per key (a client address, an account)
// and refuses further attempts from a key that failed max times within
// window, until the oldest of those failures leaves the window. A refused
// attempt is itself a failure, so guessing on keeps the door shut.
type throttle struct {
	now    func() time.Time
	max    int
	window time.Duration

	mu    stdsync.Mutex
	fails map[string][]time.Time
}

func newThrottle(now func() time.Time, max int, window time.Duration) *throttle {
	return &throttle{now: now, max: max, window: window, fails: map[string][]time.Time{}}
}

// recent drops failures older than the window; call with mu held.
func (t *throttle) recent(key string) []time.Time {
	cut := t.now().Add(-t.window)
	fs := t.fails[key]
	i := 0
	for i < len(fs) && !fs[i].After(cut) {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(t.fails, key)
	} else {
		t.fails[key] = fs
	}
	return fs
}

// blocked reports whether any key is shut.
func (t *throttle) blocked(keys ...string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if len(t.recent(k)) >= t.max {
			return true
		}
	}
	return false
}

// fail records a failed attempt for every key.
func (t *throttle) fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.fails) > 100_000 { // bound memory under a spray of addresses
		for k := range t.fails {
			t.recent(k)
		}
	}
	now := t.now()
	for _, k := range keys {
		fs := t.recent(k)
		if len(fs) >= 4*t.max { // enough to stay shut; keep the slice small
			fs = fs[1:]
		}
		t.fails[k] = append(fs, now)
	}
}

// clientKey is the throttle key of the request's client address.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "client:" + host
}
