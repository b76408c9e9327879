package ezeep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/target"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

const maxBody = 32 << 20

// token returns a valid access token, fetching one when there is none or
// it expired.
func (t *Target) token(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", target.Retryable(fmt.Errorf("ezeep: oauth token: %w", err))
	}
	t.tokMu.Lock()
	defer t.tokMu.Unlock()
	if t.tok.Valid() {
		return t.tok.AccessToken, nil
	}
	tok, err := t.cc.Token(context.WithValue(ctx, oauth2.HTTPClient, t.client))
	if err != nil {
		return "", t.tokenError(ctx, err)
	}
	t.remember(tok.AccessToken)
	t.tok = tok
	t.log.Debug("ezeep token fetched", zap.Time("expiry", tok.Expiry))
	return tok.AccessToken, nil
}

// dropToken forgets tok (the API refused it) so the next call fetches one.
func (t *Target) dropToken(tok string) {
	t.tokMu.Lock()
	defer t.tokMu.Unlock()
	if t.tok != nil && t.tok.AccessToken == tok {
		t.tok = nil
	}
}

// tokenError classifies a failed token request without quoting the token
// endpoint's body.
func (t *Target) tokenError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return target.Retryable(fmt.Errorf("ezeep: oauth token: %w", ctx.Err()))
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.Response.StatusCode
		e := fmt.Errorf("ezeep: oauth token: %s %s", re.Response.Status, t.clean(re.ErrorCode))
		switch {
		case code == http.StatusTooManyRequests || (code == http.StatusServiceUnavailable && re.Response.Header.Get("Retry-After") != ""):
			return target.RateLimited(e, target.ParseRetryAfter(re.Response.Header.Get("Retry-After"), t.now()))
		case code >= 500 || code == http.StatusRequestTimeout:
			return target.Retryable(e)
		default:
			return target.Permanent(fmt.Errorf("%w (check client_id and client_secret)", e))
		}
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	return target.Retryable(fmt.Errorf("ezeep: oauth token: %s", t.clean(msg)))
}

// call sends one API request and returns the body of a 2xx answer. Any
// other answer, or none, is a classified error; status is the HTTP status
// (0 without an answer). A 401 drops the token and sends the request once
// more with a fresh one (a 401 was not applied). idempotent says whether
// repeating the request is harmless: a non-idempotent request that got no
// answer is Uncertain.
func (t *Target) call(ctx context.Context, method, u string, body any, subject string, idempotent bool) ([]byte, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, target.Retryable(fmt.Errorf("%s: %w", subject, err))
	}
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, target.Permanent(fmt.Errorf("%s: encode: %w", subject, err))
		}
		payload = b
	}
	for try := 0; ; try++ {
		tok, err := t.token(ctx)
		if err != nil {
			return nil, 0, err
		}
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, u, rd)
		if err != nil {
			return nil, 0, target.Permanent(fmt.Errorf("%s: %w", subject, err))
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Accept", "application/json")
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := t.client.Do(req)
		if err != nil {
			err = t.transportError(ctx, subject, err, idempotent)
			t.log.Debug("ezeep request failed", zap.String("method", method), zap.String("path", req.URL.Path), zap.Duration("duration", time.Since(start)), zap.Error(err))
			return nil, 0, err
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		t.log.Debug("ezeep request", zap.String("method", method), zap.String("path", req.URL.Path), zap.Int("status", resp.StatusCode), zap.Duration("duration", time.Since(start)))
		if resp.StatusCode == http.StatusUnauthorized && try == 0 {
			t.dropToken(tok)
			continue
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return nil, resp.StatusCode, t.classify(subject, resp, b)
		}
		if rerr != nil {
			if idempotent {
				return nil, resp.StatusCode, target.Retryable(fmt.Errorf("%s: reading the answer: %s", subject, t.clean(rerr.Error())))
			}
			return nil, resp.StatusCode, target.Uncertain(fmt.Errorf("%s: applied (%s) but reading the answer failed: %s", subject, resp.Status, t.clean(rerr.Error())))
		}
		return b, resp.StatusCode, nil
	}
}

