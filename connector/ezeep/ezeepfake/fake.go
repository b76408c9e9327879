// Package ezeepfake is a stateful stand-in for ezeep Blue's account,
// invitation, OAuth and printing-group APIs, as ezeep Blue's API
// documents describe them:
//
//   - POST /oauth/access_token/ issues bearer tokens for client
//     credentials sent with HTTP Basic auth (form-encoded
//     grant_type=client_credentials; no refresh token). Tokens expire after
//     TokenTTL on the fake's clock, and an expired or unknown token is
//     answered 401, so clients must refresh.
//   - GET /v1/users/ lists users with page/per_page and
//     {count,next,previous,results}, newest first (as the seed's example
//     orders them); next is an absolute URL, null on the last page; a page
//     past the end is 404 "Invalid page.".
//   - GET /v1/users/<id>, PATCH /v1/users/<id>/ (first_name, last_name,
//     email, and roles written as a string "admin"/"user" — read back as an
//     array), DELETE /v1/users/<id>/ (204).
//   - POST /v1/userinvitations/ (also /v1/users/userinvitations/, the
//     seed names both) {email, expire_date}: creates the invitation and an
//     unverified user with role user and no groups, which appears in both
//     user lists at once; an email that already has a user is 400.
//     GET lists invitations; PATCH /v1/userinvitations/<id>/ resends one,
//     with a new expire_date when the body carries one (the seed lists it
//     among that call's attributes); an expired one is otherwise reopened
//     for 30 days.
//   - GET /printing/v1/users/ and /printing/v1/users/<id> show group
//     membership; PATCH /printing/v1/users/<id>/ with {"groups":[{group_id}]}
//     REPLACES the user's whole group list. Unknown group ids are 400.
//   - Credentials are an organisation admin's by default (Owner adds that
//     admin to the users); Ordinary makes them an ordinary user's, who
//     "will only get his own information" (200) and is refused the rest.
//   - Deleting a user withdraws their open invitations (not documented;
//     KeepInvitationsOnDelete keeps them open).
//   - Writes need a trailing slash (a write without one is 404); reads are
//     served either way. Errors are Django REST framework shaped:
//     {"detail": "..."} or {"field": ["..."]}.
//
// Faults (a seeded share of requests answering 429 with Retry-After, 500,
// a slow answer or a dropped connection, before or after the request is
// applied, plus fail-next), call recording (credentials never), out-of-band edits
// and start/stop come from the shared fake toolkit (connector/fakekit).
//
// Use it with httptest.NewServer(srv) (or NewTestServer), or srv.Start(addr)
// from any Go program (the demo). Account and OAuth paths are served at the
// root, the printing API under /printing/v1.
package ezeepfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/connector/fakekit"
	"github.com/google/uuid"
)

// Roles.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// Invitation statuses.
const (
	InvitationOpen     = "OPEN"
	InvitationAccepted = "ACCEPTED"
	InvitationExpired  = "EXPIRED"
)

// Options configure a Server.
type Options struct {
	// ClientID and ClientSecret are the OAuth client credentials the token
	// endpoint accepts (defaults "ezeep-client", "ezeep-secret").
	ClientID     string
	ClientSecret string
	// TokenTTL is the lifetime of issued tokens (default 1h).
	TokenTTL time.Duration
	// DefaultPerPage and MaxPerPage bound list pages (defaults 10, 100).
	DefaultPerPage int
	MaxPerPage     int
	// FaultOptions configure the shared fault model (rate, kinds,
	// before or after applying, Retry-After, slow delay, seed).
	fakekit.FaultOptions
	// Now is the clock (default time.Now): token and invitation expiry.
	Now func() time.Time
	// Owner, when set, is the email of the organisation admin whose API
	// client the credentials are: a verified admin the server starts with
	// (an admin's user list shows the admin too).
	Owner string
	// Ordinary, when set, makes the credentials an ordinary user's (this
	// email, created at start): as the document says, GET /v1/users/
	// answers 200 with that user only ("will only get his own
	// information"), and every other user's information and every write
	// is refused with 403.
	Ordinary string
	// KeepInvitationsOnDelete keeps a deleted user's open invitations
	// open. By default deleting a user withdraws their invitations that
	// were not accepted (the document does not say).
	KeepInvitationsOnDelete bool
	// AcceptInvitations makes every invitee accept at once (verified, the
	// invitation ACCEPTED): for tests of accepted users made by Create.
	AcceptInvitations bool
}

