// Package allthenticatefake is a stateful stand-in for Allthenticate's
// organisation user API, as the seed document
// (allthenticate-users-api.txt) and notes/targets.md describe it:
//
//   - GET /multipleusers lists the organisation's full users (user_tag=GUEST
//     lists the guests instead), unpaginated, with email_id, user_id,
//     email_status (CONFIRMED, UNCONFIRMED, or SUSPENDED for a suspended
//     user), ad_status (the authentication device's), and groups as a list
//     of one-element lists; dates carry no time zone. email=true adds the
//     email to the name field.
//   - POST /togglesuspension {email_id} TOGGLES: it is not idempotent.
//   - POST /modifyrank {admin_user_id (the user_id), rank REGULAR, ADMIN or
//     SUPER}; a guest has no rank.
//   - POST /promoteguest {email_id} makes a guest a full user.
//   - POST /modifyallusernames {email_id, computer_usernames} and POST
//     /modifysmartcard {email_id, smartcards, allow_duplicates} replace the
//     whole list; the lists are serialized JSON arrays of dictionaries
//     (a JSON array is accepted too). GET /modifysmartcard?email_id= reads
//     the smartcards.
//   - GET /user?email_id= shows policies, computer usernames and
//     smartcards; DELETE /user {email_id or email} removes the user from
//     the organisation.
//   - PUT /invites {emails, smartcards, groups, no_email} adds unconfirmed
//     users.
//
// The documents do not say how parameters travel: the fake takes them from
// the query string, a form body or a JSON body alike, and records which.
// Errors are {"error": "..."} with 400 (an unknown user too), successes
// {"success": "..."}. The API key travels in a configurable header with a
// configurable prefix; anything else is 401.
//
// Fault injection: a configurable share of requests answers 429 with
// Retry-After, 500, a slow answer, or a dropped connection, chosen by a
// seeded generator, before (default) or after the request is applied.
// Every request is recorded (never the key) for tests to assert on, and
// every applied toggle is counted per user.
//
// Use it with httptest.NewServer(srv) (or NewTestServer), or
// srv.Start(addr) from any Go program (the demo).
package allthenticatefake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is one kind of injected failure.
type Fault string

// The faults.
const (
	Fault429  Fault = "429"
	Fault500  Fault = "500"
	FaultSlow Fault = "slow"
	FaultDrop Fault = "drop"
)

// Tags and ranks.
const (
	TagUser  = "USER"
	TagGuest = "GUEST"

	RankRegular = "REGULAR"
	RankAdmin   = "ADMIN"
	RankSuper   = "SUPER"
)

