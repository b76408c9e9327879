package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	stdsync "sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// Roles, in increasing power.
const (
	roleNone     = 0
	roleViewer   = 1
	roleApprover = 2
)

func roleName(r int) string {
	switch r {
	case roleApprover:
		return "approver"
	case roleViewer:
		return "viewer"
	}
	return "none"
}

const (
	sessionCookie = "dirsync_session"
	loginCookie   = "dirsync_login"
)

// session is what the signed session cookie carries.
type session struct {
	Subject string `json:"sub"`
	Name    string `json:"name"`
	Role    int    `json:"role"`
	CSRF    string `json:"csrf"`
	Expires int64  `json:"exp"`
}

// loginState is what the signed login cookie carries between the redirect
// to the IdP and the callback.
type loginState struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	// CSRF protects the admin-token form, which has no session yet.
	CSRF    string `json:"csrf"`
	Expires int64  `json:"exp"`
}

// authenticator signs cookies, runs the OIDC code flow and maps claims to roles.
type authenticator struct {
	o      Options
	base   *url.URL
	key    []byte
	ttl    time.Duration
	secure bool

	mu       stdsync.Mutex
	provider *oidc.Provider
}

func newAuthenticator(o Options, base *url.URL) (*authenticator, error) {
	a := &authenticator{o: o, base: base, ttl: o.Config.SessionTTL.D(), secure: true}
	if a.ttl <= 0 {
		a.ttl = 8 * time.Hour
	}
	if k := o.Config.SessionKey.Value(); k != "" {
		a.key = []byte(k)
	} else {
		a.key = make([]byte, 32)
		if _, err := rand.Read(a.key); err != nil {
			return nil, fmt.Errorf("console: session key: %w", err)
		}
	}
	return a, nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// seal signs v as base64(json).base64(hmac).
func (a *authenticator) seal(v any) string {
	b, _ := json.Marshal(v)
	p := base64.RawURLEncoding.EncodeToString(b)
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// open checks the signature and decodes into v.
func (a *authenticator) open(s string, v any) error {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != '.' {
			continue
		}
		p, sig := s[:i], s[i+1:]
		got, err := base64.RawURLEncoding.DecodeString(sig)
		if err != nil {
			return errors.New("bad signature")
		}
		m := hmac.New(sha256.New, a.key)
		m.Write([]byte(p))
		if !hmac.Equal(got, m.Sum(nil)) {
			return errors.New("bad signature")
		}
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
	return errors.New("malformed")
}

func (a *authenticator) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/ui/", HttpOnly: true, Secure: a.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge.Seconds())})
}

func (a *authenticator) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/ui/", HttpOnly: true, Secure: a.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// current returns the request's valid session, if any.
func (a *authenticator) current(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	var s session
	if a.open(c.Value, &s) != nil || time.Unix(s.Expires, 0).Before(a.o.Now()) || s.Role == roleNone {
		return session{}, false
	}
	return s, true
}

func (a *authenticator) startSession(w http.ResponseWriter, sub, name string, role int) {
	s := session{Subject: sub, Name: name, Role: role, CSRF: randomToken(), Expires: a.o.Now().Add(a.ttl).Unix()}
	a.setCookie(w, sessionCookie, a.seal(s), a.ttl)
}

// loginState returns the login cookie's state, creating one when missing
// or invalid.
func (a *authenticator) loginState(w http.ResponseWriter, r *http.Request) loginState {
	if c, err := r.Cookie(loginCookie); err == nil {
		var ls loginState
		if a.open(c.Value, &ls) == nil && time.Unix(ls.Expires, 0).After(a.o.Now()) {
			return ls
		}
	}
	ls := loginState{CSRF: randomToken(), Expires: a.o.Now().Add(10 * time.Minute).Unix()}
	a.setCookie(w, loginCookie, a.seal(ls), 10*time.Minute)
	return ls
}

func (a *authenticator) oidcEnabled() bool { return a.o.Config.OIDC.Issuer != "" }

// oauth returns the provider (discovered once, on first use) and the
// OAuth2 client config.
func (a *authenticator) oauth(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	oc := a.o.Config.OIDC
	if a.provider == nil {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, a.o.HTTPClient), oc.Issuer)
		if err != nil {
			return nil, nil, fmt.Errorf("console: OIDC discovery at %s: %w", oc.Issuer, err)
		}
		a.provider = p
	}
	scopes := oc.Scopes
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups"}
	}
	cfg := &oauth2.Config{ClientID: oc.ClientID, ClientSecret: oc.ClientSecret.Value(), Endpoint: a.provider.Endpoint(),
		RedirectURL: a.base.JoinPath("auth/callback").String(), Scopes: scopes}
	return a.provider, cfg, nil
}