// User is one ezeep user as the server keeps it: the account API's fields
// and the printing API's.
type User struct {
	ID          string
	Email       string
	FirstName   string
	LastName    string
	DateJoined  time.Time
	Role        string // admin or user
	IsVerified  bool
	Invitations []string // invitation ids, oldest first
	// Groups are the printing group ids, in the order last written.
	Groups               []string
	LocalPrintingEnabled bool
	SelfServiceEnabled   bool
	MyPrintersEnabled    bool
	PullPrintingEnabled  bool
	// NoPrinting: the printing API does not know the user (404 there, and
	// not in its list), as for an account it has not set up yet.
	NoPrinting bool
	seq        int
}

// DisplayName is what ezeep shows: first and last name.
func (u User) DisplayName() string { return strings.TrimSpace(u.FirstName + " " + u.LastName) }

// Invitation is one user invitation.
type Invitation struct {
	ID             string
	Email          string
	Updated        time.Time
	ExpireDate     time.Time
	DeliveryStatus string
	Accepted       bool
	// Resent counts PATCH resends.
	Resent int
}

// Group is a printing group.
type Group struct {
	ID   string
	Name string
}

// Call is one recorded request.
type Call struct {
	Seq    int
	Method string
	Path   string
	Query  string
	// Body is the request body; the token endpoint's is recorded without
	// credentials (they travel in the Authorization header, never kept).
	Body string
	// Auth is "bearer" (a valid token), "expired" (an expired or unknown
	// token), "basic" (client credentials) or "".
	Auth   string
	Status int
	// Fault is the injected fault, if any.
	Fault fakekit.Fault
	// Applied is true when the request changed the server's state.
	Applied bool
}

// Server is the fake ezeep server; it implements http.Handler.
type Server struct {
	o       Options
	mu      sync.Mutex
	users   map[string]*User
	invites map[string]*Invitation
	groups  map[string]*Group
	tokens  map[string]time.Time // token → expiry
	issued  []string
	seq     int
	fakekit.Kit[Call]
}

// New returns an empty server.
func New(o Options) *Server {
	if o.ClientID == "" {
		o.ClientID = "ezeep-client"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "ezeep-secret"
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = time.Hour
	}
	if o.DefaultPerPage == 0 {
		o.DefaultPerPage = 10
	}
	if o.MaxPerPage == 0 {
		o.MaxPerPage = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, users: map[string]*User{}, invites: map[string]*Invitation{}, groups: map[string]*Group{},
		tokens: map[string]time.Time{}}
	s.Init("ezeepfake", s, o.FaultOptions)
	// Made before any clock a test wires in can answer.
	joined := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if o.Owner != "" {
		s.AddUser(User{Email: o.Owner, FirstName: "Org", LastName: "Admin", Role: RoleAdmin, IsVerified: true, DateJoined: joined})
	}
	if o.Ordinary != "" {
		s.AddUser(User{Email: o.Ordinary, Role: RoleUser, IsVerified: true, SelfServiceEnabled: true, MyPrintersEnabled: true, DateJoined: joined})
	}
	return s
}

// ClientID returns the accepted client id.
func (s *Server) ClientID() string { return s.o.ClientID }

// ClientSecret returns the accepted client secret.
func (s *Server) ClientSecret() string { return s.o.ClientSecret }

// Tokens returns every access token issued so far.
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// ExpireTokens makes every issued token expired, as if their hour passed.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.tokens {
		s.tokens[k] = time.Time{}
	}
}

// AddGroup creates a printing group and returns its id.
func (s *Server) AddGroup(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := uuid.NewString()
	s.groups[id] = &Group{ID: id, Name: name}
	return id
}

// GroupID returns the id of the group named name.
func (s *Server) GroupID(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakekit.IDByName(s.groups, name, groupName)
}

