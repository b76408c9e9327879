package faults

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
)

// httpCall is one request an application fake received, as the recorder
// in front of it saw it.
type httpCall struct {
	Seq    int
	At     time.Time
	Done   time.Time
	Method string
	Path   string
	Query  string
	// Status is what the fake answered; 0 when it dropped the connection,
	// the client gave up before the answer (a timeout), or the interceptor
	// killed the daemon before the fake saw it.
	Status int
	// Who is the name the bearer token was registered under (whoIs).
	Who string
	// Killed says the interceptor killed the daemon while this request
	// was being handled: "before" (the fake never applied it) or "after"
	// (the fake applied it; the answer went nowhere).
	Killed string
}

// landed reports whether the fake applied the request (a 2xx answer).
func (c httpCall) landed() bool { return c.Status >= 200 && c.Status <= 299 }

// phase is what an interceptor asks the recorder to do with a request.
type phase string

const (
	passOn     phase = ""
	killBefore phase = "before" // kill the daemon, never hand the request to the fake
	killAfter  phase = "after"  // hand it to the fake, then kill the daemon before answering
)

// recorder sits in front of an application fake: it records every request
// with its time and answer, and can kill the dirsync daemon while a chosen
// request is in flight. The interceptor runs under the recorder's lock.
type recorder struct {
	next http.Handler

	mu        sync.Mutex
	calls     []httpCall
	who       map[string]string // Authorization header → caller name
	intercept func(seq int, r *http.Request) phase
	kill      func()
}

// whoIs names the caller using token, so calls record who sent them.
func (rc *recorder) whoIs(token, name string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.who == nil {
		rc.who = map[string]string{}
	}
	rc.who["Bearer "+token] = name
}

func (rc *recorder) setIntercept(kill func(), f func(seq int, r *http.Request) phase) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.kill, rc.intercept = kill, f
}

// ServeHTTP implements http.Handler.
func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rc.mu.Lock()
	seq := len(rc.calls) + 1
	c := httpCall{Seq: seq, At: time.Now(), Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Who: rc.who[r.Header.Get("Authorization")]}
	rc.calls = append(rc.calls, c)
	ph := passOn
	if rc.intercept != nil {
		ph = rc.intercept(seq, r) // under rc.mu: interceptors keep counters
	}
	kill := rc.kill
	rc.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w}
	switch ph {
	case killBefore:
		kill()
		sw.status = 0
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
	case killAfter:
		buf := httptest.NewRecorder()
		rc.next.ServeHTTP(buf, r)
		sw.status = buf.Code
		kill()
		for k, v := range buf.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(buf.Code)
		_, _ = w.Write(buf.Body.Bytes())
	default:
		func() {
			defer func() {
				if v := recover(); v != nil && v != http.ErrAbortHandler {
					panic(v)
				} else if v != nil {
					sw.status = 0
				}
			}()
			rc.next.ServeHTTP(sw, r)
		}()
		switch {
		case sw.hijacked:
			sw.status = 0
		case sw.status == 0 && r.Context().Err() != nil:
			// Nothing written and the client is gone: it timed out.
		case sw.status == 0:
			sw.status = 200
		}
	}
	rc.mu.Lock()
	rc.calls[seq-1].Status = sw.status
	rc.calls[seq-1].Done = time.Now()
	rc.calls[seq-1].Killed = string(ph)
	rc.mu.Unlock()
}

// Calls returns a copy of the recorded requests.
func (rc *recorder) Calls() []httpCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.calls)
}

// statusWriter remembers the status written and whether the connection
// was hijacked (a dropped connection).
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("no hijacker")
	}
	w.hijacked = true
	return hj.Hijack()
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// netmakerApp is a Netmaker fake behind a recorder, served over HTTP from
// the test process (it outlives any dirsync process).
type netmakerApp struct {
	fake  *netmakerfake.Server
	rec   *recorder
	url   string
	token string
	// groups maps application group names to the ids the fake gave them.
	groups map[string]string
}

