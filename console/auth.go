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
	"strings"
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

// loginState is what the signed login cookie carries between the redirect
// to the IdP and the callback.
type loginState struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	// CSRF protects the admin-token form, which has no session yet.
	CSRF string `json:"csrf"`
	// Next is the console page asked for before sign-in (a deep link).
	Next    string `json:"next,omitempty"`
	Expires int64  `json:"exp"`
}

// authenticator signs cookies, runs the OIDC code flow and maps claims to roles.
type authenticator struct {
	o      Options
	base   *url.URL
	key    []byte
	secure bool
	ss     *sessions
	// tries throttles failed sign-ins per client and per account.
	tries *throttle

	mu       stdsync.Mutex
	provider *oidc.Provider
}

func newAuthenticator(o Options, base *url.URL) (*authenticator, error) {
	if o.Sessions == nil {
		return nil, errors.New("console: no session store")
	}
	ss := &sessions{kv: o.Sessions, now: o.Now, ttl: o.Config.SessionTTL.D(), idle: o.Config.SessionIdle.D(), refresh: o.Config.RoleRefresh.D()}
	if ss.ttl <= 0 {
		ss.ttl = 8 * time.Hour
	}
	if ss.idle <= 0 {
		ss.idle = 30 * time.Minute
	}
	if ss.refresh <= 0 {
		ss.refresh = 10 * time.Minute
	}
	a := &authenticator{o: o, base: base, secure: true, ss: ss, tries: newThrottle(o.Now, signInTries, signInWindow)}
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

// Sign-in throttling: this many failures per client address or per account
// within the window shut the door for the rest of the window.
const (
	signInTries  = 10
	signInWindow = 15 * time.Minute
)

// current returns the request's live session with its role worked out now
// against the configuration in force. Groups older than the refresh
// interval are read again from the IdP (refresh token); a session that
// cannot be refreshed, has timed out or has no role left is ended.
func (a *authenticator) current(r *http.Request) (session, bool) {
	ctx := r.Context()
	s, err := a.ss.load(ctx, cookieID(r))
	if err != nil {
		if !errors.Is(err, errNoSession) {
			a.o.Logger.Warn("console: session", zap.Error(err))
		}
		return session{}, false
	}
	if !s.Admin && a.o.Now().Sub(s.Checked) >= a.ss.refresh {
		if err := a.refreshGroups(ctx, &s); err != nil {
			a.o.Logger.Info("console: session ended: the IdP could not confirm the groups again", zap.String("who", s.Name), zap.Error(err))
			_ = a.ss.end(ctx, s.id)
			return session{}, false
		}
		s.Seen = a.o.Now()
		if err := a.ss.save(ctx, &s); err != nil {
			a.o.Logger.Warn("console: session", zap.Error(err))
		}
	}
	s.Role = a.roleFor(s)
	if s.Role == roleNone {
		a.o.Logger.Info("console: session ended: no console role under the current configuration", zap.String("who", s.Name))
		_ = a.ss.end(ctx, s.id)
		return session{}, false
	}
	a.ss.touch(ctx, &s)
	return s, true
}

// refreshGroups reads the person's groups again with the refresh token.
func (a *authenticator) refreshGroups(ctx context.Context, s *session) error {
	if s.Refresh == "" {
		return errors.New("no refresh token: sign in again")
	}
	ctx = oidc.ClientContext(ctx, a.o.HTTPClient)
	p, cfg, err := a.oauth(ctx)
	if err != nil {
		return err
	}
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: s.Refresh, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return fmt.Errorf("console: refresh: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return errors.New("console: refresh: no ID token")
	}
	idt, err := p.VerifierContext(ctx, &oidc.Config{ClientID: a.o.Config.OIDC.ClientID, Now: a.o.Now}).Verify(ctx, raw)
	if err != nil {
		return fmt.Errorf("console: refresh: ID token: %w", err)
	}
	if idt.Subject != s.Subject {
		return errors.New("console: refresh: the ID token names another person")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return fmt.Errorf("console: refresh: claims: %w", err)
	}
	s.Groups = a.groupsOf(claims)
	if tok.RefreshToken != "" {
		s.Refresh = tok.RefreshToken
	}
	s.Checked = a.o.Now()
	return nil
}

// startSession stores a new session and sets its cookie. An old session
// in the same browser is ended first.
func (a *authenticator) startSession(w http.ResponseWriter, r *http.Request, s session) error {
	ctx := r.Context()
	if old := cookieID(r); old != "" {
		_ = a.ss.end(ctx, old)
	}
	now := a.o.Now()
	s.id, s.CSRF, s.Created, s.Seen, s.Checked = "", randomToken(), now, now, now
	if err := a.ss.save(ctx, &s); err != nil {
		return err
	}
	if err := a.ss.prune(ctx); err != nil {
		a.o.Logger.Debug("console: prune sessions", zap.Error(err))
	}
	a.setCookie(w, sessionCookie, s.id, a.ss.ttl)
	return nil
}

// loginState returns the login cookie's state, creating one when missing
// or invalid.
func (a *authenticator) loginState(w http.ResponseWriter, r *http.Request) loginState {
	next := a.safeNext(r.URL.Query().Get("next"))
	if c, err := r.Cookie(loginCookie); err == nil {
		var ls loginState
		if a.open(c.Value, &ls) == nil && time.Unix(ls.Expires, 0).After(a.o.Now()) && (next == "" || next == ls.Next) {
			return ls
		}
	}
	ls := loginState{CSRF: randomToken(), Next: next, Expires: a.o.Now().Add(10 * time.Minute).Unix()}
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
	if a.tries.blocked(clientKey(r)) {
		http.Redirect(w, r, a.base.JoinPath("login").String()+"?error=throttled", http.StatusSeeOther)
		return
	}
	_, cfg, err := a.oauth(r.Context())
	if err != nil {
		a.o.Logger.Error("console: sign-in", zap.Error(err))
		http.Redirect(w, r, a.base.JoinPath("login").String()+"?error=unreachable", http.StatusSeeOther)
		return
	}
	next := a.safeNext(r.URL.Query().Get("next"))
	if c, err := r.Cookie(loginCookie); next == "" && err == nil {
		var old loginState
		if a.open(c.Value, &old) == nil {
			next = a.safeNext(old.Next)
		}
	}
	ls := loginState{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), CSRF: randomToken(), Next: next,
		Expires: a.o.Now().Add(10 * time.Minute).Unix()}
	a.setCookie(w, loginCookie, a.seal(ls), 10*time.Minute)
	u := cfg.AuthCodeURL(ls.State, oidc.Nonce(ls.Nonce), oauth2.S256ChallengeOption(ls.Verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// signInErrors are the only messages a sign-in failure shows, by code:
// nothing a request or an IdP sends reaches the page.
var signInErrors = map[string]string{
	"token":       "The admin token was wrong.",
	"throttled":   "Too many failed sign-ins from this address or for this account: wait 15 minutes, then try again.",
	"ended":       "Your session ended (signed out, timed out, or your access changed): sign in again.",
	"state":       "The sign-in took too long or was started elsewhere: start again.",
	"idp":         "The identity provider refused the sign-in.",
	"expired":     "The identity provider's ID token has expired: check the clocks, then start again.",
	"audience":    "The ID token was issued for another application (wrong audience).",
	"refused":     "The ID token was refused (signature, issuer or nonce): start again.",
	"role":        "Your account is in none of the groups allowed to use the console.",
	"unreachable": "The identity provider cannot be reached; see the daemon's log.",
	"failed":      "Sign-in failed; see the daemon's log.",
}

// errSignIn is a sign-in refusal; code is a key of signInErrors.
type errSignIn struct {
	code string
	err  error // the detail, for the log only
}

func (e errSignIn) Error() string {
	if e.err != nil {
		return signInErrors[e.code] + ": " + e.err.Error()
	}
	return signInErrors[e.code]
}

// signedIn is who the IdP signed in.
type signedIn struct {
	Subject, Name string
	Groups        []string
	Refresh       string
	Next          string
}

// finishOIDC checks the callback: state, code exchange with the PKCE
// verifier, the ID token's signature, issuer, audience, expiry and nonce,
// and returns the person with their groups.
func (a *authenticator) finishOIDC(w http.ResponseWriter, r *http.Request) (signedIn, error) {
	c, cerr := r.Cookie(loginCookie)
	var ls loginState
	if cerr != nil || a.open(c.Value, &ls) != nil || time.Unix(ls.Expires, 0).Before(a.o.Now()) || ls.State == "" {
		return signedIn{}, errSignIn{code: "state"}
	}
	a.clearCookie(w, loginCookie)
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return signedIn{}, errSignIn{code: "idp", err: fmt.Errorf("%.100q", e)}
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(ls.State)) != 1 {
		return signedIn{}, errSignIn{code: "state"}
	}
	ctx := oidc.ClientContext(r.Context(), a.o.HTTPClient)
	p, cfg, err := a.oauth(ctx)
	if err != nil {
		return signedIn{}, errSignIn{code: "unreachable", err: err}
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(ls.Verifier))
	if err != nil {
		return signedIn{}, errSignIn{code: "idp", err: fmt.Errorf("console: code exchange: %w", err)}
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return signedIn{}, errSignIn{code: "refused", err: errors.New("no ID token")}
	}
	idt, err := p.VerifierContext(ctx, &oidc.Config{ClientID: a.o.Config.OIDC.ClientID, Now: a.o.Now}).Verify(ctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		switch {
		case errors.As(err, &exp):
			return signedIn{}, errSignIn{code: "expired", err: err}
		case strings.Contains(err.Error(), "audience"):
			return signedIn{}, errSignIn{code: "audience", err: err}
		}
		return signedIn{}, errSignIn{code: "refused", err: err}
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(ls.Nonce)) != 1 {
		return signedIn{}, errSignIn{code: "refused", err: errors.New("nonce mismatch")}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return signedIn{}, errSignIn{code: "refused", err: err}
	}
	who := signedIn{Subject: idt.Subject, Name: firstString(claims, "email", "preferred_username", "name"),
		Groups: a.groupsOf(claims), Refresh: tok.RefreshToken, Next: a.safeNext(ls.Next)}
	if who.Name == "" {
		who.Name = idt.Subject
	}
	return who, nil
}

// safeNext keeps a deep link only when it is a page of this console
// (a path under the base path, no scheme, host or backslash tricks).
func (a *authenticator) safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, a.base.Path) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\x00\r\n") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.Contains(u.Path, "..") ||
		strings.HasPrefix(u.Path, a.base.JoinPath("login").Path) || strings.HasPrefix(u.Path, a.base.JoinPath("auth").Path) {
		return ""
	}
	return u.RequestURI()
}

// groupsOf returns the configured role claim's values.
func (a *authenticator) groupsOf(claims map[string]any) []string {
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
	return vals
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
