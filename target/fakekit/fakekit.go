// Package fakekit is what every application fake shares: one seeded fault
// model (a rate over fault kinds, before or after the request is applied,
// plus queued fail-next faults), the request flow that applies it, call
// recording with applied counts, out-of-band edits (an administrator
// changing the application by hand, logged apart from the calls), and
// start/stop on a real listener or an httptest server. Each fake keeps only
// its application's routes, state and error bodies.
package fakekit

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault is one kind of injected failure.
type Fault string

// The faults.
const (
	// Fault429 answers 429 with Retry-After.
	Fault429 Fault = "429"
	// Fault500 answers 500.
	Fault500 Fault = "500"
	// FaultSlow answers after SlowDelay (past a short client timeout).
	FaultSlow Fault = "slow"
	// FaultDrop closes the connection without an answer.
	FaultDrop Fault = "drop"
	// FaultAnswer gives a canned answer (AnswerNext) instead of the
	// application's.
	FaultAnswer Fault = "answer"
)

// Answer is a canned answer.
type Answer struct {
	Status int
	// Header holds headers (Content-Type default application/json).
	Header map[string]string
	Body   string
}

// AllFaults are the kinds drawn from by default.
var AllFaults = []Fault{Fault429, Fault500, FaultSlow, FaultDrop}

// FaultOptions configure a fault model; fakes embed them in their options.
type FaultOptions struct {
	// FaultRate is the share of requests (0..1) that fail.
	FaultRate float64
	// Faults are the kinds drawn from (default AllFaults).
	Faults []Fault
	// FaultAfterApply applies the request before failing it (the client
	// cannot tell whether it landed).
	FaultAfterApply bool
	// RetryAfter is the Retry-After of a 429, in seconds (default 1).
	RetryAfter int
	// SlowDelay is how long a slow answer waits (default 50ms).
	SlowDelay time.Duration
	// Seed makes the sequence reproducible.
	Seed uint64
}

// Faults is the one fault model every fake uses.
type Faults struct {
	mu   sync.Mutex
	o    FaultOptions
	rng  *mrand.Rand
	next []nextFault
}

type nextFault struct {
	method, path string
	kind         Fault
	after        bool
	answer       *Answer
}

// NewFaults returns a fault model; with a zero rate and nothing queued it
// never fails.
func NewFaults(o FaultOptions) *Faults {
	if len(o.Faults) == 0 {
		o.Faults = AllFaults
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = 1
	}
	if o.SlowDelay == 0 {
		o.SlowDelay = 50 * time.Millisecond
	}
	return &Faults{o: o, rng: mrand.New(mrand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
}

// Set changes the rate and, when given, the kinds.
func (f *Faults) Set(rate float64, kinds ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.o.FaultRate = rate
	if len(kinds) > 0 {
		f.o.Faults = kinds
	}
}

// SetAfterApply says whether drawn faults hit after the request is applied.
func (f *Faults) SetAfterApply(after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.o.FaultAfterApply = after
}

// FailNext makes the next request with this method ("" for any) whose path
// starts with path fail with kind, once, before (or, with after, after) it
// is applied. Queued faults are used in order.
func (f *Faults) FailNext(method, path string, kind Fault, after bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = append(f.next, nextFault{method: method, path: path, kind: kind, after: after})
}

// AnswerNext makes the next request with this method ("" for any) whose
// path starts with path get a instead of the application's answer, once;
// the request is not applied. It queues with FailNext.
func (f *Faults) AnswerNext(method, path string, a Answer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = append(f.next, nextFault{method: method, path: path, kind: FaultAnswer, answer: &a})
}

// draw picks the fault for r, if any.
func (f *Faults) draw(r *http.Request) (nextFault, FaultOptions) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.next {
		if (n.method == "" || n.method == r.Method) && strings.HasPrefix(r.URL.Path, n.path) {
			f.next = slices.Delete(f.next, i, i+1)
			return n, f.o
		}
	}
	if f.o.FaultRate > 0 && f.rng.Float64() < f.o.FaultRate {
		return nextFault{kind: f.o.Faults[f.rng.IntN(len(f.o.Faults))], after: f.o.FaultAfterApply}, f.o
	}
	return nextFault{}, f.o
}

// Exchange is one request as a fake serves it.
type Exchange struct {
	// Apply handles the request and returns the answer's status. It is not
	// called when a fault hits before the request is applied.
	Apply func() int
	// Record records the call with its final status (0 when dropped) and
	// fault.
	Record func(status int, fault Fault)
	// Write writes the application's answer.
	Write func()
	// TooMany and Failed write the application's own 429 and 500 answers
	// (defaults: plain text).
	TooMany func(w http.ResponseWriter, retryAfter int)
	Failed  func(w http.ResponseWriter)
}

// Serve runs one request through the fault model: a drawn fault hits
// before the request is applied (nothing changes) or after it (the change
// is made, the answer lost or wrong); a slow answer is applied and answered
// late.
func (f *Faults) Serve(w http.ResponseWriter, r *http.Request, ex Exchange) {
	n, o := f.draw(r)
	fault, after := n.kind, n.after
	if fault == FaultAnswer {
		ex.Record(n.answer.Status, fault)
		writeAnswer(w, *n.answer)
		return
	}
	if fault == FaultSlow && !after && !sleep(r.Context(), o.SlowDelay) {
		return
	}
	status := 0
	if fault == "" || fault == FaultSlow || after {
		status = ex.Apply()
	}
	switch fault {
	case Fault429:
		status = http.StatusTooManyRequests
	case Fault500:
		status = http.StatusInternalServerError
	case FaultDrop:
		status = 0
	}
	ex.Record(status, fault)
	switch fault {
	case Fault429:
		w.Header().Set("Retry-After", fmt.Sprint(o.RetryAfter))
		if ex.TooMany != nil {
			ex.TooMany(w, o.RetryAfter)
			return
		}
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	case Fault500:
		if ex.Failed != nil {
			ex.Failed(w)
			return
		}
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	case FaultDrop:
		Drop(w)
		return
	case FaultSlow:
		if after && !sleep(r.Context(), o.SlowDelay) {
			return
		}
	}
	ex.Write()
}

func writeAnswer(w http.ResponseWriter, a Answer) {
	w.Header().Set("Content-Type", "application/json")
	for k, v := range a.Header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.Status)
	_, _ = io.WriteString(w, a.Body)
}