// Options configure a Server.
type Options struct {
	// APIKey is the accepted key (default "allthenticate-api-key").
	APIKey string
	// Header and Prefix say how the key travels (defaults "Authorization"
	// and "Bearer ").
	Header string
	Prefix string
	// StatusField is the /multipleusers field that shows a suspension:
	// email_status (default) or ad_status.
	StatusField string
	// FaultRate is the share of requests (0..1) that fail.
	FaultRate float64
	// Faults are the kinds drawn from (default all four).
	Faults []Fault
	// FaultAfterApply applies the request before failing it (the client
	// cannot tell whether it landed).
	FaultAfterApply bool
	// RetryAfter is the Retry-After of a 429, in seconds (default 1).
	RetryAfter int
	// SlowDelay is how long a slow answer waits (default 50ms).
	SlowDelay time.Duration
	// Seed makes the fault sequence reproducible.
	Seed uint64
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Smartcard is a smartcard number (an integer string) with a label.
type Smartcard struct {
	Label  string `json:"label,omitempty"`
	Number string `json:"number"`
}

// User is one member of the organisation as the server keeps it.
type User struct {
	UserID    int
	EmailID   int
	Email     string
	Username  string
	FirstName string
	LastName  string
	Tag       string // USER or GUEST
	Rank      string // REGULAR, ADMIN or SUPER
	// Unconfirmed is true until the user confirms their email.
	Unconfirmed       bool
	Suspended         bool
	Groups            []string
	Policies          []string
	ComputerUsernames []string
	Smartcards        []Smartcard
	Created           time.Time
}

// Call is one recorded request.
type Call struct {
	Seq    int
	Method string
	Path   string
	Query  string
	Body   string
	// Encoding is how the parameters came: json, form, query, or "".
	Encoding string
	// Params are the request's parameters, whatever their encoding.
	Params     map[string]string
	Authorized bool
	Status     int
	// Fault is the injected fault, if any.
	Fault Fault
	// Applied is true when the request changed the server's state.
	Applied bool
}

// Server is the fake Allthenticate server; it implements http.Handler.
type Server struct {
	o       Options
	mu      sync.Mutex
	users   map[int]*User // by email_id
	nextID  int
	calls   []Call
	rng     *mrand.Rand
	applied map[string]int
	toggles map[int]int
	srv     *http.Server
	ln      net.Listener
}

// New returns an empty organisation.
func New(o Options) *Server {
	if o.APIKey == "" {
		o.APIKey = "allthenticate-api-key"
	}
	if o.Header == "" {
		o.Header = "Authorization"
	}
	if o.Prefix == "" && strings.EqualFold(o.Header, "Authorization") {
		o.Prefix = "Bearer "
	}
	if o.StatusField == "" {
		o.StatusField = "email_status"
	}
	if len(o.Faults) == 0 {
		o.Faults = []Fault{Fault429, Fault500, FaultSlow, FaultDrop}
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = 1
	}
	if o.SlowDelay == 0 {
		o.SlowDelay = 50 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{o: o, users: map[int]*User{}, nextID: 1, applied: map[string]int{}, toggles: map[int]int{},
		rng: mrand.New(mrand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
}

// APIKey returns the accepted key.
func (s *Server) APIKey() string { return s.o.APIKey }

// AddUser puts a member straight into the organisation and returns its
// email_id. Empty fields get defaults: ids, tag USER, rank REGULAR,
// the username from the email.
func (s *Server) AddUser(u User) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := u.clone()
	if c.EmailID == 0 {
		c.EmailID = s.nextID
	}
	if c.UserID == 0 {
		c.UserID = 1000 + s.nextID
	}
	s.nextID = max(s.nextID, c.EmailID) + 1
	if c.Tag == "" {
		c.Tag = TagUser
	}
	if c.Rank == "" {
		c.Rank = RankRegular
	}
	if c.Username == "" {
		c.Username, _, _ = strings.Cut(c.Email, "@")
	}
	if c.Created.IsZero() {
		c.Created = s.o.Now().UTC()
	}
	s.users[c.EmailID] = &c
	return c.EmailID
}

// User returns one member by email_id.
func (s *Server) User(emailID int) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[emailID]
	if !ok {
		return User{}, false
	}
	return u.clone(), true
}

// UserByEmail returns the member with this email (case-insensitive).
func (s *Server) UserByEmail(email string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.byEmail(email); u != nil {
		return u.clone(), true
	}
	return User{}, false
}

// Users returns every member, by email_id.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []User
	for _, u := range s.sorted() {
		out = append(out, u.clone())
	}
	return out
}

// SetSuspended sets a member's suspension directly (as an admin would in
// the portal); it is not counted as a toggle.
func (s *Server) SetSuspended(emailID int, suspended bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[emailID]; u != nil {
		u.Suspended = suspended
	}
}

// Toggles returns how many toggles were applied to email_id.
func (s *Server) Toggles(emailID int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.toggles[emailID]
}

// Calls returns every recorded request.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// ResetCalls forgets the recorded requests, applied counts and toggles.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
	s.applied = map[string]int{}
	s.toggles = map[int]int{}
}

// Applied returns how many times "METHOD path email_id" changed the
// server's state.
func (s *Server) Applied() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.applied))
	for k, v := range s.applied {
		out[k] = v
	}
	return out
}

// SetFaults changes the fault rate and kinds.
func (s *Server) SetFaults(rate float64, kinds ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.FaultRate = rate
	if len(kinds) > 0 {
		s.o.Faults = kinds
	}
}

// SetFaultAfterApply says whether faults hit after the request is applied.
func (s *Server) SetFaultAfterApply(after bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.FaultAfterApply = after
}