// GroupNames maps group ids to names, sorted ("?id" for unknown ids).
func (s *Server) GroupNames(ids []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakekit.NamesOf(s.groups, ids, groupName)
}

func groupName(g *Group) string { return g.Name }

// AddUser puts a user straight into the server and returns its id. Empty
// fields get defaults: a new id, role user, verified, now as date joined.
func (s *Server) AddUser(u User) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := u
	if c.ID == "" {
		c.ID = uuid.NewString()
	}
	if c.Role == "" {
		c.Role = RoleUser
	}
	if c.DateJoined.IsZero() {
		c.DateJoined = s.o.Now().UTC()
	}
	c.Groups = slices.Clone(u.Groups)
	c.Invitations = slices.Clone(u.Invitations)
	s.seq++
	c.seq = s.seq
	s.users[c.ID] = &c
	return c.ID
}

// User returns one user by id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return u.clone(), true
}

// UserByEmail returns the user with this email (case-insensitive).
func (s *Server) UserByEmail(email string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byEmail(email)
	if u == nil {
		return User{}, false
	}
	return u.clone(), true
}

// Users returns every user, newest first.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	us := s.sortedUsers()
	out := make([]User, len(us))
	for i, u := range us {
		out[i] = u.clone()
	}
	return out
}

// Invitations returns every invitation to email (all when email is "").
func (s *Server) Invitations(email string) []Invitation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Invitation
	for _, inv := range s.invites {
		if email == "" || strings.EqualFold(inv.Email, email) {
			out = append(out, *inv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Accept marks the user's invitations accepted and the user verified, as
// when the invitee signs up.
func (s *Server) Accept(email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.byEmail(email)
	if u == nil {
		return false
	}
	u.IsVerified = true
	for _, id := range u.Invitations {
		if inv := s.invites[id]; inv != nil {
			inv.Accepted = true
		}
	}
	return true
}

// SetGroups sets a user's groups directly (seeding).
func (s *Server) SetGroups(id string, groups ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		u.Groups = slices.Clone(groups)
	}
}

// Edit changes a user the way an administrator does in ezeep's portal, out
// of band: no request is recorded, the edit is. It reports whether the user
// exists.
func (s *Server) Edit(id, what string, f func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return false
	}
	f(u)
	s.Note(id + ": " + what)
	return true
}

// NewTestServer starts the fake on an httptest server and returns it with
// its base URL; both stop when the test ends.
func NewTestServer(t interface{ Cleanup(func()) }, o Options) (*Server, string) {
	s := New(o)
	return s, fakekit.TestServer(t, s)
}

func (u *User) clone() User {
	c := *u
	c.Groups = slices.Clone(u.Groups)
	c.Invitations = slices.Clone(u.Invitations)
	return c
}

func (s *Server) byEmail(email string) *User {
	for _, u := range s.users {
		if strings.EqualFold(u.Email, email) {
			return u
		}
	}
	return nil
}

// sortedUsers orders users newest first (date joined, then creation).
func (s *Server) sortedUsers() []*User {
	out := make([]*User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].DateJoined.Equal(out[j].DateJoined) {
			return out[i].DateJoined.After(out[j].DateJoined)
		}
		return out[i].seq > out[j].seq
	})
	return out
}

// reply is a handler's answer, written after the fault decision.
type reply struct {
	status  int
	body    any
	applied bool
	key     string // applied-count key, default "METHOD path"
	header  http.Header
}

func detail(status int, msg string) reply {
	return reply{status: status, body: map[string]string{"detail": msg}}
}

