package scimpull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/time/rate"
)

// maxBody bounds one response body (a page of 10,000 fat users fits).
const maxBody = 256 << 20

// authorizer adds credentials to a request.
type authorizer interface {
	authorize(ctx context.Context, r *http.Request) error
}

type bearer string

func (b bearer) authorize(_ context.Context, r *http.Request) error {
	r.Header.Set("Authorization", "Bearer "+string(b))
	return nil
}

// oauthAuth fetches (and caches, through the token source's own cache) an
// OAuth 2.0 client-credentials token.
type oauthAuth struct {
	ts oauth2.TokenSource
}

func newOAuth(cc clientcredentials.Config, hc *http.Client) oauthAuth {
	// The token source keeps the context for its refreshes: only the
	// HTTP client travels in it, never a request's deadline.
	return oauthAuth{ts: cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc))}
}

func (o oauthAuth) authorize(_ context.Context, r *http.Request) error {
	tok, err := o.ts.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return backoff.Permanent(fmt.Errorf("oauth token: %d %s", re.Response.StatusCode, re.ErrorCode))
		}
		return fmt.Errorf("oauth token: %w", err)
	}
	tok.SetAuthHeader(r)
	return nil
}

// client is a thin, read-only SCIM client: GETs with rate limit, retries
// (Retry-After honoured) and paging that refuses an inconsistent provider.
type client struct {
	name     string
	base     string
	hc       *http.Client
	auth     authorizer
	lim      *rate.Limiter
	retries  uint
	pageSize int
	paging   string
	log      *zap.Logger
	requests atomic.Int64
}

func newClient(name, base string, hc *http.Client, auth authorizer, s Settings, o Options) *client {
	return &client{
		name: name, base: base, hc: hc, auth: auth,
		lim:     rate.NewLimiter(rate.Limit(s.RateLimit), max(1, int(s.RateLimit))),
		retries: uint(*s.Retries) + 1, pageSize: s.PageSize, paging: s.Paging, log: o.Logger,
	}
}

// statusError is a SCIM error answer.
type statusError struct {
	status int
	detail string
}

func (e *statusError) Error() string {
	if e.detail != "" {
		return fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.detail)
	}
	return fmt.Sprintf("%d %s", e.status, http.StatusText(e.status))
}

// get fetches path (relative to the base) with query q and decodes the JSON
// answer into out. It returns the answer's Date header.
func (c *client) get(ctx context.Context, path string, q url.Values, out any) (time.Time, error) {
	u := c.base + "/" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var date time.Time
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		if err := c.lim.Wait(ctx); err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		req.Header.Set("Accept", "application/scim+json, application/json")
		if err := c.auth.authorize(ctx, req); err != nil {
			return struct{}{}, err
		}
		c.requests.Add(1)
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return struct{}{}, backoff.Permanent(ctx.Err())
			}
			return struct{}{}, err // network: retried
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		if err != nil {
			return struct{}{}, fmt.Errorf("reading answer: %w", err)
		}
		if len(body) > maxBody {
			return struct{}{}, backoff.Permanent(fmt.Errorf("answer larger than %d MB", maxBody>>20))
		}
		if resp.StatusCode/100 != 2 {
			se := &statusError{status: resp.StatusCode, detail: scimDetail(body)}
			switch {
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
				if s, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
					c.log.Info("scim pull: provider asks to wait", zap.String("source", c.name), zap.Int("status", resp.StatusCode), zap.Int("retry_after_s", s))
					return struct{}{}, backoff.RetryAfter(s)
				}
				return struct{}{}, se
			case resp.StatusCode >= 500:
				return struct{}{}, se
			default:
				return struct{}{}, backoff.Permanent(se)
			}
		}
		if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
			date = d
		}
		if err := json.Unmarshal(body, out); err != nil {
			return struct{}{}, backoff.Permanent(fmt.Errorf("answer is not SCIM JSON: %w", err))
		}
		return struct{}{}, nil
	}, backoff.WithMaxTries(c.retries), backoff.WithBackOff(newBackoff()), backoff.WithMaxElapsedTime(10*time.Minute))
	if err != nil {
		return time.Time{}, fmt.Errorf("GET %s: %w", path, err)
	}
	return date, nil
}

func newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	b.MaxInterval = 10 * time.Second
	return b
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(h string) (int, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return max(s, 1), true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(int(time.Until(t).Seconds()+0.999), 1), true
	}
	return 0, false
}

