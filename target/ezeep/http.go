package ezeep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/internal/httpapi"
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
	if err := t.http.CheckLease("ezeep: oauth token"); err != nil {
		return "", err
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
// repeating the request is harmless.
func (t *Target) call(ctx context.Context, method, u string, body any, subject string, idempotent bool) ([]byte, int, error) {
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
		resp, err := t.http.Do(ctx, httpapi.Request{Method: method, URL: u, Body: payload, Idempotent: idempotent, Subject: subject,
			Header: http.Header{"Authorization": {"Bearer " + tok}}})
		if resp.Status == http.StatusUnauthorized && try == 0 {
			t.dropToken(tok)
			continue
		}
		return resp.Body, resp.Status, err
	}
}

// rules are ezeep's reading of its answers (Django REST framework bodies).
var rules = httpapi.Rules{
	Message: apiMessage,
	Denied: func(status int, _ string) bool {
		return status == http.StatusForbidden
	},
	Hint: func(status int) string {
		if status == http.StatusUnauthorized {
			return "a fresh token was refused too"
		}
		return ""
	},
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
	return httpapi.BodyText(b)
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
