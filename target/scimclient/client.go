package scimclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/target"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// secrets is the set of credential values scrubbed from every error text:
// the configured ones, and the most recent access tokens issued.
type secrets struct {
	mu     sync.Mutex
	fixed  []string
	tokens []string
}

// maxTokens bounds the remembered access tokens (older ones have expired).
const maxTokens = 8

func (s *secrets) add(v string) { s.put(v, false) }

func (s *secrets) addToken(v string) { s.put(v, true) }

func (s *secrets) put(v string, token bool) {
	if len(v) < 4 {
		return // too short to scrub without mangling messages; never a real credential
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.fixed, v) || slices.Contains(s.tokens, v) {
		return
	}
	if !token {
		s.fixed = append(s.fixed, v)
		return
	}
	s.tokens = append(s.tokens, v)
	if len(s.tokens) > maxTokens {
		s.tokens = slices.Delete(s.tokens, 0, len(s.tokens)-maxTokens)
	}
}

func (s *secrets) scrub(msg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range slices.Concat(s.fixed, s.tokens) {
		msg = strings.ReplaceAll(msg, v, "[REDACTED]")
	}
	return msg
}

// scrubbed is an error whose text has the secrets removed; it still wraps
// the original for errors.Is (context.Canceled...).
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// statusError is a non-2xx answer.
type statusError struct {
	status   int
	scimType string
	msg      string
}

func (e *statusError) Error() string { return e.msg }

// statusOf returns the HTTP status carried by err, or 0.
func statusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.status
	}
	return 0
}

// tokenRecorder remembers every access token it hands out, so they are
// scrubbed from errors too.
type tokenRecorder struct {
	src     oauth2.TokenSource
	secrets *secrets
}

func (r tokenRecorder) Token() (*oauth2.Token, error) {
	tok, err := r.src.Token()
	if err == nil && tok != nil {
		r.secrets.addToken(tok.AccessToken)
	}
	return tok, err
}

// bearer sets a static Authorization header.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r2)
}

// httpClient builds this target's client on top of the engine's base client.
func (t *Target) httpClient(base *http.Client) *http.Client {
	if base == nil {
		base = &http.Client{Timeout: 30 * time.Second}
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc := &http.Client{Timeout: base.Timeout, Jar: base.Jar, CheckRedirect: base.CheckRedirect}
	if o := t.s.Auth.OAuth2; o != nil {
		t.secrets.add(o.ClientSecret.Value())
		// The HTTP Basic form of the client credentials is a secret too
		// (oauth2 escapes both parts before encoding).
		t.secrets.add(base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(o.ClientID) + ":" + url.QueryEscape(o.ClientSecret.Value()))))
		t.secrets.add(base64.StdEncoding.EncodeToString([]byte(o.ClientID + ":" + o.ClientSecret.Value())))
		t.secrets.add(url.QueryEscape(o.ClientSecret.Value()))
		cc := &clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret.Value(), TokenURL: o.TokenURL, Scopes: o.Scopes}
		switch o.AuthStyle {
		case "header":
			cc.AuthStyle = oauth2.AuthStyleInHeader
		case "params":
			cc.AuthStyle = oauth2.AuthStyleInParams
		}
		// The token source keeps this context for every token fetch: it only
		// carries the base client (no deadline); request contexts bound the
		// SCIM calls themselves.
		tctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: rt, Timeout: hc.Timeout})
		src := oauth2.ReuseTokenSource(nil, tokenRecorder{src: cc.TokenSource(tctx), secrets: t.secrets})
		hc.Transport = &oauth2.Transport{Source: src, Base: rt}
		return hc
	}
	t.secrets.add(t.s.Auth.BearerToken.Value())
	hc.Transport = bearer{token: t.s.Auth.BearerToken.Value(), base: rt}
	return hc
}

// req is one SCIM call.
type req struct {
	method string
	path   string // "/Users/abc"
	query  url.Values
	body   any
}