// startOIDC redirects to the IdP with state, nonce and a PKCE challenge.
func (a *authenticator) startOIDC(w http.ResponseWriter, r *http.Request) {
	if !a.oidcEnabled() {
		http.Error(w, "OIDC sign-in is not configured", http.StatusNotFound)
		return
	}
	_, cfg, err := a.oauth(r.Context())
	if err != nil {
		a.o.Logger.Error("console: sign-in", zap.Error(err))
		http.Error(w, "the identity provider cannot be reached; see the daemon's log", http.StatusBadGateway)
		return
	}
	ls := loginState{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), CSRF: randomToken(),
		Expires: a.o.Now().Add(10 * time.Minute).Unix()}
	a.setCookie(w, loginCookie, a.seal(ls), 10*time.Minute)
	u := cfg.AuthCodeURL(ls.State, oidc.Nonce(ls.Nonce), oauth2.S256ChallengeOption(ls.Verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// errSignIn is a sign-in refusal whose message is safe to show.
type errSignIn struct{ msg string }

func (e errSignIn) Error() string { return e.msg }

// finishOIDC checks the callback: state, code exchange with the PKCE
// verifier, the ID token's signature, issuer, audience, expiry and nonce,
// then maps the role claim to a role.
func (a *authenticator) finishOIDC(w http.ResponseWriter, r *http.Request) (sub, name string, role int, err error) {
	c, cerr := r.Cookie(loginCookie)
	var ls loginState
	if cerr != nil || a.open(c.Value, &ls) != nil || time.Unix(ls.Expires, 0).Before(a.o.Now()) || ls.State == "" {
		return "", "", 0, errSignIn{"the sign-in took too long or was started elsewhere; start again"}
	}
	a.clearCookie(w, loginCookie)
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return "", "", 0, errSignIn{"the identity provider refused the sign-in: " + e}
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(ls.State)) != 1 {
		return "", "", 0, errSignIn{"sign-in state mismatch; start again"}
	}
	ctx := oidc.ClientContext(r.Context(), a.o.HTTPClient)
	p, cfg, err := a.oauth(ctx)
	if err != nil {
		return "", "", 0, err
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		return "", "", 0, fmt.Errorf("console: code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", "", 0, errSignIn{"the identity provider returned no ID token"}
	}
	idt, err := p.VerifierContext(ctx, &oidc.Config{ClientID: a.o.Config.OIDC.ClientID, Now: a.o.Now}).Verify(ctx, raw)
	if err != nil {
		return "", "", 0, errSignIn{"the ID token was refused: " + err.Error()}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(ls.Nonce)) != 1 {
		return "", "", 0, errSignIn{"the ID token's nonce does not match this sign-in"}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return "", "", 0, fmt.Errorf("console: ID token claims: %w", err)
	}
	name = firstString(claims, "email", "preferred_username", "name")
	if name == "" {
		name = idt.Subject
	}
	return idt.Subject, name, a.roleOf(claims), nil
}

// roleOf maps the configured claim's values to a role.
func (a *authenticator) roleOf(claims map[string]any) int {
	oc := a.o.Config.OIDC
	claim := oc.RoleClaim
	if claim == "" {
		claim = "groups"
	}
	var vals []string
	switch v := claims[claim].(type) {
	case string:
		vals = []string{v}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				vals = append(vals, s)
			}
		}
	}
	role := roleNone
	for _, v := range vals {
		if slices.Contains(oc.Approvers, v) {
			return roleApprover
		}
		if slices.Contains(oc.Viewers, v) {
			role = roleViewer
		}
	}
	return role
}

func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// checkAdminToken compares in constant time; false when none is configured.
func (a *authenticator) checkAdminToken(tok string) bool {
	want := a.o.Config.AdminToken.Value()
	return want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}