// Drop closes the connection without an answer.
func Drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// ReadBody reads a request body (bounded to 1 MiB).
func ReadBody(r *http.Request) []byte {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	return b
}

// Recorder keeps every call a fake received (C is the fake's call type),
// how many times each key changed the application, and the out-of-band
// edits made to it.
type Recorder[C any] struct {
	mu      sync.Mutex
	calls   []C
	applied map[string]int
	edits   []string
}

// Add records the call mk builds from its 1-based sequence number and,
// when key is not empty, one applied change under key.
func (r *Recorder[C]) Add(mk func(seq int) C, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, mk(len(r.calls)+1))
	if key != "" {
		if r.applied == nil {
			r.applied = map[string]int{}
		}
		r.applied[key]++
	}
}

// Calls returns every recorded call.
func (r *Recorder[C]) Calls() []C {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Applied returns how many times each key changed the application.
func (r *Recorder[C]) Applied() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.applied))
	for k, v := range r.applied {
		out[k] = v
	}
	return out
}

// Reset forgets the calls, the applied counts and the edits.
func (r *Recorder[C]) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls, r.applied, r.edits = nil, map[string]int{}, nil
}

// Edit notes an out-of-band edit (what an administrator changed in the
// application by hand, not through the API dirsync uses).
func (r *Recorder[C]) Edit(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.edits = append(r.edits, what)
}

// Edits returns the out-of-band edits noted since the last Reset.
func (r *Recorder[C]) Edits() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.edits)
}

// Listener serves a fake on a real port (the demo, test/faults).
type Listener struct {
	mu  sync.Mutex
	srv *http.Server
}

// Start serves h on addr ("127.0.0.1:0" for a free port) and returns the
// base URL; name prefixes errors.
func (l *Listener) Start(name, addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("%s: listen: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	l.mu.Lock()
	l.srv = srv
	l.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops a server started with Start (a no-op otherwise).
func (l *Listener) Close() error {
	l.mu.Lock()
	srv := l.srv
	l.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// TestServer serves h on an httptest server stopped when the test ends,
// and returns its base URL.
func TestServer(t interface{ Cleanup(func()) }, h http.Handler) string {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

// Kit is what a fake embeds: its fault model, its call recorder and its
// listener, with the methods tests and the demo call on every fake.
type Kit[C any] struct {
	faults *Faults
	rec    Recorder[C]
	lis    Listener
	name   string
	h      http.Handler
}

// Init sets the kit up for the fake named name, served by h.
func (k *Kit[C]) Init(name string, h http.Handler, o FaultOptions) {
	k.name, k.h, k.faults = name, h, NewFaults(o)
}

// Serve runs one request through the fault model (Faults.Serve).
func (k *Kit[C]) Serve(w http.ResponseWriter, r *http.Request, ex Exchange) { k.faults.Serve(w, r, ex) }

// Record records one call (Recorder.Add).
func (k *Kit[C]) Record(mk func(seq int) C, key string) { k.rec.Add(mk, key) }

// Note notes an out-of-band edit (Recorder.Edit).
func (k *Kit[C]) Note(what string) { k.rec.Edit(what) }

// Calls returns every recorded request.
func (k *Kit[C]) Calls() []C { return k.rec.Calls() }

// ResetCalls forgets the recorded requests, applied counts and edits.
func (k *Kit[C]) ResetCalls() { k.rec.Reset() }

// Applied returns how many times each key changed the application.
func (k *Kit[C]) Applied() map[string]int { return k.rec.Applied() }

// Edits returns the out-of-band edits made since the last ResetCalls.
func (k *Kit[C]) Edits() []string { return k.rec.Edits() }

// SetFaults changes the fault rate and, when given, the kinds.
func (k *Kit[C]) SetFaults(rate float64, kinds ...Fault) { k.faults.Set(rate, kinds...) }

// SetFaultAfterApply says whether drawn faults hit after the request is
// applied.
func (k *Kit[C]) SetFaultAfterApply(after bool) { k.faults.SetAfterApply(after) }

// FailNext makes the next matching request fail with kind, once
// (Faults.FailNext).
func (k *Kit[C]) FailNext(method, path string, kind Fault, after bool) {
	k.faults.FailNext(method, path, kind, after)
}

// AnswerNext gives the next matching request a canned answer, once
// (Faults.AnswerNext).
func (k *Kit[C]) AnswerNext(method, path string, a Answer) { k.faults.AnswerNext(method, path, a) }

// Start serves the fake on addr ("127.0.0.1:0" for a free port) and
// returns the base URL. Close stops it.
func (k *Kit[C]) Start(addr string) (string, error) { return k.lis.Start(k.name, addr, k.h) }

// Close stops a fake started with Start.
func (k *Kit[C]) Close() error { return k.lis.Close() }
