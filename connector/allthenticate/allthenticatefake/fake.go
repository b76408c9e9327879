// Package allthenticatefake is a stateful stand-in for Allthenticate's
// organisation user API, as Allthenticate's user API document describes
// it (see the allthenticate connector's package doc for what it leaves
// open):
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
//   - POST /promoteguest {email_id} makes a guest a full user; which id it
//     reads from email_id is a switch (PromoteBy), and ids can be made to
//     collide (CollidingIDs) so that a wrong reading names someone else.
//   - POST /modifyallusernames {email_id, computer_usernames} and POST
//     /modifysmartcard {email_id, smartcards, allow_duplicates} replace the
//     whole list; the lists are serialized JSON arrays of dictionaries
//     (a JSON array is accepted too). GET /modifysmartcard?email_id= reads
//     the smartcards.
//   - GET /user?email_id= shows policies, computer usernames and
//     smartcards; DELETE /user {email_id or email} removes the user from
//     the organisation, and the policies assigned only to them.
//   - PUT /invites {emails, smartcards, groups, no_email} adds unconfirmed
//     users.
//
// The documents do not say how parameters travel: the fake takes them from
// the query string, a form body or a JSON body alike, and records which.
// Errors are {"error": "..."} with 400 (an unknown user too), successes
// {"success": "..."}. The API key travels in a configurable header with a
// configurable prefix; anything else is 401.
//
// Faults (a seeded share of requests answering 429 with Retry-After, 500,
// a slow answer or a dropped connection, before or after the request is
// applied, plus fail-next), call recording (never the key), out-of-band edits
// and start/stop come from the shared fake toolkit (connector/fakekit).
//
// Use it with httptest.NewServer(srv) (or NewTestServer), or
// srv.Start(addr) from any Go program (the demo).
package allthenticatefake

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
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
	// email_status (default) or ad_status. The document leaves it open
	// (the /togglesuspension states ACTIVE and SUSPENDED; ACTIVE appears
	// as an ad_status value), so tests run against both.
	StatusField string
	// PromoteBy is the id POST /promoteguest reads from its email_id
	// parameter: email_id (default) or user_id (the document describes the
	// parameter as "user_id of the user").
	PromoteBy string
	// CollidingIDs gives every member a user_id equal to the next member's
	// email_id (email_id n, user_id n+1), so an id read the wrong way names
	// someone else. By default user_ids are 1000 + email_id.
	CollidingIDs bool
	// FaultOptions configure the shared fault model (rate, kinds,
	// before or after applying, Retry-After, slow delay, seed).
	fakekit.FaultOptions
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
	Fault fakekit.Fault
	// Applied is true when the request changed the server's state.
	Applied bool
}

// Server is the fake Allthenticate server; it implements http.Handler.
type Server struct {
	o       Options
	mu      sync.Mutex
	users   map[int]*User // by email_id
	nextID  int
	toggles map[int]int
	// deletedPolicies are the policies DELETE /user removed with a user
	// (those assigned to no other member).
	deletedPolicies []string
	fakekit.Kit[Call]
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
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, users: map[int]*User{}, nextID: 1, toggles: map[int]int{}}
	s.Init("allthenticatefake", s, o.FaultOptions)
	return s
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
		c.UserID = 1000 + c.EmailID
		if s.o.CollidingIDs {
			c.UserID = c.EmailID + 1
		}
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

// ResetCalls forgets the recorded requests, applied counts, toggles and
// edits.
func (s *Server) ResetCalls() {
	s.Kit.ResetCalls()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.toggles = map[int]int{}
}

// Edit changes a member the way an administrator does in Allthenticate's
// portal, out of band: no request is recorded, the edit is. It reports
// whether the member exists.
func (s *Server) Edit(emailID int, what string, f func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[emailID]
	if !ok {
		return false
	}
	f(u)
	s.Note(u.Email + ": " + what)
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
	body := fakekit.ReadBody(r)
	p := parseParams(r, body)
	authorized := s.authorized(r)
	var rep reply
	s.Serve(w, r, fakekit.Exchange{
		Apply: func() int {
			s.mu.Lock()
			defer s.mu.Unlock()
			if authorized {
				rep = s.handle(r, p)
			} else {
				rep = fail(http.StatusUnauthorized, "Unauthorized: a valid API key is required")
			}
			return rep.status
		},
		Record: func(status int, fault fakekit.Fault) {
			key := ""
			if rep.applied {
				key = r.Method + " " + r.URL.Path + " " + strconv.Itoa(rep.target)
				if r.URL.Path == "/togglesuspension" {
					s.mu.Lock()
					s.toggles[rep.target]++
					s.mu.Unlock()
				}
			}
			s.Record(func(seq int) Call {
				return Call{Seq: seq, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body), Encoding: p.encoding,
					Params: p.flat, Authorized: authorized, Status: status, Fault: fault, Applied: rep.applied}
			}, key)
		},
		TooMany: func(w http.ResponseWriter, _ int) {
			writeJSON(w, 429, map[string]string{"error": "Too many requests"})
		},
		Failed: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(500)
			_, _ = io.WriteString(w, "<title>500 Internal Server Error</title><h1>Internal Server Error</h1>")
		},
		Write: func() { writeJSON(w, rep.status, rep.body) },
	})
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
		if s.o.PromoteBy == "user_id" {
			u, bad = s.byUserIDParam(p, "email_id")
		}
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
			// The document: it also "delete[s] any policies that are
			// assigned only to them".
			for _, pol := range u.Policies {
				shared := false
				for _, o := range s.users {
					shared = shared || slices.Contains(o.Policies, pol)
				}
				if !shared {
					s.deletedPolicies = append(s.deletedPolicies, pol)
				}
			}
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

// byUserIDParam finds the member whose user_id a parameter names.
func (s *Server) byUserIDParam(p params, key string) (*User, *reply) {
	v, has := p.get(key)
	n, err := strconv.Atoi(v)
	if !has || err != nil {
		r := fail(http.StatusBadRequest, key+" is required and must be an integer")
		return nil, &r
	}
	for _, u := range s.users {
		if u.UserID == n {
			return u, nil
		}
	}
	r := fail(http.StatusBadRequest, "User not found in your organization")
	return nil, &r
}

// DeletedPolicies returns the policies DELETE /user removed with their
// only member.
func (s *Server) DeletedPolicies() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.deletedPolicies)
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
