// Package oidcprov is an OpenID Connect provider for tests, on loopback:
// discovery, JWKS, an authorization endpoint that signs in a chosen person
// at once, and a token endpoint that checks the client secret and the PKCE
// verifier and returns an RS256-signed ID token. A test can make the next
// token expired or for another audience.
package oidcprov

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Person is who the provider signs in.
type Person struct {
	Subject string
	Email   string
	Groups  []string
}

// Provider is a running test IdP.
type Provider struct {
	Issuer       string
	ClientID     string
	ClientSecret string

	key *rsa.PrivateKey
	srv *http.Server

	mu       stdsync.Mutex
	person   Person
	expired  bool
	audience string
	codes    map[string]grant
	// refresh maps live refresh tokens to subjects; groups holds each
	// subject's current groups (as of its sign-in or SetGroups).
	refresh map[string]string
	groups  map[string]Person
	// Exchanges counts successful code exchanges; Refreshes successful
	// refresh-token grants.
	Exchanges int
	Refreshes int
}

type grant struct {
	person    Person
	nonce     string
	challenge string
	redirect  string
}

// Start runs a provider on 127.0.0.1 (issuer http://localhost:PORT) until
// the test ends.
func Start(t testing.TB, clientID, clientSecret string) *Provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{Issuer: "http://localhost:" + strings.Split(ln.Addr().String(), ":")[1], ClientID: clientID, ClientSecret: clientSecret,
		key: key, codes: map[string]grant{}, refresh: map[string]string{}, groups: map[string]Person{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// SignIn sets who the next authorizations sign in, and resets the faults.
func (p *Provider) SignIn(who Person) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.person, p.expired, p.audience = who, false, ""
}

// SetGroups changes a person's groups as later refreshes report them.
func (p *Provider) SetGroups(subject string, groups []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	who := p.groups[subject]
	who.Groups = groups
	p.groups[subject] = who
}

// Forget removes a person: their refresh tokens are refused from now on.
func (p *Provider) Forget(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.groups, subject)
	for t, s := range p.refresh {
		if s == subject {
			delete(p.refresh, t)
		}
	}
}

// ExpireTokens makes the tokens issued from now on already expired.
func (p *Provider) ExpireTokens() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.expired = true
}

// WrongAudience makes the tokens issued from now on name another client.
func (p *Provider) WrongAudience(aud string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.audience = aud
}

func (p *Provider) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]any{
		"issuer": p.Issuer, "authorization_endpoint": p.Issuer + "/authorize", "token_endpoint": p.Issuer + "/token",
		"jwks_uri": p.Issuer + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
	})
}

func (p *Provider) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.ClientID || q.Get("response_type") != "code" {
		http.Error(w, "bad client or response type", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "PKCE S256 required", http.StatusBadRequest)
		return
	}
	code := randomString()
	p.mu.Lock()
	p.codes[code] = grant{person: p.person, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
	p.mu.Unlock()
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	v := u.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.ClientID || secret != p.ClientSecret {
		w.WriteHeader(http.StatusUnauthorized)
		writeJSON(w, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	var g grant
	refreshed := r.PostForm.Get("grant_type") == "refresh_token"
	if refreshed {
		// A refresh token is used once (rotated) and reports the person's
		// current groups.
		var sub string
		if sub, ok = p.refresh[r.PostForm.Get("refresh_token")]; ok {
			delete(p.refresh, r.PostForm.Get("refresh_token"))
			g.person, ok = p.groups[sub]
		}
	} else {
		g, ok = p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
	}
	expired, aud := p.expired, p.audience
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || (!refreshed && (g.redirect != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge)) {
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": "invalid_grant"})
		return
	}
	if aud == "" {
		aud = p.ClientID
	}
	now := time.Now()
	exp := now.Add(time.Hour)
	if expired {
		now, exp = now.Add(-2*time.Hour), now.Add(-time.Hour)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: p.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	claims := map[string]any{"iss": p.Issuer, "sub": g.person.Subject, "aud": aud, "iat": now.Unix(), "exp": exp.Unix(),
		"email": g.person.Email, "groups": g.person.Groups}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	raw, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rt := randomString()
	p.mu.Lock()
	if refreshed {
		p.Refreshes++
	} else {
		p.Exchanges++
		p.groups[g.person.Subject] = g.person
	}
	p.refresh[rt] = g.person.Subject
	p.mu.Unlock()
	writeJSON(w, map[string]any{"access_token": randomString(), "token_type": "Bearer", "expires_in": 3600, "id_token": raw, "refresh_token": rt})
}

func randomString() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