func fieldErr(field, msg string) reply {
	return reply{status: http.StatusBadRequest, body: map[string][]string{field: {msg}}}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := fakekit.ReadBody(r)
	var rep reply
	auth := ""
	s.Serve(w, r, fakekit.Exchange{
		Apply: func() int {
			s.mu.Lock()
			defer s.mu.Unlock()
			auth, rep = s.handle(r, body)
			return rep.status
		},
		Record: func(status int, fault fakekit.Fault) {
			if auth == "" {
				s.mu.Lock()
				auth = s.authKind(r)
				s.mu.Unlock()
			}
			recBody := string(body)
			if r.URL.Path == "/oauth/access_token/" || r.URL.Path == "/oauth/access_token" {
				recBody = redactForm(body)
			}
			key := ""
			if rep.applied {
				if key = rep.key; key == "" {
					key = r.Method + " " + r.URL.Path
				}
			}
			s.Record(func(seq int) Call {
				return Call{Seq: seq, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: recBody, Auth: auth,
					Status: status, Fault: fault, Applied: rep.applied}
			}, key)
		},
		TooMany: func(w http.ResponseWriter, after int) {
			writeJSON(w, 429, map[string]string{"detail": "Request was throttled. Expected available in " + strconv.Itoa(after) + " seconds."})
		},
		Failed: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(500)
			_, _ = io.WriteString(w, "<h1>Server Error (500)</h1>")
		},
		Write: func() {
			for k, vs := range rep.header {
				w.Header()[k] = vs
			}
			if rep.status == http.StatusNoContent {
				w.WriteHeader(rep.status)
				return
			}
			writeJSON(w, rep.status, rep.body)
		},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// redactForm keeps the token request's grant type only.
func redactForm(body []byte) string {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return ""
	}
	out := url.Values{}
	if g := v.Get("grant_type"); g != "" {
		out.Set("grant_type", g)
	}
	return out.Encode()
}

// authKind classifies the request's credentials (s.mu held).
func (s *Server) authKind(r *http.Request) string {
	h := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(h, "Basic "):
		return "basic"
	case strings.HasPrefix(h, "Bearer "):
		exp, ok := s.tokens[strings.TrimPrefix(h, "Bearer ")]
		if ok && s.o.Now().Before(exp) {
			return "bearer"
		}
		return "expired"
	}
	return ""
}

// handle serves one request (s.mu held).
func (s *Server) handle(r *http.Request, body []byte) (string, reply) {
	auth := s.authKind(r)
	p := r.URL.Path
	if p == "/oauth/access_token/" || p == "/oauth/access_token" {
		return auth, s.token(r, body)
	}
	if auth != "bearer" {
		if auth == "expired" {
			return auth, detail(http.StatusUnauthorized, "Given token not valid for any token type")
		}
		return auth, detail(http.StatusUnauthorized, "Authentication credentials were not provided.")
	}
	if s.o.Ordinary != "" {
		if rep, limited := s.ordinary(r); limited {
			return auth, rep
		}
	}
	slash := strings.HasSuffix(p, "/")
	if r.Method != http.MethodGet && !slash {
		return auth, detail(http.StatusNotFound, "Not found.")
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "v1" && parts[1] == "users":
		if r.Method != http.MethodGet {
			return auth, methodNotAllowed(r)
		}
		return auth, s.page(r, s.userList(func(u *User) any { return s.userJSON(u) }))
	case (len(parts) == 2 && parts[0] == "v1" && parts[1] == "userinvitations") ||
		(len(parts) == 3 && parts[0] == "v1" && parts[1] == "users" && parts[2] == "userinvitations"):
		switch r.Method {
		case http.MethodGet:
			return auth, s.page(r, s.invitationList())
		case http.MethodPost:
			return auth, s.invite(body)
		}
		return auth, methodNotAllowed(r)
	case len(parts) == 3 && parts[0] == "v1" && parts[1] == "userinvitations":
		if r.Method != http.MethodPatch {
			return auth, methodNotAllowed(r)
		}
		return auth, s.resend(parts[2], body)
	case len(parts) == 3 && parts[0] == "v1" && parts[1] == "users":
		u := s.users[parts[2]]
		if u == nil {
			return auth, detail(http.StatusNotFound, "Not found.")
		}
		switch r.Method {
		case http.MethodGet:
			return auth, reply{status: 200, body: s.userJSON(u)}
		case http.MethodPatch:
			return auth, s.patchUser(u, body)
		case http.MethodDelete:
			delete(s.users, u.ID)
			if !s.o.KeepInvitationsOnDelete {
				for _, id := range u.Invitations {
					if inv := s.invites[id]; inv != nil && !inv.Accepted {
						delete(s.invites, id)
					}
				}
			}
			return auth, reply{status: http.StatusNoContent, applied: true}
		}
		return auth, methodNotAllowed(r)
	case len(parts) == 3 && parts[0] == "printing" && parts[1] == "v1" && parts[2] == "users":
		if r.Method != http.MethodGet {
			return auth, methodNotAllowed(r)
		}
		var items []any
		for _, u := range s.sortedUsers() {
			if !u.NoPrinting {
				items = append(items, printingJSON(u))
			}
		}
		return auth, s.page(r, items)
	case len(parts) == 4 && parts[0] == "printing" && parts[1] == "v1" && parts[2] == "users":
		u := s.users[parts[3]]
		if u == nil || u.NoPrinting {
			return auth, detail(http.StatusNotFound, "Not found.")
		}
		switch r.Method {
		case http.MethodGet:
			return auth, reply{status: 200, body: printingJSON(u)}
		case http.MethodPatch:
			return auth, s.patchPrinting(u, body)
		}
		return auth, methodNotAllowed(r)
	}
	return auth, detail(http.StatusNotFound, "Not found.")
}

