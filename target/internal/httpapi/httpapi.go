// Package httpapi is the one HTTP layer every HTTP connector sends through:
// it builds requests, checks the leader lease immediately before each one
// is sent, classifies every outcome into a target error kind (status,
// Retry-After, idempotency, permission refusals), scrubs secrets from error
// text and logs one debug line per request. A connector supplies only what
// is its own: how to read its error bodies, what "not found" and "not
// permitted" look like, and hints for its operators.
package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dirsync/dirsync/target"
	"go.uber.org/zap"
)

// MaxBody bounds how much of an answer is read.
const MaxBody = 32 << 20

// Rules are a connector's own reading of its application's answers. Every
// field is optional.
type Rules struct {
	// Message renders an error body as one readable line (default: the
	// trimmed body text, bounded).
	Message func(body []byte) string
	// NotFound reports whether a non-2xx answer means "the account does not
	// exist" (default: status 404).
	NotFound func(status int, msg string) bool
	// Denied reports whether a non-2xx answer is a permission refusal,
	// which is permanent whatever its status code (some applications send
	// them as 500).
	Denied func(status int, msg string) bool
	// Hint returns advice appended to a permanent error of that status
	// ("check the token"), or "".
	Hint func(status int) string
}

// Client sends requests for one connector instance.
type Client struct {
	// App names the application in log lines ("netmaker").
	App string
	// HTTP sends the requests (its transport may add credentials).
	HTTP *http.Client
	// Log receives one debug line per request (default: none).
	Log *zap.Logger
	// Now is the clock for Retry-After dates (default time.Now).
	Now func() time.Time
	// Secrets are scrubbed from every error text (default: none).
	Secrets *Secrets
	// Leading, when set, is asked immediately before every request is
	// sent: false means this process no longer holds the leader lease, and
	// the request is not sent (ErrNotLeading).
	Leading func() bool
	// Authorize, when set, adds credentials to each request.
	Authorize func(ctx context.Context, r *http.Request) error
	// Accept is the Accept header (default application/json).
	Accept string
	Rules  Rules
}

// Request is one call.
type Request struct {
	Method string
	// URL is the full address (base + path + query).
	URL string
	// Body, when non-nil, is sent with ContentType (default
	// application/json).
	Body        []byte
	ContentType string
	// Header holds extra headers.
	Header http.Header
	// Idempotent says repeating the request is harmless. A non-idempotent
	// request that may have reached the application (no answer, a
	// cancelled or timed-out call, a 5xx) is Uncertain: re-read first.
	Idempotent bool
	// Subject starts every error message ("netmaker: disable \"jo\"").
	Subject string
}

// Response is an answer. Status is 0 when there was none.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrNotLeading is wrapped by the error of a request that was not sent
// because this process lost the leader lease.
var ErrNotLeading = target.ErrNotLeading

// StatusError is a non-2xx answer; classified errors wrap it.
type StatusError struct {
	Status int
	// Msg is the rendered (scrubbed) error body.
	Msg  string
	Body []byte
	text string
}

func (e *StatusError) Error() string { return e.text }

// StatusOf returns the HTTP status carried by err, or 0.
func StatusOf(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// MessageOf returns the rendered error body carried by err, or "".
func MessageOf(err error) string {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Msg
	}
	return ""
}

// Do sends r and returns a 2xx answer, or the answer (when there was one)
// and a classified error.
func (c *Client) Do(ctx context.Context, r Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		// Nothing was sent.
		return Response{}, target.Retryable(fmt.Errorf("%s: %w", r.Subject, err))
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return Response{}, target.Permanent(fmt.Errorf("%s: %s", r.Subject, c.scrub(err.Error())))
	}
	accept := c.Accept
	if accept == "" {
		accept = "application/json"
	}
	req.Header.Set("Accept", accept)
	if r.Body != nil {
		ct := r.ContentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if c.Authorize != nil {
		if err := c.Authorize(ctx, req); err != nil {
			return Response{}, err
		}
	}
	if err := c.CheckLease(r.Subject); err != nil {
		return Response{}, err
	}
	start := c.now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		err = c.TransportError(ctx, r.Subject, err, r.Idempotent)
		c.log().Debug(c.App+" request failed", zap.String("method", r.Method), zap.String("path", req.URL.Path),
			zap.Duration("duration", c.now().Sub(start)), zap.Error(err))
		return Response{}, err
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	c.log().Debug(c.App+" request", zap.String("method", r.Method), zap.String("path", req.URL.Path),
		zap.Int("status", resp.StatusCode), zap.Duration("duration", c.now().Sub(start)))
	out := Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return out, c.Classify(r.Subject, resp.StatusCode, resp.Header, b, r.Idempotent)
	}
	if rerr != nil {
		if r.Idempotent {
			return out, target.Retryable(fmt.Errorf("%s: reading the answer: %s", r.Subject, c.scrub(rerr.Error())))
		}
		return out, target.Uncertain(fmt.Errorf("%s: applied (%s) but reading the answer failed: %s", r.Subject, resp.Status, c.scrub(rerr.Error())))
	}
	return out, nil
}

