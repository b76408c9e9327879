package targettest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/target"
)

// HTTPHarness connects the HTTP outcome table to one HTTP connector.
type HTTPHarness struct {
	// New returns a connector wired to a fresh fake that sends through
	// deps.HTTPClient and asks deps.Leading (the suite's interceptor and
	// lease switch).
	New func(t *testing.T, deps target.Deps) target.Target
	// Idempotent and NonIdempotent are two operations of the connector.
	Idempotent, NonIdempotent HTTPOp
	// Denied are answers the application gives to refuse a permission
	// (with the status it really uses): each must be permanent on both
	// operations.
	Denied []Answer
}

// HTTPOp is one connector operation and the request that carries it.
type HTTPOp struct {
	Name string
	Call func(ctx context.Context, tg target.Target) error
	// Match picks the operation's own request (not a discovery, a token
	// fetch or a read that comes first).
	Match func(r *http.Request) bool
}

// Answer is one HTTP answer.
type Answer struct {
	Status int
	Header http.Header
	Body   string
}

// outcome is one row of the table: what the application does with the
// operation's request, and the kind the connector must report for an
// idempotent and for a non-idempotent operation.
type outcome struct {
	name      string
	answer    *Answer
	drop      bool // the connection drops after the request was sent
	hang      bool // no answer before the call's deadline
	notLeader bool // the lease is lost before the request is sent
	idem, non target.Kind
	after     time.Duration // RetryAfter expected with KindRateLimited
}

func table(denied []Answer) []outcome {
	h := func(k, v string) http.Header { return http.Header{k: {v}} }
	generic := `{"error":"something went wrong","message":"something went wrong","detail":"something went wrong"}`
	rows := []outcome{
		{name: "429 Retry-After 7", answer: &Answer{429, h("Retry-After", "7"), generic}, idem: target.KindRateLimited, non: target.KindRateLimited, after: 7 * time.Second},
		{name: "503 Retry-After 3", answer: &Answer{503, h("Retry-After", "3"), generic}, idem: target.KindRateLimited, non: target.KindRateLimited, after: 3 * time.Second},
		{name: "500", answer: &Answer{500, nil, generic}, idem: target.KindRetryable, non: target.KindUncertain},
		{name: "502", answer: &Answer{502, nil, "bad gateway"}, idem: target.KindRetryable, non: target.KindUncertain},
		{name: "503", answer: &Answer{503, nil, "unavailable"}, idem: target.KindRetryable, non: target.KindUncertain},
		{name: "400", answer: &Answer{400, nil, generic}, idem: target.KindPermanent, non: target.KindPermanent},
		{name: "401", answer: &Answer{401, nil, generic}, idem: target.KindPermanent, non: target.KindPermanent},
		{name: "403", answer: &Answer{403, nil, generic}, idem: target.KindPermanent, non: target.KindPermanent},
		{name: "dropped", drop: true, idem: target.KindRetryable, non: target.KindUncertain},
		{name: "timed out", hang: true, idem: target.KindRetryable, non: target.KindUncertain},
		{name: "lease lost", notLeader: true, idem: target.KindRetryable, non: target.KindRetryable},
	}
	for _, d := range denied {
		rows = append(rows, outcome{name: fmt.Sprintf("denied %d %s", d.Status, d.Body), answer: &d, idem: target.KindPermanent, non: target.KindPermanent})
	}
	return rows
}

// RunHTTP checks the status × method × body → error kind table: every
// HTTP connector classifies the same answer the same way (a cancelled or
// timed-out non-idempotent call is Uncertain, permission refusals are
// permanent whatever their status) and sends nothing without the lease.
func RunHTTP(t *testing.T, h HTTPHarness) {
	t.Helper()
	for _, row := range table(h.Denied) {
		for _, op := range []struct {
			op   HTTPOp
			want target.Kind
		}{{h.Idempotent, row.idem}, {h.NonIdempotent, row.non}} {
			t.Run(row.name+"/"+op.op.Name, func(t *testing.T) {
				httpRow(t, h, row, op.op, op.want)
			})
		}
	}
}

func httpRow(t *testing.T, h HTTPHarness, row outcome, op HTTPOp, want target.Kind) {
	ic := &interceptor{base: http.DefaultTransport, row: row, match: op.Match}
	leading := func() bool { return !row.notLeader }
	tg := h.New(t, target.Deps{HTTPClient: &http.Client{Transport: ic, Timeout: 10 * time.Second}, Leading: leading})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if row.hang {
		cancel()
		ctx, cancel = context.WithTimeout(context.Background(), 700*time.Millisecond)
	}
	defer cancel()
	err := op.Call(ctx, tg)
	if row.notLeader {
		if n := ic.sent(); n > 0 {
			t.Fatalf("%d request(s) sent without the lease", n)
		}
		if !errors.Is(err, target.ErrNotLeading) {
			t.Fatalf("error %v does not wrap target.ErrNotLeading", err)
		}
	} else if !ic.hit() {
		t.Fatalf("the operation's request was never sent (error: %v)", err)
	}
	if got := target.KindOf(err); got != want {
		t.Fatalf("kind %s, want %s (error: %v)", got, want, err)
	}
	if want == target.KindRateLimited {
		if got := target.RetryAfterOf(err); got != row.after {
			t.Fatalf("Retry-After %s, want %s", got, row.after)
		}
	}
}

// interceptor answers every request op.Match picks as the row says (a
// connector that refreshes its token after a 401 and tries once more gets
// the same answer again) and forwards every other one to the fake.
type interceptor struct {
	base  http.RoundTripper
	row   outcome
	match func(*http.Request) bool
	mu    sync.Mutex
	n     int
	done  bool
}

func (ic *interceptor) sent() int {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return ic.n
}

func (ic *interceptor) hit() bool {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return ic.done
}

func (ic *interceptor) RoundTrip(r *http.Request) (*http.Response, error) {
	ic.mu.Lock()
	ic.n++
	mine := ic.match(r)
	if mine {
		ic.done = true
	}
	ic.mu.Unlock()
	if !mine {
		return ic.base.RoundTrip(r)
	}
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	switch {
	case ic.row.drop:
		return nil, io.ErrUnexpectedEOF
	case ic.row.hang:
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	a := ic.row.answer
	hdr := http.Header{"Content-Type": {"application/json"}}
	for k, v := range a.Header {
		hdr[k] = v
	}
	return &http.Response{StatusCode: a.Status, Status: fmt.Sprintf("%d %s", a.Status, http.StatusText(a.Status)), Header: hdr,
		Body: io.NopCloser(strings.NewReader(a.Body)), Request: r, ProtoMajor: 1, ProtoMinor: 1}, nil
}