// ordinary answers what an ordinary user's credential gets: their own
// entry in the user lists, 403 for anything else but reading themself.
func (s *Server) ordinary(r *http.Request) (reply, bool) {
	self := s.byEmail(s.o.Ordinary)
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	list := r.Method == http.MethodGet && ((len(parts) == 2 && parts[0] == "v1" && parts[1] == "users") ||
		(len(parts) == 3 && parts[0] == "printing" && parts[2] == "users"))
	if list {
		var items []any
		if self != nil {
			if parts[0] == "printing" {
				items = append(items, printingJSON(self))
			} else {
				items = append(items, s.userJSON(self))
			}
		}
		return s.page(r, items), true
	}
	if r.Method == http.MethodGet && self != nil && strings.Contains(r.URL.Path, "/users/"+self.ID) {
		return reply{}, false
	}
	return detail(http.StatusForbidden, "You do not have permission to perform this action."), true
}

func methodNotAllowed(r *http.Request) reply {
	return detail(http.StatusMethodNotAllowed, fmt.Sprintf("Method %q not allowed.", r.Method))
}

func (s *Server) token(r *http.Request, body []byte) reply {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		// RFC 6749 2.3.1: both parts are form-urlencoded before Basic.
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(secret); err == nil {
			secret = v
		}
	}
	if !ok || id != s.o.ClientID || secret != s.o.ClientSecret {
		return reply{status: http.StatusUnauthorized, body: map[string]string{"error": "invalid_client"}}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return reply{status: http.StatusBadRequest, body: map[string]string{"error": "invalid_request"}}
	}
	if form.Get("grant_type") != "client_credentials" {
		return reply{status: http.StatusBadRequest, body: map[string]string{"error": "unsupported_grant_type"}}
	}
	tok := randomToken()
	s.tokens[tok] = s.o.Now().Add(s.o.TokenTTL)
	s.issued = append(s.issued, tok)
	return reply{status: 200, applied: true, body: map[string]any{"access_token": tok, "token_type": "Bearer",
		"expires_in": int(s.o.TokenTTL / time.Second), "scope": "read write"}}
}

// userList returns every user rendered by f, newest first.
func (s *Server) userList(f func(*User) any) []any {
	us := s.sortedUsers()
	out := make([]any, len(us))
	for i, u := range us {
		out[i] = f(u)
	}
	return out
}

func (s *Server) invitationList() []any {
	invs := make([]*Invitation, 0, len(s.invites))
	for _, inv := range s.invites {
		invs = append(invs, inv)
	}
	sort.Slice(invs, func(i, j int) bool {
		if !invs[i].Updated.Equal(invs[j].Updated) {
			return invs[i].Updated.After(invs[j].Updated)
		}
		return invs[i].ID < invs[j].ID
	})
	out := make([]any, len(invs))
	for i, inv := range invs {
		out[i] = s.invitationJSON(inv)
	}
	return out
}