func (t *Target) transportError(ctx context.Context, subject string, err error, idempotent bool) error {
	if ctx.Err() != nil {
		if !idempotent {
			return target.Uncertain(fmt.Errorf("%s: %w (it may have been applied)", subject, ctx.Err()))
		}
		return target.Retryable(fmt.Errorf("%s: %w", subject, ctx.Err()))
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	e := fmt.Errorf("%s: no answer: %s", subject, t.clean(msg))
	if !idempotent {
		return target.Uncertain(fmt.Errorf("%w (it may have been applied)", e))
	}
	return target.Retryable(e)
}

// apiMessage renders a Django REST framework error body ({"detail": ...}
// or {"field": ["..."]}) or the bounded body text.
func apiMessage(b []byte) string {
	var d struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(b, &d) == nil && d.Detail != "" {
		return d.Detail
	}
	var fields map[string]any
	if json.Unmarshal(b, &fields) == nil && len(fields) > 0 {
		var parts []string
		for k, v := range fields {
			switch x := v.(type) {
			case []any:
				var ms []string
				for _, m := range x {
					ms = append(ms, fmt.Sprint(m))
				}
				parts = append(parts, k+": "+strings.Join(ms, " "))
			default:
				parts = append(parts, fmt.Sprintf("%s: %v", k, x))
			}
		}
		slices.Sort(parts)
		return strings.Join(parts, "; ")
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// classify turns a non-2xx answer into a classified error.
func (t *Target) classify(subject string, resp *http.Response, body []byte) error {
	err := fmt.Errorf("%s: %s: %s", subject, resp.Status, t.clean(apiMessage(body)))
	ra := target.ParseRetryAfter(resp.Header.Get("Retry-After"), t.now())
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		return target.RateLimited(err, ra)
	case code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		return target.RateLimited(err, ra)
	case code >= 500 || code == http.StatusRequestTimeout:
		return target.Retryable(err)
	case code == http.StatusNotFound:
		return target.NotFound(err)
	case code == http.StatusUnauthorized:
		return target.Permanent(fmt.Errorf("%w (a fresh token was refused too)", err))
	case code == http.StatusForbidden:
		return target.Permanent(fmt.Errorf("%w (is the OAuth client an organisation admin?)", err))
	default:
		return target.Permanent(err)
	}
}

// page is one page of a list.
type page struct {
	Count   int               `json:"count"`
	Next    *string           `json:"next"`
	Results []json.RawMessage `json:"results"`
}

// walk lists base+path page by page (perPage items a page), following next
// until it is null, and calls fn for every item; fn returning true stops
// the walk.
func (t *Target) walk(ctx context.Context, base *url.URL, path string, perPage int, subject string, fn func(json.RawMessage) (bool, error)) error {
	u := base.String() + path + "?" + url.Values{"page": {"1"}, "per_page": {fmt.Sprint(perPage)}}.Encode()
	seen := map[string]bool{}
	for u != "" {
		if seen[u] {
			return target.Permanent(fmt.Errorf("%s: the list's next link loops (%s)", subject, u))
		}
		seen[u] = true
		b, _, err := t.call(ctx, http.MethodGet, u, nil, subject, true)
		if err != nil {
			return err
		}
		var p page
		if err := json.Unmarshal(b, &p); err != nil {
			return target.Retryable(fmt.Errorf("%s: decode page: %w", subject, err))
		}
		for _, raw := range p.Results {
			stop, err := fn(raw)
			if err != nil {
				return err
			}
			if stop {
				return nil
			}
		}
		u = ""
		if p.Next != nil && *p.Next != "" {
			nu, err := base.Parse(*p.Next)
			if err != nil || nu.Host != base.Host {
				// Never send the token to another host.
				return target.Permanent(fmt.Errorf("%s: next link %q is not on %s", subject, *p.Next, base.Host))
			}
			nu.Scheme = base.Scheme
			u = nu.String()
		}
	}
	return nil
}