// CheckLease returns a retryable error wrapping ErrNotLeading when this
// process no longer holds the leader lease, else nil. Do calls it right
// before sending; a connector calls it before any request it sends
// another way (an OAuth token fetch).
func (c *Client) CheckLease(subject string) error {
	if c.Leading != nil && !c.Leading() {
		return target.Retryable(fmt.Errorf("%s: %w", subject, ErrNotLeading))
	}
	return nil
}

// TransportError classifies a call that got no answer: a non-idempotent
// one may have been applied (Uncertain), whether it was cancelled, timed
// out or dropped; an idempotent one is Retryable.
func (c *Client) TransportError(ctx context.Context, subject string, err error, idempotent bool) error {
	var e error
	if ctx.Err() != nil {
		e = fmt.Errorf("%s: %w", subject, ctx.Err())
	} else {
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Err.Error() // the URL adds nothing but length
		}
		e = &scrubbed{msg: subject + ": no answer: " + c.scrub(msg), err: err}
	}
	if !idempotent {
		return target.Uncertain(fmt.Errorf("%w (it may have been applied: re-read before retrying)", e))
	}
	return target.Retryable(e)
}

// Classify turns a non-2xx answer into a classified error:
//   - 429, and 503 with Retry-After: rate limited (with its Retry-After);
//   - a permission refusal (Rules.Denied): permanent, whatever the status;
//   - not found (Rules.NotFound, default 404): NotFound;
//   - other 5xx: retryable, but Uncertain for a non-idempotent request;
//   - 408: retryable;
//   - other 4xx: permanent, with the connector's hint.
func (c *Client) Classify(subject string, status int, h http.Header, body []byte, idempotent bool) error {
	msg := c.scrub(c.message(body))
	text := fmt.Sprintf("%s: %d %s", subject, status, http.StatusText(status))
	if msg != "" {
		text += ": " + msg
	}
	se := &StatusError{Status: status, Msg: msg, Body: body, text: text}
	ra := h.Get("Retry-After")
	switch {
	case status == http.StatusTooManyRequests || (status == http.StatusServiceUnavailable && ra != ""):
		return target.RateLimited(se, target.ParseRetryAfter(ra, c.now()))
	case c.Rules.Denied != nil && c.Rules.Denied(status, msg):
		why := "a permission refusal: not retried"
		if h := c.hint(status); h != "" {
			why += "; " + h
		}
		return target.Permanent(fmt.Errorf("%w (%s)", se, why))
	case c.notFound(status, msg):
		return target.NotFound(se)
	case status >= 500 && !idempotent:
		return target.Uncertain(fmt.Errorf("%w (it may have been applied: re-read before retrying)", se))
	case status >= 500 || status == http.StatusRequestTimeout:
		return target.Retryable(se)
	}
	if h := c.hint(status); h != "" {
		return target.Permanent(fmt.Errorf("%w (%s)", se, h))
	}
	return target.Permanent(se)
}

func (c *Client) hint(status int) string {
	if c.Rules.Hint == nil {
		return ""
	}
	return c.Rules.Hint(status)
}

func (c *Client) notFound(status int, msg string) bool {
	if c.Rules.NotFound != nil {
		return c.Rules.NotFound(status, msg)
	}
	return status == http.StatusNotFound
}

func (c *Client) message(body []byte) string {
	if c.Rules.Message != nil {
		if m := c.Rules.Message(body); m != "" {
			return m
		}
	}
	return BodyText(body)
}

// BodyText is the trimmed body, bounded to 300 characters.
func BodyText(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func (c *Client) scrub(s string) string {
	if c.Secrets == nil {
		return s
	}
	return c.Secrets.Scrub(s)
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Client) log() *zap.Logger {
	if c.Log != nil {
		return c.Log
	}
	return zap.NewNop()
}

// Wrap prefixes err with subject and scrubs secrets from the text; the
// result still wraps err for errors.Is.
func (c *Client) Wrap(subject string, err error) error {
	return &scrubbed{msg: c.scrub(subject + ": " + err.Error()), err: err}
}

// scrubbed is an error whose text has the secrets removed; it still wraps
// the original for errors.Is (context.Canceled...).
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