// page renders one page of items as Django REST framework does.
func (s *Server) page(r *http.Request, items []any) reply {
	q := r.URL.Query()
	per := s.o.DefaultPerPage
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil && n > 0 {
			per = min(n, s.o.MaxPerPage)
		}
	}
	pg := 1
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return detail(http.StatusNotFound, "Invalid page.")
		}
		pg = n
	}
	pages := max(1, (len(items)+per-1)/per)
	if pg > pages {
		return detail(http.StatusNotFound, "Invalid page.")
	}
	lo := (pg - 1) * per
	hi := min(lo+per, len(items))
	link := func(n int) any {
		if n < 1 || n > pages {
			return nil
		}
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(n))
		v.Set("per_page", strconv.Itoa(per))
		return "http://" + r.Host + r.URL.Path + "?" + v.Encode()
	}
	return reply{status: 200, body: map[string]any{"count": len(items), "next": link(pg + 1), "previous": link(pg - 1),
		"results": items[lo:hi]}}
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func (s *Server) status(inv *Invitation) string {
	switch {
	case inv.Accepted:
		return InvitationAccepted
	case !s.o.Now().Before(inv.ExpireDate):
		return InvitationExpired
	}
	return InvitationOpen
}

func (s *Server) invitationJSON(inv *Invitation) map[string]any {
	return map[string]any{"id": inv.ID, "updated": fmtTime(inv.Updated), "email": inv.Email,
		"expire_date": fmtTime(inv.ExpireDate), "delivery_status": inv.DeliveryStatus, "invitation_status": s.status(inv)}
}

func (s *Server) userJSON(u *User) map[string]any {
	var invs any
	if len(u.Invitations) > 0 {
		l := []any{}
		for _, id := range u.Invitations {
			if inv := s.invites[id]; inv != nil {
				l = append(l, s.invitationJSON(inv))
			}
		}
		invs = l
	}
	return map[string]any{"id": u.ID, "email": u.Email, "first_name": u.FirstName, "last_name": u.LastName,
		"display_name": u.DisplayName(), "date_joined": fmtTime(u.DateJoined), "azure_profile": nil, "id_profile": nil,
		"user_invitations": invs, "roles": []string{u.Role}, "is_verified": u.IsVerified}
}

func printingJSON(u *User) map[string]any {
	gs := make([]map[string]string, 0, len(u.Groups))
	for _, g := range u.Groups {
		gs = append(gs, map[string]string{"group_id": g})
	}
	return map[string]any{"id": u.ID, "local_printing_enabled": u.LocalPrintingEnabled, "self_service_enabled": u.SelfServiceEnabled,
		"myprinters_enabled": u.MyPrintersEnabled, "pull_printing_enabled": u.PullPrintingEnabled, "groups": gs}
}

func decodeObject(body []byte) (map[string]json.RawMessage, *reply) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		r := detail(http.StatusBadRequest, "JSON parse error - Expecting value")
		return nil, &r
	}
	return m, nil
}

// parseExpire reads "2021-07-22T15:15:33" (UTC), with optional fraction and
// zone.
func parseExpire(v string) (time.Time, bool) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (s *Server) invite(body []byte) reply {
	m, bad := decodeObject(body)
	if bad != nil {
		return *bad
	}
	var email, exp string
	if raw, ok := m["email"]; !ok || json.Unmarshal(raw, &email) != nil || email == "" {
		return fieldErr("email", "This field is required.")
	}
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return fieldErr("email", "Enter a valid email address.")
	}
	if raw, ok := m["expire_date"]; !ok || json.Unmarshal(raw, &exp) != nil || exp == "" {
		return fieldErr("expire_date", "This field is required.")
	}
	at, ok := parseExpire(exp)
	if !ok {
		return fieldErr("expire_date", "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].")
	}
	now := s.o.Now().UTC()
	if !at.After(now) {
		return fieldErr("expire_date", "The expiry date must be in the future.")
	}
	if s.byEmail(email) != nil {
		return fieldErr("email", "user with this email already exists.")
	}
	inv := &Invitation{ID: uuid.NewString(), Email: email, Updated: now, ExpireDate: at, DeliveryStatus: "SENT"}
	s.invites[inv.ID] = inv
	s.seq++
	u := &User{ID: uuid.NewString(), Email: email, DateJoined: now, Role: RoleUser, Invitations: []string{inv.ID},
		SelfServiceEnabled: true, MyPrintersEnabled: true, seq: s.seq}
	if s.o.AcceptInvitations {
		inv.Accepted, u.IsVerified = true, true
	}
	s.users[u.ID] = u
	return reply{status: http.StatusCreated, body: s.invitationJSON(inv), applied: true,
		key: "POST /v1/userinvitations/ " + strings.ToLower(email)}
}