// scimDetail returns the detail of a SCIM error body, shortened.
func scimDetail(body []byte) string {
	var e struct {
		Detail   string `json:"detail"`
		ScimType string `json:"scimType"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Detail != "" || e.ScimType != "") {
		d := strings.TrimSpace(e.ScimType + " " + e.Detail)
		if len(d) > 300 {
			d = d[:300] + "…"
		}
		return d
	}
	return ""
}

// isInvalidFilter tells whether err is the provider refusing a filter.
func isInvalidFilter(err error) bool {
	var se *statusError
	return errors.As(err, &se) && (se.status == http.StatusBadRequest || se.status == http.StatusNotImplemented || se.status == http.StatusForbidden)
}

// pagingMode decides the paging mode (auto asks /ServiceProviderConfig) and
// returns the provider's clock at the start of the read (zero if unknown).
func (c *client) pagingMode(ctx context.Context) (string, time.Time, error) {
	var spc struct {
		Pagination *struct {
			Cursor bool `json:"cursor"`
			Index  bool `json:"index"`
		} `json:"pagination"`
	}
	date, err := c.get(ctx, "ServiceProviderConfig", nil, &spc)
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusNotFound {
			// Some providers serve no ServiceProviderConfig: index paging.
			if c.paging == PagingCursor {
				return PagingCursor, time.Time{}, nil
			}
			return PagingIndex, time.Time{}, nil
		}
		return "", time.Time{}, err
	}
	mode := c.paging
	if mode == PagingAuto {
		mode = PagingIndex
		if spc.Pagination != nil && spc.Pagination.Cursor {
			mode = PagingCursor
		}
	}
	return mode, date, nil
}

// listPage is a SCIM ListResponse.
type listPage struct {
	TotalResults *int              `json:"totalResults"`
	ItemsPerPage *int              `json:"itemsPerPage"`
	StartIndex   *int              `json:"startIndex"`
	NextCursor   string            `json:"nextCursor"`
	Resources    []json.RawMessage `json:"Resources"`
}

// list reads every resource of kind (Users, Groups) matching filter. It
// refuses a provider that returns more than the count asked, changes
// totalResults while paging, repeats a resource, or ends short.
func (c *client) list(ctx context.Context, kind, filter, mode string) ([]resource, error) {
	var out []resource
	seen := map[string]struct{}{}
	total := -1
	start, cursor := 1, ""
	for page := 0; ; page++ {
		q := url.Values{"count": {strconv.Itoa(c.pageSize)}}
		if filter != "" {
			q.Set("filter", filter)
		}
		if mode == PagingCursor {
			q.Set("cursor", cursor)
		} else {
			q.Set("startIndex", strconv.Itoa(start))
		}
		var lp listPage
		if _, err := c.get(ctx, kind, q, &lp); err != nil {
			return nil, err
		}
		if len(lp.Resources) > c.pageSize {
			return nil, fmt.Errorf("%s: the provider ignores count: asked for %d, got %d on page %d (refusing a read that cannot be paged reliably)", kind, c.pageSize, len(lp.Resources), page+1)
		}
		if lp.TotalResults != nil {
			switch {
			case total < 0:
				total = *lp.TotalResults
			case *lp.TotalResults != total:
				return nil, fmt.Errorf("%s: totalResults changed while paging, from %d to %d on page %d (the tenant changed during the read or the provider counts inconsistently); the read is refused and retried on the next run", kind, total, *lp.TotalResults, page+1)
			}
		} else if mode == PagingIndex {
			return nil, fmt.Errorf("%s: the provider sent no totalResults: a short read could not be told from a complete one", kind)
		}
		for _, raw := range lp.Resources {
			r, err := parseResource(raw)
			if err != nil {
				return nil, fmt.Errorf("%s page %d: %w", kind, page+1, err)
			}
			if _, dup := seen[r.ID]; dup {
				return nil, fmt.Errorf("%s: resource %q returned twice while paging (the provider's order is not stable); the read is refused", kind, r.ID)
			}
			seen[r.ID] = struct{}{}
			out = append(out, r)
		}
		if mode == PagingCursor {
			if lp.NextCursor == "" {
				break
			}
			if lp.NextCursor == cursor {
				return nil, fmt.Errorf("%s: the provider returned the same cursor twice", kind)
			}
			cursor = lp.NextCursor
			continue
		}
		if len(out) >= total {
			break
		}
		if len(lp.Resources) == 0 {
			return nil, fmt.Errorf("%s: the provider returned an empty page at startIndex %d before its totalResults %d (short read refused)", kind, start, total)
		}
		start += len(lp.Resources)
	}
	if total >= 0 && len(out) != total {
		return nil, fmt.Errorf("%s: read %d resources but the provider's totalResults is %d (short read refused)", kind, len(out), total)
	}
	return out, nil
}

// getOne reads one resource by id; found is false on 404.
func (c *client) getOne(ctx context.Context, kind, id string) (resource, bool, error) {
	var raw json.RawMessage
	if _, err := c.get(ctx, kind+"/"+url.PathEscape(id), nil, &raw); err != nil {
		var se *statusError
		if errors.As(err, &se) && se.status == http.StatusNotFound {
			return resource{}, false, nil
		}
		return resource{}, false, err
	}
	r, err := parseResource(raw)
	return r, err == nil, err
}
