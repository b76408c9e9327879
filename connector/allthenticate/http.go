package allthenticate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/internal/httpapi"
	"github.com/dirsync/dirsync/identity"
)

const maxBody = 32 << 20

// param is one request parameter, in order.
type param struct {
	k string
	v any // string, int, or bool
}

func (p param) text() string {
	switch v := p.v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(p.v)
}

// call sends one request and returns the body of a 2xx answer. GET
// parameters go in the query; others as configured (params). Any other
// answer, or none, is a classified error; status is the HTTP status (0
// without an answer). A non-idempotent request that may have landed is
// Uncertain.
func (t *Target) call(ctx context.Context, method, path string, ps []param, subject string, idempotent bool) ([]byte, int, error) {
	u := t.base.String() + path
	var body []byte
	ctype := ""
	mode := t.s.Params
	if method == http.MethodGet {
		mode = "query"
	}
	switch mode {
	case "query", "form":
		v := url.Values{}
		for _, p := range ps {
			v.Set(p.k, p.text())
		}
		if mode == "query" {
			if len(v) > 0 {
				u += "?" + v.Encode()
			}
		} else {
			body, ctype = []byte(v.Encode()), "application/x-www-form-urlencoded"
		}
	default:
		m := make(map[string]any, len(ps))
		for _, p := range ps {
			m[p.k] = p.v
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, 0, connector.Permanent(fmt.Errorf("%s: encode: %w", subject, err))
		}
		body, ctype = b, "application/json"
	}
	resp, err := t.http.Do(ctx, httpapi.Request{Method: method, URL: u, Body: body, ContentType: ctype, Idempotent: idempotent, Subject: subject})
	return resp.Body, resp.Status, err
}

// apiMessage returns the error of an {"error": "..."} body, or the bounded
// body text.
func apiMessage(b []byte) string {
	var e map[string]any
	if json.Unmarshal(b, &e) == nil {
		for _, k := range []string{"error", "message", "success"} {
			if s, ok := e[k].(string); ok && s != "" {
				return s
			}
		}
	}
	return httpapi.BodyText(b)
}

func notFoundMessage(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "not found") || strings.Contains(m, "does not exist") || strings.Contains(m, "no such")
}

// rules are Allthenticate's reading of its answers: a missing user may be a
// 404 or a 400 that says so; 401 and 403 are refusals of the API key.
var rules = httpapi.Rules{
	Message: apiMessage,
	NotFound: func(status int, msg string) bool {
		return status == http.StatusNotFound || (status == http.StatusBadRequest && notFoundMessage(msg))
	},
	Denied: func(status int, _ string) bool {
		return status == http.StatusUnauthorized || status == http.StatusForbidden
	},
	Hint: func(status int) string {
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			return "check api_key, header and prefix"
		}
		return ""
	},
}

// apiUser is one entry of /multipleusers.
type apiUser struct {
	EmailID   int        `json:"email_id"`
	UserID    int        `json:"user_id"`
	Email     string     `json:"email"`
	Username  string     `json:"username"`
	FirstName string     `json:"first_name"`
	LastName  string     `json:"last_name"`
	Groups    [][]string `json:"groups"`
	// EmailStatus and ADStatus are the documented status fields; any other
	// suspension_field is read from fields.
	EmailStatus string `json:"email_status"`
	ADStatus    string `json:"ad_status"`
	fields      map[string]any
	// guest is set for entries of the guest list (user_tag=GUEST).
	guest bool
}

func (u apiUser) field(k string) string {
	switch k {
	case "email_status":
		return u.EmailStatus
	case "ad_status":
		return u.ADStatus
	}
	switch v := u.fields[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// listUsers reads GET /multipleusers: the full users, or the guests.
func (t *Target) listUsers(ctx context.Context, guests bool, subject string) ([]apiUser, error) {
	ps := []param{{"email", "true"}}
	if guests {
		ps = append(ps, param{"user_tag", "GUEST"})
	}
	b, _, err := t.call(ctx, http.MethodGet, "/multipleusers", ps, subject, true)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, connector.Retryable(fmt.Errorf("%s: decode users: %w", subject, err))
	}
	out := make([]apiUser, 0, len(raws))
	for _, raw := range raws {
		var u apiUser
		if err := json.Unmarshal(raw, &u); err != nil {
			return nil, connector.Retryable(fmt.Errorf("%s: decode user: %w", subject, err))
		}
		if f := t.s.SuspensionField; f != "email_status" && f != "ad_status" {
			if err := json.Unmarshal(raw, &u.fields); err != nil {
				return nil, connector.Retryable(fmt.Errorf("%s: decode user: %w", subject, err))
			}
		}
		u.guest = guests
		out = append(out, u)
	}
	return out, nil
}

// listAll reads the full users, then the guests: a guest is an account
// too (it can sign in), so it is listed and suspended like a full user.
func (t *Target) listAll(ctx context.Context, subject string) ([]apiUser, error) {
	users, err := t.listUsers(ctx, false, subject+": list users")
	if err != nil {
		return nil, err
	}
	guests, err := t.listUsers(ctx, true, subject+": list guests")
	if err != nil {
		return nil, err
	}
	return append(users, guests...), nil
}

// match finds a's entry: by cached email_id, else by one of the emails.
func match(users []apiUser, a identity.Account, emails ...string) (apiUser, bool) {
	if id := remoteInt(a, RemoteEmailID); id != 0 {
		for _, u := range users {
			if u.EmailID == id {
				return u, true
			}
		}
	}
	for _, e := range append(emails, a.Email) {
		if e == "" {
			continue
		}
		for _, u := range users {
			if strings.EqualFold(u.Email, e) {
				return u, true
			}
		}
	}
	return apiUser{}, false
}

// find reads the user's current entry among the full users, then among
// the guests.
func (t *Target) find(ctx context.Context, a identity.Account, subject string, emails ...string) (apiUser, error) {
	users, err := t.listUsers(ctx, false, subject+": list users")
	if err != nil {
		return apiUser{}, err
	}
	u, ok := match(users, a, emails...)
	if !ok {
		guests, err := t.listUsers(ctx, true, subject+": list guests")
		if err != nil {
			return apiUser{}, err
		}
		u, ok = match(guests, a, emails...)
	}
	if !ok {
		return apiUser{}, connector.NotFound(fmt.Errorf("%s: %q is not a user of the Allthenticate organisation", subject, a.Email))
	}
	return u, nil
}

// ids returns the account's email_id and user_id, from the cache or read.
func (t *Target) ids(ctx context.Context, a *identity.Account, subject string, emails ...string) (emailID, userID int, err error) {
	emailID, userID = remoteInt(*a, RemoteEmailID), remoteInt(*a, RemoteUserID)
	if emailID != 0 && userID != 0 {
		return emailID, userID, nil
	}
	u, err := t.find(ctx, *a, subject, emails...)
	if err != nil {
		return 0, 0, err
	}
	setIDs(a, u)
	return u.EmailID, u.UserID, nil
}

// accountOf is u as an account. A user whose suspension cannot be told
// yet (k) is shown suspended: the reading that keeps access away.
func (t *Target) accountOf(k suspensionKnowledge, u apiUser) identity.Account {
	suspended, known := t.status(k, u)
	a := identity.Account{Username: u.Username, Email: u.Email, GivenName: u.FirstName, FamilyName: u.LastName,
		DisplayName: strings.TrimSpace(u.FirstName + " " + u.LastName), Suspended: suspended || !known, Exists: true}
	setIDs(&a, u)
	if u.guest {
		a.Remote[RemoteTag] = TagGuest
	}
	return a
}
