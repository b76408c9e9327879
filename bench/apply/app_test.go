package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
)

// fakeClock is a settable clock.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// recorder is an inner handler that counts the requests it got.
type recorder struct{ calls int }

func (r *recorder) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	r.calls++
	w.WriteHeader(http.StatusOK)
}

func TestAppRateLimitAndLatency(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	inner := &recorder{}
	var waits []time.Duration
	app := NewApp(inner, AppOptions{Rate: 2, Burst: 3, Latency: 50 * time.Millisecond, Now: clock.Now,
		Wait: func(_ context.Context, d time.Duration) bool { waits = append(waits, d); return true }})
	get := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		app.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/users/jo/disable", nil))
		return w
	}
	for i := range 3 {
		if w := get(); w.Code != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i+1, w.Code)
		}
	}
	w := get()
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("request beyond the burst: %d, Retry-After %q; want 429, 1", w.Code, w.Header().Get("Retry-After"))
	}
	var body struct {
		Code    int
		Message string
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Code != 429 {
		t.Errorf("429 body %q: %v", w.Body.String(), err)
	}
	if inner.calls != 3 || len(waits) != 3 {
		t.Errorf("the application saw %d requests and %d latency waits; want 3 and 3 (a 429 is answered at once)", inner.calls, len(waits))
	}
	for _, d := range waits {
		if d != 50*time.Millisecond {
			t.Errorf("latency wait %s, want 50ms", d)
		}
	}
	clock.now = clock.now.Add(500 * time.Millisecond) // one token at 2/s
	if w := get(); w.Code != http.StatusOK {
		t.Errorf("after a token's time: %d", w.Code)
	}
	if w := get(); w.Code != http.StatusTooManyRequests {
		t.Errorf("the token is spent: %d", w.Code)
	}
	if acc, lim := app.Counts(); acc != 4 || lim != 2 {
		t.Errorf("counts: %d accepted, %d limited; want 4, 2", acc, lim)
	}
}

func TestAppRetryAfterRoundsUp(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	app := NewApp(&recorder{}, AppOptions{Rate: 0.25, Burst: 1, Now: clock.Now}) // a token every 4s
	for i, want := range []int{200, 429} {
		w := httptest.NewRecorder()
		app.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code != want {
			t.Fatalf("request %d: %d, want %d", i+1, w.Code, want)
		}
		if want == 429 && w.Header().Get("Retry-After") != "4" {
			t.Errorf("Retry-After %q, want 4", w.Header().Get("Retry-After"))
		}
	}
	clock.now = clock.now.Add(3500 * time.Millisecond)
	w := httptest.NewRecorder()
	app.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Errorf("0.5s before the next token: %d, Retry-After %q; want 429, 1", w.Code, w.Header().Get("Retry-After"))
	}
}

func TestAppClientGoneSkipsTheApplication(t *testing.T) {
	inner := &recorder{}
	app := NewApp(inner, AppOptions{Rate: 10, Latency: time.Second,
		Wait: func(context.Context, time.Duration) bool { return false }})
	app.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if inner.calls != 0 {
		t.Errorf("the application answered a request whose client went away")
	}
}

func TestBenchUsersAreValidNetmakerUsers(t *testing.T) {
	for _, u := range benchUsers(3, true) {
		if !netmakerfake.ValidUsername(u.Username) || !u.Active || u.Key == "" {
			t.Errorf("bench user %+v", u)
		}
	}
}

func TestSummaryVerdicts(t *testing.T) {
	ph := func(name string, n int, wall time.Duration, limited, runs int) phase {
		return phase{name: name, want: n, done: n, wall: wall, limited: limited, runs: runs}
	}
	o := options{n: 100, rate: 50}
	r := &report{o: o,
		dirsync: []result{
			{sc: scenario{backend: "bolt", rateLimit: 50}, phases: []phase{ph("create", 100, 2*time.Second, 0, 1), ph("suspend", 100, 2*time.Second, 1, 1)}},
			{sc: scenario{backend: "redis", rateLimit: 50}, phases: []phase{ph("create", 100, 4*time.Second, 5, 1), ph("suspend", 100, 4*time.Second, 0, 1)}},
			{sc: scenario{backend: "bolt", rateLimit: 100, misconfigured: true}, phases: []phase{ph("create", 100, 3*time.Second, 40, 2), ph("suspend", 100, 3*time.Second, 30, 4)}},
		},
		naive: &result{phases: []phase{ph("create", 100, 5*time.Second, 0, 1), ph("suspend", 100, 5*time.Second, 0, 1)}},
	}
	rows := strings.Split(strings.TrimSpace(r.summaryRows()), "\n")
	want := []string{
		"pass", "pass", "pass", // bolt: 50/s vs 50, 2.5 × naive (20/s), 1 × 429 ≤ 2
		"FAIL", "FAIL", "FAIL", // redis: 25/s, 1.25 × naive, 5 × 429
		"FAIL", // misconfigured: 4 runs for the suspensions
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), strings.Join(rows, "\n"))
	}
	for i, row := range rows {
		cells := strings.Split(strings.Trim(row, "| "), " | ")
		if len(cells) != 7 || cells[6] != want[i] {
			t.Errorf("row %d: %q; want 7 cells ending in %s", i, row, want[i])
		}
	}
	if !strings.Contains(r.markdown(), "| naive sequential | – | – | total | 200 | 2 | 10.0 | 20.0 | 0.40 | – | 0 | 0 | – | – |") {
		t.Errorf("markdown lacks the naive total row:\n%s", r.markdown())
	}
}