// newNetmaker starts a Netmaker fake with the named groups; its admin
// token is registered as a secret and exported as envToken.
func (h *harness) newNetmaker(o netmakerfake.Options, envToken string, groups ...string) *netmakerApp {
	fake := netmakerfake.New(o)
	app := &netmakerApp{fake: fake, rec: &recorder{next: fake}, groups: map[string]string{}}
	for _, g := range groups {
		app.groups[g] = fake.AddGroup(g)
	}
	srv := httptest.NewServer(app.rec)
	h.t.Cleanup(srv.Close)
	app.url = srv.URL
	app.token = fake.AdminToken()
	h.addSecret("netmaker token", app.token)
	h.env = append(h.env, envToken+"="+app.token)
	return app
}

// nmWrite classifies a Netmaker request: the kind of write and the user,
// or "" for reads and group calls.
func nmWrite(c httpCall) (kind, user string) {
	rest, ok := strings.CutPrefix(c.Path, "/api/users/")
	if !ok || c.Method == http.MethodGet {
		return "", ""
	}
	parts := strings.Split(rest, "/")
	user, _ = url.PathUnescape(parts[0])
	switch {
	case len(parts) == 1 && c.Method == http.MethodPost:
		return "create", user
	case len(parts) == 1 && c.Method == http.MethodPut:
		return "put", user
	case len(parts) == 1 && c.Method == http.MethodDelete:
		return "delete", user
	case len(parts) == 2:
		return parts[1], user // disable, enable
	}
	return "", ""
}

// nmRead returns the user a per-user read (GET /api/v1/users?username=) is about.
func nmRead(c httpCall) string {
	if c.Method != http.MethodGet || c.Path != "/api/v1/users" {
		return ""
	}
	q, _ := url.ParseQuery(c.Query)
	return q.Get("username")
}

// ezeeloginApp is the Ezeelogin fake: a state file the ezwapi-fake program
// (run by dirsync as its ezwapi.php) reads and writes.
type ezeeloginApp struct {
	h      *harness
	state  string
	apiURL string
}

// newEzeelogin creates a gateway that knows users, with the password reset
// API on; its secret is exported as envSecret.
func (h *harness) newEzeelogin(envSecret string, users []string) *ezeeloginApp {
	h.t.Helper()
	secret := h.secret("ezeelogin secret", envSecret)
	e := &ezeeloginApp{h: h, state: h.path("ezeelogin-state.json"), apiURL: "https://gw.example.test/ezlogin"}
	if err := ezeeloginfake.Create(e.state, ezeeloginfake.Options{Version: "7.41.0", APIURL: e.apiURL, Secret: secret,
		Users: users, PasswordResetAPI: true}); err != nil {
		h.t.Fatal(err)
	}
	return e
}

// yaml is the target entry for this gateway.
func (e *ezeeloginApp) yaml(name, envSecret, extra string) string {
	return fmt.Sprintf(`  - name: %s
    type: ezeelogin
    api_url: %s
    secret: ${%s}
    version: "7.41.0"
    command: [%q, "--state", %q]
    timezone: UTC
    reset_password: on_suspend
    # Nobody suspends users by hand in this gateway: every expiry is sent
    # (the default, unknown, holds it for accounts dirsync never suspended).
    first_contact: active
%s`, name, e.apiURL, envSecret, bins.ezwapi, e.state, extra)
}

// load reads the gateway's state.
func (e *ezeeloginApp) load() *ezeeloginfake.State {
	e.h.t.Helper()
	st, err := ezeeloginfake.Load(e.state)
	if err != nil {
		e.h.t.Fatal(err)
	}
	return st
}

// registerPasswords adds every password reset_user_password returned to
// the secrets scanned for.
func (e *ezeeloginApp) registerPasswords() int {
	n := 0
	for _, u := range e.load().Users {
		if u.LastPassword != "" {
			e.h.addSecret("password returned by reset_user_password", u.LastPassword)
			n++
		}
	}
	return n
}