// send performs r; on 2xx it decodes the body into out (when non-nil and the
// body is not empty) and returns the status. Every error is classified and
// scrubbed, and starts with subject.
func (t *Target) send(ctx context.Context, subject string, r req, out any) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, target.Retryable(t.wrap(subject, err))
	}
	u := t.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		b, err := marshal(r.body)
		if err != nil {
			return 0, target.Permanent(t.wrap(subject, err))
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return 0, target.Permanent(t.wrap(subject, err))
	}
	hr.Header.Set("Accept", "application/scim+json, application/json")
	if body != nil {
		hr.Header.Set("Content-Type", "application/scim+json")
	}
	start := t.now()
	resp, err := t.hc.Do(hr)
	if err != nil {
		t.log.Debug("scim request failed", zap.String("method", r.method), zap.String("path", r.path), zap.String("error", t.secrets.scrub(err.Error())))
		return 0, t.transportError(ctx, subject, r.method, err)
	}
	defer resp.Body.Close()
	t.log.Debug("scim request", zap.String("method", r.method), zap.String("path", r.path),
		zap.Int("status", resp.StatusCode), zap.Int64("duration_ms", t.now().Sub(start).Milliseconds()))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, t.httpError(subject, resp)
	}
	if out != nil {
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return resp.StatusCode, target.Retryable(t.wrap(subject, fmt.Errorf("read response: %w", err)))
		}
		if len(bytes.TrimSpace(b)) > 0 {
			if err := json.Unmarshal(b, out); err != nil {
				return resp.StatusCode, target.Permanent(t.wrap(subject, fmt.Errorf("decode response: %w", err)))
			}
		}
	}
	return resp.StatusCode, nil
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// wrap prefixes err with subject and scrubs secrets from the text.
func (t *Target) wrap(subject string, err error) error {
	return &scrubbed{msg: t.secrets.scrub(subject + ": " + err.Error()), err: err}
}

// transportError classifies a failure to get a response: a token endpoint
// refusing the credentials is permanent; a POST that may have reached the
// provider is uncertain; the rest is retryable.
func (t *Target) transportError(ctx context.Context, subject, method string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		st := re.Response.StatusCode
		werr := t.wrap(subject, fmt.Errorf("oauth2 token: %s", strings.TrimSpace(re.Response.Status+" "+re.ErrorCode)))
		switch {
		case st == http.StatusTooManyRequests:
			return target.RateLimited(werr, target.ParseRetryAfter(re.Response.Header.Get("Retry-After"), t.now()))
		case st >= 500 || st == http.StatusRequestTimeout:
			return target.Retryable(werr)
		default:
			return target.Permanent(werr)
		}
	}
	werr := t.wrap(subject, err)
	var oe *net.OpError
	dial := errors.As(err, &oe) && oe.Op == "dial" // nothing was sent
	if method == http.MethodPost && ctx.Err() == nil && !dial {
		return target.Uncertain(werr)
	}
	return target.Retryable(werr)
}

// scimErrorBody is RFC 7644's error response.
type scimErrorBody struct {
	Status   any    `json:"status"`
	ScimType string `json:"scimType"`
	Detail   string `json:"detail"`
}

// httpError classifies a non-2xx answer, keeping the SCIM detail: 429 (and
// 503 with Retry-After) rate limited, 5xx and 408 retryable, 404 not found,
// other 4xx permanent.
func (t *Target) httpError(subject string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var eb scimErrorBody
	detail := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &eb) == nil && (eb.Detail != "" || eb.ScimType != "") {
		detail = eb.Detail
		if eb.ScimType != "" {
			detail = eb.ScimType + ": " + detail
		}
	}
	if len(detail) > 512 {
		detail = detail[:512] + "..."
	}
	msg := fmt.Sprintf("%s: %s", subject, resp.Status)
	if detail != "" {
		msg += ": " + detail
	}
	err := &statusError{status: resp.StatusCode, scimType: eb.ScimType, msg: t.secrets.scrub(msg)}
	ra := resp.Header.Get("Retry-After")
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return target.RateLimited(err, target.ParseRetryAfter(ra, t.now()))
	case resp.StatusCode == http.StatusServiceUnavailable && ra != "":
		return target.RateLimited(err, target.ParseRetryAfter(ra, t.now()))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout:
		return target.Retryable(err)
	case resp.StatusCode == http.StatusNotFound:
		return target.NotFound(err)
	default:
		return target.Permanent(err)
	}
}

// quote renders s as a SCIM filter string literal (a JSON string: quotes
// and backslashes escaped).
func quote(s string) string {
	b, _ := marshal(s)
	return string(b)
}

// eqFilter is `attr eq "value"`.
func eqFilter(attr, value string) string { return attr + " eq " + quote(value) }

// listResponse is RFC 7644's ListResponse.
type listResponse struct {
	TotalResults int               `json:"totalResults"`
	StartIndex   int               `json:"startIndex"`
	ItemsPerPage int               `json:"itemsPerPage"`
	Resources    []json.RawMessage `json:"Resources"`
}

