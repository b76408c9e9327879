package netmaker

import (
	"bytes"
	"context"
	"encoding/json"
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

const maxBody = 32 << 20

// raw sends one request and returns the body of a 2xx answer. Any other
// answer, or no answer, is a classified error; status is the HTTP status
// (0 without an answer). idempotent says whether repeating the request is
// harmless: a non-idempotent request that got no answer is Uncertain.
func (t *Target) raw(ctx context.Context, method, path string, q url.Values, body any, subject string, idempotent bool) ([]byte, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, target.Retryable(fmt.Errorf("%s: %w", subject, err))
	}
	u := t.base.String() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, target.Permanent(fmt.Errorf("%s: encode: %w", subject, err))
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, 0, target.Permanent(fmt.Errorf("%s: %w", subject, err))
	}
	req.Header.Set("Authorization", "Bearer "+t.s.Token.Value())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := t.client.Do(req)
	if err != nil {
		err = t.transportError(ctx, subject, err, idempotent)
		t.log.Debug("netmaker request failed", zap.String("method", method), zap.String("path", path), zap.Duration("duration", time.Since(start)), zap.Error(err))
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	t.log.Debug("netmaker request", zap.String("method", method), zap.String("path", path), zap.Int("status", resp.StatusCode), zap.Duration("duration", time.Since(start)))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.StatusCode, t.classify(subject, resp, b)
	}
	if rerr != nil {
		if idempotent {
			return nil, resp.StatusCode, target.Retryable(fmt.Errorf("%s: reading the answer: %s", subject, t.scrub.Replace(rerr.Error())))
		}
		return nil, resp.StatusCode, target.Uncertain(fmt.Errorf("%s: applied (%s) but reading the answer failed: %s", subject, resp.Status, t.scrub.Replace(rerr.Error())))
	}
	return b, resp.StatusCode, nil
}

func (t *Target) transportError(ctx context.Context, subject string, err error, idempotent bool) error {
	if ctx.Err() != nil {
		return target.Retryable(fmt.Errorf("%s: %w", subject, ctx.Err()))
	}
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error() // the URL carries no secret, but keep it short
	}
	e := fmt.Errorf("%s: no answer: %s", subject, t.scrub.Replace(msg))
	if !idempotent {
		return target.Uncertain(fmt.Errorf("%w (it may have been applied)", e))
	}
	return target.Retryable(e)
}

// apiMessage returns the Message of Netmaker's {"Code","Message"} error
// body, or the bounded body text.
func apiMessage(b []byte) string {
	var e struct {
		Code    int    `json:"Code"`
		Message string `json:"Message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// classify turns a non-2xx answer into a classified error.
func (t *Target) classify(subject string, resp *http.Response, body []byte) error {
	msg := t.scrub.Replace(apiMessage(body))
	err := fmt.Errorf("%s: %s: %s", subject, resp.Status, msg)
	ra := target.ParseRetryAfter(resp.Header.Get("Retry-After"), t.now())
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		return target.RateLimited(err, ra)
	case code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		return target.RateLimited(err, ra)
	case code == http.StatusInternalServerError && strings.Contains(strings.ToLower(msg), "record not found"):
		return target.NotFound(err)
	case code >= 500 || code == http.StatusRequestTimeout:
		return target.Retryable(err)
	case code == http.StatusUnauthorized:
		return target.Permanent(fmt.Errorf("%w (is the token valid? Netmaker revokes a user's access tokens when that user's role or groups change)", err))
	case code == http.StatusNotFound:
		return target.Permanent(fmt.Errorf("%w (no such route: an older or community-edition server?)", err))
	default:
		return target.Permanent(err)
	}
}

// decodeResponse decodes either Netmaker's {"Code","Message","Response"}
// envelope (into its Response) or a bare value.
func decodeResponse(b []byte, out any) error {
	var env map[string]json.RawMessage
	if json.Unmarshal(b, &env) == nil {
		if r, ok := env["Response"]; ok {
			if _, hasCode := env["Code"]; hasCode {
				return json.Unmarshal(r, out)
			}
		}
	}
	return json.Unmarshal(b, out)
}
