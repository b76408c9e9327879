package scimclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/internal/httpapi"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenRecorder remembers every access token it hands out, so they are
// scrubbed from errors too.
type tokenRecorder struct {
	src     oauth2.TokenSource
	secrets *httpapi.Secrets
}

func (r tokenRecorder) Token() (*oauth2.Token, error) {
	tok, err := r.src.Token()
	if err == nil && tok != nil {
		r.secrets.AddToken(tok.AccessToken)
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
		t.secrets.Add(o.ClientSecret.Value())
		// The HTTP Basic form of the client credentials is a secret too
		// (oauth2 escapes both parts before encoding).
		t.secrets.Add(base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(o.ClientID) + ":" + url.QueryEscape(o.ClientSecret.Value()))))
		t.secrets.Add(base64.StdEncoding.EncodeToString([]byte(o.ClientID + ":" + o.ClientSecret.Value())))
		t.secrets.Add(url.QueryEscape(o.ClientSecret.Value()))
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
	t.secrets.Add(t.s.Auth.BearerToken.Value())
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

// send performs r through the shared HTTP layer; on 2xx it decodes the
// body into out (when non-nil and the body is not empty) and returns the
// status. Every error is classified and scrubbed, and starts with subject.
// POST is the one non-idempotent method.
func (t *Target) send(ctx context.Context, subject string, r req, out any) (int, error) {
	u := t.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body []byte
	if r.body != nil {
		b, err := marshal(r.body)
		if err != nil {
			return 0, target.Permanent(t.wrap(subject, err))
		}
		body = b
	}
	resp, err := t.http.Do(ctx, httpapi.Request{Method: r.method, URL: u, Body: body, ContentType: "application/scim+json",
		Idempotent: r.method != http.MethodPost, Subject: subject})
	if err != nil {
		if resp.Status == 0 {
			if terr := t.tokenError(subject, err); terr != nil {
				return 0, terr
			}
		}
		return resp.Status, err
	}
	if out != nil && len(bytes.TrimSpace(resp.Body)) > 0 {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return resp.Status, target.Permanent(t.wrap(subject, fmt.Errorf("decode response: %w", err)))
		}
	}
	return resp.Status, nil
}

// statusOf returns the HTTP status carried by err, or 0.
func statusOf(err error) int { return httpapi.StatusOf(err) }

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
func (t *Target) wrap(subject string, err error) error { return t.http.Wrap(subject, err) }

// tokenError classifies a token endpoint's refusal (no SCIM request was
// sent): rate limited, retryable for 5xx and 408, else permanent. It
// returns nil when err is not one.
func (t *Target) tokenError(subject string, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return nil
	}
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

// scimErrorBody is RFC 7644's error response.
type scimErrorBody struct {
	Status   any    `json:"status"`
	ScimType string `json:"scimType"`
	Detail   string `json:"detail"`
}

// scimMessage renders an RFC 7644 error body ("scimType: detail").
func scimMessage(b []byte) string {
	var eb scimErrorBody
	if json.Unmarshal(b, &eb) == nil && (eb.Detail != "" || eb.ScimType != "") {
		detail := eb.Detail
		if eb.ScimType != "" {
			detail = eb.ScimType + ": " + detail
		}
		if len(detail) > 512 {
			detail = detail[:512] + "..."
		}
		return detail
	}
	return ""
}

// rules are SCIM's reading of its answers: RFC 7644 error bodies; 404 is
// not found; 401 and 403 refuse the credentials.
var rules = httpapi.Rules{
	Message: scimMessage,
	Denied: func(status int, _ string) bool {
		return status == http.StatusUnauthorized || status == http.StatusForbidden
	},
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