// Start serves on addr ("127.0.0.1:0" for a free port) and returns the
// base URL. Close stops it.
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("allthenticatefake: listen: %w", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	srv := s.srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops a server started with Start.
func (s *Server) Close() error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// NewTestServer starts the fake on an httptest server and returns it with
// its base URL; both stop when the test ends.
func NewTestServer(t interface{ Cleanup(func()) }, o Options) (*Server, string) {
	s := New(o)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts.URL
}

func (u *User) clone() User {
	c := *u
	c.Groups = slices.Clone(u.Groups)
	c.Policies = slices.Clone(u.Policies)
	c.ComputerUsernames = slices.Clone(u.ComputerUsernames)
	c.Smartcards = slices.Clone(u.Smartcards)
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

func (s *Server) sorted() []*User {
	out := make([]*User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EmailID < out[j].EmailID })
	return out
}

// params are a request's parameters from the query, a form or JSON body.
type params struct {
	encoding string
	flat     map[string]string
	raw      map[string]json.RawMessage
}

func (p params) get(k string) (string, bool) {
	v, ok := p.flat[k]
	return v, ok
}

func parseParams(r *http.Request, body []byte) params {
	p := params{flat: map[string]string{}, raw: map[string]json.RawMessage{}}
	for k, vs := range r.URL.Query() {
		if len(vs) > 0 {
			p.flat[k] = vs[0]
			p.encoding = "query"
		}
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case ct == "application/json" && len(body) > 0:
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			p.encoding = "json"
			for k, v := range m {
				p.raw[k] = v
				var str string
				if json.Unmarshal(v, &str) == nil {
					p.flat[k] = str
				} else {
					p.flat[k] = strings.TrimSpace(string(v))
				}
			}
		}
	case ct == "application/x-www-form-urlencoded" && len(body) > 0:
		if v, err := url.ParseQuery(string(body)); err == nil {
			p.encoding = "form"
			for k, vs := range v {
				if len(vs) > 0 {
					p.flat[k] = vs[0]
				}
			}
		}
	}
	return p
}

// list decodes a list parameter: a serialized JSON array (a string), or a
// JSON array.
func (p params) list(k string, out any) error {
	if raw, ok := p.raw[k]; ok && len(raw) > 0 && raw[0] == '[' {
		return json.Unmarshal(raw, out)
	}
	v, ok := p.flat[k]
	if !ok {
		return fmt.Errorf("%s is required", k)
	}
	if err := json.Unmarshal([]byte(v), out); err != nil {
		return fmt.Errorf("%s must be a serialized JSON array", k)
	}
	return nil
}

// reply is a handler's answer, written after the fault decision.
type reply struct {
	status  int
	body    any
	applied bool
	target  int // the email_id changed
}

func fail(status int, msg string) reply {
	return reply{status: status, body: map[string]string{"error": msg}}
}

func ok(msg string) reply { return reply{status: 200, body: map[string]string{"success": msg}} }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	p := parseParams(r, body)
	s.mu.Lock()
	fault := Fault("")
	if s.o.FaultRate > 0 && s.rng.Float64() < s.o.FaultRate {
		fault = s.o.Faults[s.rng.IntN(len(s.o.Faults))]
	}
	after := s.o.FaultAfterApply
	slow := s.o.SlowDelay
	retryAfter := s.o.RetryAfter
	s.mu.Unlock()

	if fault == FaultSlow && !after {
		if !sleep(r.Context(), slow) {
			return
		}
	}
	authorized := s.authorized(r)
	var rep reply
	if fault == "" || fault == FaultSlow || after {
		s.mu.Lock()
		if authorized {
			rep = s.handle(r, p)
		} else {
			rep = fail(http.StatusUnauthorized, "Unauthorized: a valid API key is required")
		}
		s.mu.Unlock()
	}
	call := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body), Encoding: p.encoding,
		Params: p.flat, Authorized: authorized, Status: rep.status, Fault: fault, Applied: rep.applied}
	switch fault {
	case Fault429:
		call.Status = 429
	case Fault500:
		call.Status = 500
	case FaultDrop:
		call.Status = 0
	}
	s.mu.Lock()
	call.Seq = len(s.calls) + 1
	s.calls = append(s.calls, call)
	if rep.applied {
		s.applied[r.Method+" "+r.URL.Path+" "+strconv.Itoa(rep.target)]++
		if r.URL.Path == "/togglesuspension" {
			s.toggles[rep.target]++
		}
	}
	s.mu.Unlock()

	switch fault {
	case Fault429:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		writeJSON(w, 429, map[string]string{"error": "Too many requests"})
		return
	case Fault500:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(500)
		_, _ = io.WriteString(w, "<title>500 Internal Server Error</title><h1>Internal Server Error</h1>")
		return
	case FaultDrop:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case FaultSlow:
		if after && !sleep(r.Context(), slow) {
			return
		}
	}
	writeJSON(w, rep.status, rep.body)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) authorized(r *http.Request) bool {
	v := r.Header.Get(s.o.Header)
	return v != "" && v == s.o.Prefix+s.o.APIKey
}