// ezAction maps an ezwapi.php action to the engine action that sends it.
func ezAction(a string) string {
	switch a {
	case ezeeloginfake.ActSuspend, ezeeloginfake.ActResetPassword:
		return "suspend"
	case ezeeloginfake.ActUnsuspend:
		return "unsuspend"
	case ezeeloginfake.ActSetExpiry:
		return "set_expiry"
	case ezeeloginfake.ActForcePasswordChange:
		return "force_password_change"
	}
	return a
}

// allthenticateApp is an Allthenticate fake behind a recorder, holding the
// people as full members of the organisation.
type allthenticateApp struct {
	fake *allthenticatefake.Server
	rec  *recorder
	url  string
}

// newAllthenticate starts an Allthenticate fake whose members are people
// (active, rank REGULAR); its API key is a secret exported as envKey.
func (h *harness) newAllthenticate(o allthenticatefake.Options, envKey string, people []person) *allthenticateApp {
	o.APIKey = h.secret("allthenticate api key", envKey)
	fake := allthenticatefake.New(o)
	for _, p := range people {
		fake.AddUser(allthenticatefake.User{Email: p.Email, FirstName: p.Given, LastName: p.Family})
	}
	app := &allthenticateApp{fake: fake, rec: &recorder{next: fake}}
	srv := httptest.NewServer(app.rec)
	h.t.Cleanup(srv.Close)
	app.url = srv.URL
	return app
}

// yaml is the target entry: rank ADMIN for ssh members, deprovision by
// suspension (a toggle).
func (a *allthenticateApp) yaml(name, envKey, extra string) string {
	return fmt.Sprintf(`  - name: %s
    type: allthenticate
    base_url: %s
    api_key: ${%s}
    roles:
      - {group: ssh, role: ADMIN}
    deprovision: {action: suspend}
%s`, name, a.url, envKey, extra)
}

// ezeepApp is an ezeep Blue fake (accounts, OAuth and printing API on one
// server) behind a recorder; its OAuth client secret is a scanned secret.
type ezeepApp struct {
	h     *harness
	fake  *ezeepfake.Server
	rec   *recorder
	url   string
	group string // the id of printing group "printing-dev"
}

// newEzeep starts an ezeep fake with the group printing-dev; its client
// credentials are exported as EZEEP_CLIENT_ID and EZEEP_CLIENT_SECRET.
func (h *harness) newEzeep(o ezeepfake.Options) *ezeepApp {
	o.ClientID = "dirsync-client"
	o.ClientSecret = h.secret("ezeep oauth client secret", "EZEEP_CLIENT_SECRET")
	h.env = append(h.env, "EZEEP_CLIENT_ID="+o.ClientID)
	fake := ezeepfake.New(o)
	app := &ezeepApp{h: h, fake: fake, rec: &recorder{next: fake}, group: fake.AddGroup("printing-dev")}
	srv := httptest.NewServer(app.rec)
	h.t.Cleanup(srv.Close)
	app.url = srv.URL
	return app
}

// yaml is the target entry: dev members get printing-dev; leavers are
// stripped (ezeep cannot suspend).
func (e *ezeepApp) yaml(name, extra string) string {
	return fmt.Sprintf(`  - name: %s
    type: ezeep
    client_id: ${EZEEP_CLIENT_ID}
    client_secret: ${EZEEP_CLIENT_SECRET}
    account_url: %s
    printing_url: %s/printing/v1
    group_ids: {printing-dev: %s}
    groups:
      - {group: dev, as: printing-dev}
    default_role: user
%s`, name, e.url, e.url, e.group, extra)
}

// registerTokens adds every bearer token the fake issued to the secrets.
func (e *ezeepApp) registerTokens() int {
	toks := e.fake.Tokens()
	for _, tok := range toks {
		e.h.addSecret("ezeep access token", tok)
	}
	return len(toks)
}
