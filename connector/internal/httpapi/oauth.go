package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/dirsync/dirsync/connector"
	"golang.org/x/oauth2"
)

// TokenError classifies an OAuth2 token endpoint's refusal (no API request
// was sent): 429, and 503 with Retry-After, rate limited; other 5xx and 408
// retryable; anything else permanent, with hint. The endpoint's body is
// never quoted (it may echo credentials). It returns nil when err is not a
// token endpoint's answer.
func (c *Client) TokenError(subject string, err error, hint string) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return nil
	}
	code := re.Response.StatusCode
	e := fmt.Errorf("%s: oauth2 token: %s", subject, c.scrub(strings.TrimSpace(re.Response.Status+" "+re.ErrorCode)))
	ra := re.Response.Header.Get("Retry-After")
	switch {
	case code == http.StatusTooManyRequests || (code == http.StatusServiceUnavailable && ra != ""):
		return connector.RateLimited(e, connector.ParseRetryAfter(ra, c.now()))
	case code >= 500 || code == http.StatusRequestTimeout:
		return connector.Retryable(e)
	case hint != "":
		return connector.Permanent(fmt.Errorf("%w (%s)", e, hint))
	default:
		return connector.Permanent(e)
	}
}