// list pages through a resource listing (startIndex/count, following
// totalResults) and calls fn with each resource.
func (t *Target) list(ctx context.Context, subject, path string, q url.Values, fn func(res map[string]any) error) error {
	if err := t.discover(ctx); err != nil {
		return err
	}
	if q == nil {
		q = url.Values{}
	}
	size := t.pageSize()
	seen := map[string]bool{}
	start := 1
	for page := 0; ; page++ {
		q.Set("startIndex", strconv.Itoa(start))
		q.Set("count", strconv.Itoa(size))
		var lr listResponse
		if _, err := t.send(ctx, subject, req{method: http.MethodGet, path: path, query: q}, &lr); err != nil {
			return err
		}
		fresh := 0
		for _, raw := range lr.Resources {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				return target.Permanent(t.wrap(subject, fmt.Errorf("decode resource: %w", err)))
			}
			id := str(get(m, "id"))
			if id != "" && seen[id] {
				continue
			}
			seen[id] = true
			fresh++
			if err := fn(m); err != nil {
				return err
			}
		}
		n := len(lr.Resources)
		if n > 0 && fresh == 0 {
			return target.Permanent(t.wrap(subject, fmt.Errorf("pagination does not advance at startIndex %d (the provider ignores startIndex)", start)))
		}
		if n == 0 || start-1+n >= lr.TotalResults {
			return nil
		}
		start += n
	}
}

// pageSize is the configured page size capped by the provider's maxResults.
func (t *Target) pageSize() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.maxResults > 0 && t.maxResults < t.s.PageSize {
		return t.maxResults
	}
	return t.s.PageSize
}

// serviceProviderConfig is the part of RFC 7643 §5 we use.
type serviceProviderConfig struct {
	Patch struct {
		Supported bool `json:"supported"`
	} `json:"patch"`
	Filter struct {
		Supported  bool `json:"supported"`
		MaxResults int  `json:"maxResults"`
	} `json:"filter"`
}

// discover reads ServiceProviderConfig once (PATCH support, maxResults). A
// provider without the endpoint (404) is assumed to support PATCH. Failures
// other than 404 are returned and retried on the next call.
func (t *Target) discover(ctx context.Context) error {
	t.mu.Lock()
	done := t.discovered
	t.mu.Unlock()
	if done {
		return nil
	}
	var spc serviceProviderConfig
	_, err := t.send(ctx, "scimclient: discover ServiceProviderConfig", req{method: http.MethodGet, path: "/ServiceProviderConfig"}, &spc)
	found := true
	if err != nil {
		if statusOf(err) != http.StatusNotFound {
			return err
		}
		found = false
		t.log.Warn("the provider has no ServiceProviderConfig; assuming PATCH is supported")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.discovered {
		return nil
	}
	t.discovered = true
	if found {
		if t.s.Patch == "auto" {
			t.patch = spc.Patch.Supported
		}
		t.maxResults = spc.Filter.MaxResults
	}
	t.log.Info("scim provider discovered", zap.Bool("patch", t.patch), zap.Int("max_results", t.maxResults), zap.Bool("service_provider_config", found))
	return nil
}

// usePatch reports whether changes go as PATCH (else read-modify-PUT).
func (t *Target) usePatch() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.patch
}

// patchUnsupported switches to PUT after a provider refused PATCH (405 or
// 501) although it was not told to use it; returns whether it switched.
func (t *Target) patchUnsupported(err error) bool {
	st := statusOf(err)
	if st != http.StatusMethodNotAllowed && st != http.StatusNotImplemented {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.s.Patch != "auto" {
		return false
	}
	if t.patch {
		t.patch = false
		t.log.Warn("the provider refused PATCH; using read-modify-PUT from now on", zap.Int("status", st))
	}
	return true
}

// Open implements target.Opener: it reads ServiceProviderConfig, which also
// checks the credentials.
func (t *Target) Open(ctx context.Context) error {
	return t.discover(ctx)
}

// --- generic JSON helpers (SCIM attribute names are case-insensitive) ---

// keyOf returns the key of m equal to k ignoring case, or k.
func keyOf(m map[string]any, k string) string {
	if _, ok := m[k]; ok {
		return k
	}
	for mk := range m {
		if strings.EqualFold(mk, k) {
			return mk
		}
	}
	return k
}

func get(m map[string]any, k string) any {
	if m == nil {
		return nil
	}
	return m[keyOf(m, k)]
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func arr(v any) []any {
	a, _ := v.([]any)
	return a
}