// handle serves one authorized request (s.mu held).
func (s *Server) handle(r *http.Request, p params) reply {
	switch r.URL.Path {
	case "/multipleusers":
		if r.Method != http.MethodGet {
			return fail(http.StatusMethodNotAllowed, "method not allowed")
		}
		return s.multipleUsers(p)
	case "/togglesuspension":
		if r.Method != http.MethodPost {
			return fail(http.StatusMethodNotAllowed, "method not allowed")
		}
		u, bad := s.userParam(p, "email_id")
		if bad != nil {
			return *bad
		}
		u.Suspended = !u.Suspended
		state := "ACTIVE"
		if u.Suspended {
			state = "SUSPENDED"
		}
		rep := ok("User " + u.Email + " is now " + state)
		rep.applied, rep.target = true, u.EmailID
		return rep
	case "/modifyrank":
		if r.Method != http.MethodPost {
			return fail(http.StatusMethodNotAllowed, "method not allowed")
		}
		id, _ := p.get("admin_user_id")
		n, err := strconv.Atoi(id)
		if err != nil {
			return fail(http.StatusBadRequest, "admin_user_id is required and must be an integer")
		}
		var u *User
		for _, x := range s.users {
			if x.UserID == n {
				u = x
			}
		}
		if u == nil {
			return fail(http.StatusBadRequest, "User not found in your organization")
		}
		rank, _ := p.get("rank")
		if rank != RankRegular && rank != RankAdmin && rank != RankSuper {
			return fail(http.StatusBadRequest, "rank must be one of REGULAR, ADMIN, SUPER")
		}
		if u.Tag == TagGuest {
			return fail(http.StatusBadRequest, "Guests cannot be given a rank: promote them first")
		}
		u.Rank = rank
		rep := ok("Rank of " + u.Email + " set to " + rank)
		rep.applied, rep.target = true, u.EmailID
		return rep
	case "/promoteguest":
		if r.Method != http.MethodPost {
			return fail(http.StatusMethodNotAllowed, "method not allowed")
		}
		u, bad := s.userParam(p, "email_id")
		if bad != nil {
			return *bad
		}
		if u.Tag != TagGuest {
			return fail(http.StatusBadRequest, "User is not a guest")
		}
		u.Tag = TagUser
		rep := ok(u.Email + " was promoted to USER")
		rep.applied, rep.target = true, u.EmailID
		return rep
	case "/modifyallusernames":
		if r.Method != http.MethodPost {
			return fail(http.StatusMethodNotAllowed, "method not allowed")
		}
		u, bad := s.userParam(p, "email_id")
		if bad != nil {
			return *bad
		}
		var in []map[string]string
		if err := p.list("computer_usernames", &in); err != nil {
			return fail(http.StatusBadRequest, err.Error())
		}
		names := []string{}
		for _, m := range in {
			n := strings.TrimSpace(m["computer_username"])
			if n == "" {
				return fail(http.StatusBadRequest, "every entry needs a computer_username")
			}
			names = append(names, n)
		}
		u.ComputerUsernames = names
		rep := ok("Computer usernames updated")
		rep.applied, rep.target = true, u.EmailID
		return rep
	case "/modifysmartcard":
		u, bad := s.userParam(p, "email_id")
		if bad != nil {
			return *bad
		}
		switch r.Method {
		case http.MethodGet:
			return reply{status: 200, body: map[string]any{"email_id": u.EmailID, "smartcards": cards(u)}}
		case http.MethodPost:
			var in []Smartcard
			if err := p.list("smartcards", &in); err != nil {
				return fail(http.StatusBadRequest, err.Error())
			}
			dups, _ := p.get("allow_duplicates")
			seen := map[string]bool{}
			for _, c := range in {
				if _, err := strconv.ParseUint(c.Number, 10, 64); err != nil {
					return fail(http.StatusBadRequest, fmt.Sprintf("smartcard number %q is not an integer string", c.Number))
				}
				if seen[c.Number] && !strings.EqualFold(dups, "true") {
					return fail(http.StatusBadRequest, fmt.Sprintf("duplicate smartcard number %q", c.Number))
				}
				seen[c.Number] = true
			}
			u.Smartcards = slices.Clone(in)
			rep := ok("Smartcards updated")
			rep.applied, rep.target = true, u.EmailID
			return rep
		}
		return fail(http.StatusMethodNotAllowed, "method not allowed")
	case "/user":
		switch r.Method {
		case http.MethodGet:
			u, bad := s.userParam(p, "email_id")
			if bad != nil {
				return *bad
			}
			pol := [][]string{}
			for _, x := range u.Policies {
				pol = append(pol, []string{x})
			}
			cu := u.ComputerUsernames
			if cu == nil {
				cu = []string{}
			}
			return reply{status: 200, body: map[string]any{"policies": pol, "computer_usernames": cu, "smartcards": cards(u)}}
		case http.MethodDelete:
			var u *User
			if _, has := p.get("email_id"); has {
				var bad *reply
				if u, bad = s.userParam(p, "email_id"); bad != nil {
					return *bad
				}
			} else if e, has := p.get("email"); has {
				if u = s.byEmail(e); u == nil {
					return fail(http.StatusBadRequest, "User not found in your organization")
				}
			} else {
				return fail(http.StatusBadRequest, "email_id or email is required")
			}
			delete(s.users, u.EmailID)
			rep := ok(fmt.Sprintf("User %s/%s was successfully deleted from your organization.", u.Email, u.Username))
			rep.applied, rep.target = true, u.EmailID
			return rep
		}
		return fail(http.StatusMethodNotAllowed, "method not allowed")
	case "/invites":
		if r.Method != http.MethodPut {
			return fail(http.StatusMethodNotAllowed, "method not allowed")
		}
		var emails []string
		if err := p.list("emails", &emails); err != nil {
			return fail(http.StatusBadRequest, err.Error())
		}
		for _, e := range emails {
			if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
				return fail(http.StatusBadRequest, fmt.Sprintf("%q is not a valid email", e))
			}
		}
		n := 0
		for _, e := range emails {
			if s.byEmail(e) != nil {
				continue
			}
			id := s.nextID
			s.nextID++
			user, _, _ := strings.Cut(e, "@")
			s.users[id] = &User{UserID: 1000 + id, EmailID: id, Email: e, Username: user, Tag: TagUser, Rank: RankRegular, Unconfirmed: true, Created: s.o.Now().UTC()}
			n++
		}
		rep := ok(fmt.Sprintf("%d invitation(s) sent", n))
		rep.applied = n > 0
		return rep
	}
	return fail(http.StatusNotFound, "The requested URL was not found on the server.")
}

