package netmaker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/internal/httpapi"
)

// raw sends one request through the shared HTTP layer and returns the body
// of a 2xx answer; any other answer, or none, is a classified error. status
// is the HTTP status (0 without an answer).
func (t *Target) raw(ctx context.Context, method, path string, q url.Values, body any, subject string, idempotent bool) ([]byte, int, error) {
	u := t.base.String() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, 0, target.Permanent(t.http.Wrap(subject+": encode", err))
		}
	}
	if method != http.MethodGet {
		t.mu.Lock()
		t.fresh = nil // a write: the list discover kept is stale
		t.mu.Unlock()
	}
	resp, err := t.http.Do(ctx, httpapi.Request{Method: method, URL: u, Body: b, Idempotent: idempotent, Subject: subject})
	return resp.Body, resp.Status, err
}

// rules are Netmaker's own reading of its answers: errors are
// {"Code","Message"}; a missing user is HTTP 500 "record not found"; a 404
// is a route the server does not have; permission refusals come as 400,
// 401, 403 and even 500.
var rules = httpapi.Rules{
	Message: apiMessage,
	NotFound: func(status int, msg string) bool {
		return status == http.StatusInternalServerError && strings.Contains(strings.ToLower(msg), "record not found")
	},
	Denied: denied,
	Hint: func(status int) string {
		switch status {
		case http.StatusUnauthorized:
			return "is the token valid? Netmaker revokes a user's access tokens when that user's role or groups change"
		case http.StatusNotFound:
			return "no such route: an older or community-edition server?"
		}
		return ""
	},
}

// refusals are the phrases of Netmaker's permission refusals (v1.5.1).
var refusals = []string{
	"admin cannot", "superadmin cannot", "super-admin", "superadmin", "cannot disable self", "cannot enable self",
	"cannot delete idp user", "cannot be updated for external user", "external identity provider",
	"does not have permission", "not allowed", "not permitted", "forbidden", "access denied", "unauthorized",
	"token revoked", "user account disabled", "only superadmin", "requires the master",
}

// denied reports whether an answer is a permission refusal: every 401 and
// 403, and the refusals Netmaker sends as 400 or 500.
func denied(status int, msg string) bool {
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		return true
	}
	m := strings.ToLower(msg)
	for _, r := range refusals {
		if strings.Contains(m, r) {
			return true
		}
	}
	return false
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
	return httpapi.BodyText(b)
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