func (s *Server) resend(id string, body []byte) reply {
	inv := s.invites[id]
	if inv == nil {
		return detail(http.StatusNotFound, "Not found.")
	}
	now := s.o.Now().UTC()
	var at time.Time
	if len(strings.TrimSpace(string(body))) > 0 {
		m, bad := decodeObject(body)
		if bad != nil {
			return *bad
		}
		if raw, ok := m["expire_date"]; ok {
			var v string
			var ok bool
			if json.Unmarshal(raw, &v) != nil {
				return fieldErr("expire_date", "Not a valid string.")
			}
			if at, ok = parseExpire(v); !ok {
				return fieldErr("expire_date", "Datetime has wrong format.")
			}
			if !at.After(now) {
				return fieldErr("expire_date", "The expiry date must be in the future.")
			}
		}
	}
	switch {
	case !at.IsZero():
		inv.ExpireDate = at
	case s.status(inv) == InvitationExpired:
		inv.ExpireDate = now.Add(30 * 24 * time.Hour)
	}
	inv.Updated = now
	inv.DeliveryStatus = "SENT"
	inv.Resent++
	return reply{status: 200, body: map[string]string{"id": inv.ID}, applied: true}
}

func (s *Server) patchUser(u *User, body []byte) reply {
	m, bad := decodeObject(body)
	if bad != nil {
		return *bad
	}
	next := u.clone()
	for k, raw := range m {
		var v string
		switch k {
		case "first_name", "last_name", "email", "roles":
			if err := json.Unmarshal(raw, &v); err != nil {
				return fieldErr(k, "Not a valid string.")
			}
		default:
			continue // read-only fields are ignored, as DRF does
		}
		switch k {
		case "first_name":
			next.FirstName = v
		case "last_name":
			next.LastName = v
		case "email":
			if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
				return fieldErr("email", "Enter a valid email address.")
			}
			if o := s.byEmail(v); o != nil && o.ID != u.ID {
				return fieldErr("email", "user with this email already exists.")
			}
			next.Email = v
		case "roles":
			if v != RoleAdmin && v != RoleUser {
				return fieldErr("roles", fmt.Sprintf("%q is not a valid choice.", v))
			}
			next.Role = v
		}
	}
	*u = next
	return reply{status: 200, body: s.userJSON(u), applied: true}
}

func (s *Server) patchPrinting(u *User, body []byte) reply {
	var in struct {
		Groups               *[]map[string]any `json:"groups"`
		LocalPrintingEnabled *bool             `json:"local_printing_enabled"`
		SelfServiceEnabled   *bool             `json:"self_service_enabled"`
		MyPrintersEnabled    *bool             `json:"myprinters_enabled"`
		PullPrintingEnabled  *bool             `json:"pull_printing_enabled"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return fieldErr("groups", "Expected a list of items.")
	}
	next := u.clone()
	if in.Groups != nil {
		// The list REPLACES the user's groups: groups left out are removed.
		ids := []string{}
		for _, g := range *in.Groups {
			id, _ := g["group_id"].(string)
			if id == "" {
				return fieldErr("groups", "group_id is required.")
			}
			if s.groups[id] == nil {
				return fieldErr("groups", fmt.Sprintf("Invalid pk %q - object does not exist.", id))
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		next.Groups = ids
	}
	for _, f := range []struct {
		in  *bool
		out *bool
	}{{in.LocalPrintingEnabled, &next.LocalPrintingEnabled}, {in.SelfServiceEnabled, &next.SelfServiceEnabled},
		{in.MyPrintersEnabled, &next.MyPrintersEnabled}, {in.PullPrintingEnabled, &next.PullPrintingEnabled}} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	*u = next
	return reply{status: 200, body: printingJSON(u), applied: true}
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