func cards(u *User) []Smartcard {
	if u.Smartcards == nil {
		return []Smartcard{}
	}
	return slices.Clone(u.Smartcards)
}

// userParam finds the member named by an email_id parameter.
func (s *Server) userParam(p params, key string) (*User, *reply) {
	v, has := p.get(key)
	if !has {
		r := fail(http.StatusBadRequest, key+" is required")
		return nil, &r
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r := fail(http.StatusBadRequest, key+" must be an integer")
		return nil, &r
	}
	u := s.users[n]
	if u == nil {
		r := fail(http.StatusBadRequest, "User not found in your organization")
		return nil, &r
	}
	return u, nil
}

const dateFmt = "2006-01-02 15:04:05"

// listEntry is one element of GET /multipleusers.
type listEntry struct {
	ADStatus    string     `json:"ad_status"`
	ActiveDate  string     `json:"active_date"`
	Confirmed   *string    `json:"confirmed"`
	Created     string     `json:"created"`
	DeviceAdded string     `json:"device_added"`
	Email       string     `json:"email"`
	EmailID     int        `json:"email_id"`
	EmailStatus string     `json:"email_status"`
	FirstName   string     `json:"first_name"`
	Groups      [][]string `json:"groups"`
	LastName    string     `json:"last_name"`
	Name        string     `json:"name"`
	UserID      int        `json:"user_id"`
	Username    string     `json:"username"`
	UniqueID    string     `json:"unique_id"`
}

func (s *Server) multipleUsers(p params) reply {
	tag := TagUser
	if v, _ := p.get("user_tag"); strings.EqualFold(v, TagGuest) {
		tag = TagGuest
	}
	withEmail, _ := p.get("email")
	out := []listEntry{}
	for _, u := range s.sorted() {
		if u.Tag != tag {
			continue
		}
		status := "UNCONFIRMED"
		if !u.Unconfirmed {
			status = "CONFIRMED"
		}
		ad := "ACTIVE"
		if u.Suspended {
			if s.o.StatusField == "ad_status" {
				ad = "SUSPENDED"
			} else {
				status = "SUSPENDED"
			}
		}
		groups := [][]string{}
		for _, g := range u.Groups {
			groups = append(groups, []string{g})
		}
		name := strings.TrimSpace(u.FirstName + " " + u.LastName)
		if strings.EqualFold(withEmail, "true") {
			name = strings.TrimSpace(name + " (" + u.Email + ")")
		}
		created := u.Created.UTC().Format(dateFmt)
		var confirmed *string
		if !u.Unconfirmed {
			confirmed = &created
		}
		out = append(out, listEntry{ADStatus: ad, ActiveDate: created, Confirmed: confirmed, Created: created, DeviceAdded: created,
			Email: u.Email, EmailID: u.EmailID, EmailStatus: status, FirstName: u.FirstName, Groups: groups, LastName: u.LastName,
			Name: name, UserID: u.UserID, Username: u.Username, UniqueID: fmt.Sprintf("u-%d", u.UserID)})
	}
	return reply{status: 200, body: out}
}
