// Package netmakerfake is a stateful stand-in for Netmaker's user API that
// follows what a real Netmaker v1.5.1 server does (status codes and bodies
// measured), including its traps:
//
//   - PUT /api/users/{u} replaces: an absent is_mfa_enabled turns MFA off
//     and wipes the TOTP secret (200, not refused), absent user_group_ids
//     removes every group, an absent display_name or platform_role_id is
//     kept; account_disabled is ignored; the body's username must equal
//     the path. A role or group change revokes the user's access tokens
//     (401 "token revoked" afterwards).
//   - POST /api/users/{u} ignores auth_type: every created user is
//     basic_auth. IdP users (auth_type oauth): DELETE → 400 "cannot delete
//     idp user X"; a PUT changing the display name → 400 "display name
//     cannot be updated for external user".
//   - Permissions: the master key lists, updates, disables and enables
//     (the super-admin too, whose tokens then get 401 "user account
//     disabled") but cannot create or delete; an admin cannot disable an
//     admin (403) nor delete one (500 "admin cannot delete another admin
//     user, including oneself"); nobody disables or enables themself
//     (403 "cannot disable self"); super-admin is assigned only by
//     transfer (403); the community edition refuses other roles (400
//     "invalid user role X").
//   - A user whose platform role the server does not have (a paid-edition
//     role on a server downgraded to the community edition) is listed but
//     cannot be read: GET /api/v1/users?username= answers 500 "record not
//     found"; disable and enable still work.
//   - A missing user is HTTP 500 "record not found", not 404. Routing comes
//     before authentication: an unknown route is a 404 whatever the token.
//   - Usernames: at least 4 characters, an email address or only
//     [A-Za-z0-9.-]. per_page over 100 falls back to 10.
//   - Community edition: no groups (404 on the group routes; user_group_ids
//     stored but unused), roles super-admin and admin only, every new user
//     forced to admin.
//
// Faults, call recording (passwords redacted), out-of-band edits and
// start/stop come from the shared fake toolkit (connector/fakekit).
// Use it with NewTestServer, or srv.Start(addr) from any Go program (the
// demo).
package netmakerfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/mail"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/connector/fakekit"
	"github.com/google/uuid"
)

// MasterUser is the name the server gives callers using the master key.
const MasterUser = "masteradministrator"

// The platform roles.
const (
	RoleSuperAdmin   = "super-admin"
	RoleAdmin        = "admin"
	RoleServiceUser  = "service-user"
	RolePlatformUser = "platform-user"
	RoleAuditor      = "auditor"
)

// Default groups every paid-edition server has.
const (
	DefaultAdminGroup = "global-network-admin-grp"
	DefaultUserGroup  = "global-network-user-grp"
)

// Options configure a Server.
type Options struct {
	// MasterKey is the server's master key (default "netmaker-master-key").
	MasterKey string
	// Community makes the server a community-edition one.
	Community bool
	// LegacyOnly makes GET /api/v2/users answer 404 (an older server).
	LegacyOnly bool
	// FaultOptions configure the shared fault model (rate, kinds,
	// before or after applying, Retry-After, slow delay, seed).
	fakekit.FaultOptions
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// User is one Netmaker user as the server keeps it.
type User struct {
	Username                   string                         `json:"username"`
	DisplayName                string                         `json:"display_name"`
	AuthType                   string                         `json:"auth_type"`
	PlatformRoleID             string                         `json:"platform_role_id"`
	IsMFAEnabled               bool                           `json:"is_mfa_enabled"`
	TOTPSecret                 string                         `json:"-"`
	AccountDisabled            bool                           `json:"account_disabled"`
	ExternalIdentityProviderID string                         `json:"external_identity_provider_id"`
	UserGroups                 map[string]struct{}            `json:"user_group_ids"`
	NetworkRoles               map[string]map[string]struct{} `json:"network_roles"`
	LastLoginTime              time.Time                      `json:"last_login_time"`
	CreatedAt                  time.Time                      `json:"created_at"`
	UpdatedAt                  time.Time                      `json:"updated_at"`
	CreatedBy                  string                         `json:"created_by"`
	RemoteGwIDs                map[string]struct{}            `json:"remote_gw_ids"`
	// IsAdmin, IsSuperAdmin and NumAccessTokens are computed when the
	// server answers.
	IsAdmin         bool `json:"isadmin"`
	IsSuperAdmin    bool `json:"issuperadmin"`
	NumAccessTokens int  `json:"num_access_tokens"`
	// HasPassword says a password is set; the password itself is not kept.
	HasPassword bool `json:"-"`
}

func (u *User) clone() User {
	c := *u
	if u.UserGroups != nil {
		c.UserGroups = make(map[string]struct{}, len(u.UserGroups))
		for k := range u.UserGroups {
			c.UserGroups[k] = struct{}{}
		}
	}
	if u.NetworkRoles != nil {
		c.NetworkRoles = make(map[string]map[string]struct{}, len(u.NetworkRoles))
		for n, rs := range u.NetworkRoles {
			m := make(map[string]struct{}, len(rs))
			for r := range rs {
				m[r] = struct{}{}
			}
			c.NetworkRoles[n] = m
		}
	}
	return c
}

// GroupIDs returns the user's group ids, sorted.
func (u User) GroupIDs() []string {
	out := make([]string, 0, len(u.UserGroups))
	for id := range u.UserGroups {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Group is a user group.
type Group struct {
	ID                         string                         `json:"id"`
	Name                       string                         `json:"name"`
	Default                    bool                           `json:"default"`
	NetworkRoles               map[string]map[string]struct{} `json:"network_roles"`
	MetaData                   string                         `json:"meta_data"`
	ColorCode                  string                         `json:"color_code"`
	ExternalIdentityProviderID string                         `json:"external_identity_provider_id"`
}

// Call is one recorded request.
type Call struct {
	Seq    int
	Method string
	Path   string
	Query  string
	// Body is the request body with any password replaced by "[REDACTED]".
	Body string
	// Caller is who the token resolved to ("" when unauthenticated).
	Caller string
	Status int
	// Fault is the injected fault, if any.
	Fault fakekit.Fault
	// Applied is true when the request changed the server's state.
	Applied bool
}

// Server is the fake Netmaker server; it implements http.Handler.
type Server struct {
	o       Options
	mu      sync.Mutex
	users   map[string]*User
	groups  map[string]*Group // by id
	tokens  map[string]string // access token → username
	revoked map[string]bool   // tokens revoked by a role or group change
	fakekit.Kit[Call]
}

// New returns a server with one super-admin ("netmaker-admin"), the
// default roles and, in the paid edition, the two default groups.
func New(o Options) *Server {
	if o.MasterKey == "" {
		o.MasterKey = "netmaker-master-key"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, users: map[string]*User{}, groups: map[string]*Group{}, tokens: map[string]string{}, revoked: map[string]bool{}}
	s.Init("netmakerfake", s, o.FaultOptions)
	s.users["netmaker-admin"] = &User{Username: "netmaker-admin", DisplayName: "Owner", AuthType: "basic_auth",
		PlatformRoleID: RoleSuperAdmin, HasPassword: true, CreatedAt: o.Now().UTC()}
	if !o.Community {
		s.groups[DefaultAdminGroup] = &Group{ID: DefaultAdminGroup, Name: "Global Network Admins", Default: true}
		s.groups[DefaultUserGroup] = &Group{ID: DefaultUserGroup, Name: "Global Network Users", Default: true}
	}
	return s
}

// MasterKey returns the master key.
func (s *Server) MasterKey() string { return s.o.MasterKey }

// Roles returns the platform roles the server has.
func (s *Server) Roles() []string {
	if s.o.Community {
		return []string{RoleSuperAdmin, RoleAdmin}
	}
	return []string{RoleSuperAdmin, RoleAdmin, RoleServiceUser, RolePlatformUser, RoleAuditor}
}

// AdminToken returns a new personal access token of the super-admin.
func (s *Server) AdminToken() string { return s.CreateToken("netmaker-admin") }

// CreateToken issues a personal access token (JWT-shaped) for username.
func (s *Server) CreateToken(username string) string {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"UserName": username, "TokenType": "access_token", "id": randomID()})
	sig := make([]byte, 32)
	_, _ = rand.Read(sig)
	tok := hdr + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + base64.RawURLEncoding.EncodeToString(sig)
	s.mu.Lock()
	s.tokens[tok] = username
	s.mu.Unlock()
	return tok
}

// AddUser puts a user straight into the server (no validation).
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := u.clone()
	if c.AuthType == "" {
		c.AuthType = "basic_auth"
	}
	if c.PlatformRoleID == "" {
		c.PlatformRoleID = RoleServiceUser
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.o.Now().UTC()
	}
	if c.IsMFAEnabled && c.TOTPSecret == "" {
		c.TOTPSecret = "JBSWY3DPEHPK3PXP"
	}
	c.HasPassword = true
	s.users[c.Username] = &c
}

// AddGroup creates a group and returns its id.
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

// GroupNames maps group ids to names.
func (s *Server) GroupNames(ids []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fakekit.NamesOf(s.groups, ids, groupName)
}

func groupName(g *Group) string { return g.Name }

// Groups returns every group, by name.
func (s *Server) Groups() []Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Group, 0, len(s.groups))
	for _, g := range s.groups {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// User returns one user.
func (s *Server) User(name string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return User{}, false
	}
	return u.clone(), true
}

// TOTPSecret returns the user's TOTP secret ("" when MFA was wiped).
func (s *Server) TOTPSecret(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[name]; ok {
		return u.TOTPSecret
	}
	return ""
}

// Users returns every user, sorted by name.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedUsers()
}

func (s *Server) sortedUsers() []User {
	out := make([]User, 0, len(s.users))
	for _, u := range s.users {
		out = append(out, u.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out
}

// Edit changes a user the way an administrator does in Netmaker's UI, out
// of band: no request is recorded, the edit is. It reports whether the user
// exists.
func (s *Server) Edit(name, what string, f func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[name]
	if !ok {
		return false
	}
	f(u)
	u.UpdatedAt = s.o.Now().UTC()
	s.Note(name + ": " + what)
	return true
}

// apiError is Netmaker's error body.
type apiError struct {
	Code    int    `json:"Code"`
	Message string `json:"Message"`
}

type envelope struct {
	Code     int    `json:"Code"`
	Message  string `json:"Message"`
	Response any    `json:"Response"`
}

// reply is a handler's answer, written after the fault decision.
type reply struct {
	status  int
	body    any
	raw     string
	applied bool
}

func errReply(status int, msg string) reply {
	return reply{status: status, body: apiError{Code: status, Message: msg}}
}

func okEnvelope(msg string, resp any) reply {
	return reply{status: 200, body: envelope{Code: 200, Message: msg, Response: resp}}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := fakekit.ReadBody(r)
	var rep reply
	caller := ""
	s.Serve(w, r, fakekit.Exchange{
		Apply: func() int {
			s.mu.Lock()
			defer s.mu.Unlock()
			caller, rep = s.handle(r, body)
			return rep.status
		},
		Record: func(status int, fault fakekit.Fault) {
			if caller == "" {
				caller = s.callerOf(r)
			}
			key := ""
			if rep.applied {
				key = r.Method + " " + r.URL.Path
			}
			s.Record(func(seq int) Call {
				return Call{Seq: seq, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: redactPassword(body), Caller: caller,
					Status: status, Fault: fault, Applied: rep.applied}
			}, key)
		},
		TooMany: func(w http.ResponseWriter, _ int) {
			writeJSON(w, 429, apiError{Code: 429, Message: "too many requests"})
		},
		Failed: func(w http.ResponseWriter) {
			writeJSON(w, 500, apiError{Code: 500, Message: "W1R3: It's not you it's me."})
		},
		Write: func() {
			if rep.raw != "" {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(rep.status)
				_, _ = io.WriteString(w, rep.raw)
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

func redactPassword(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return string(body)
	}
	if _, ok := m["password"]; ok {
		m["password"] = "[REDACTED]"
		b, _ := json.Marshal(m)
		return string(b)
	}
	return string(body)
}

func (s *Server) callerOf(r *http.Request) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _ := s.auth(r)
	return c
}

// The 401 messages of Netmaker v1.5.1.
const (
	msgUnauthorized = "unauthorized"
	msgRevoked      = "token revoked"
	msgDisabled     = "user account disabled"
)

// auth resolves the bearer token to a caller name, or returns the 401
// message: unknown token, a token revoked by a role or group change, or a
// token whose user was disabled.
func (s *Server) auth(r *http.Request) (string, string) {
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || tok == "" {
		return "", msgUnauthorized
	}
	if tok == s.o.MasterKey {
		return MasterUser, ""
	}
	if s.revoked[tok] {
		return "", msgRevoked
	}
	name, ok := s.tokens[tok]
	if !ok {
		return "", msgUnauthorized
	}
	u, ok := s.users[name]
	switch {
	case !ok:
		return "", msgUnauthorized
	case u.AccountDisabled:
		return "", msgDisabled
	}
	return name, ""
}

func (s *Server) isAdmin(caller string) bool {
	if caller == MasterUser {
		return true
	}
	u, ok := s.users[caller]
	return ok && (u.PlatformRoleID == RoleAdmin || u.PlatformRoleID == RoleSuperAdmin)
}

func (s *Server) roleOf(caller string) string {
	if u, ok := s.users[caller]; ok {
		return u.PlatformRoleID
	}
	return ""
}

// revokeTokens revokes every access token of name.
func (s *Server) revokeTokens(name string) {
	for tok, owner := range s.tokens {
		if owner == name {
			delete(s.tokens, tok)
			s.revoked[tok] = true
		}
	}
}

// view is a user as the server returns it, with the computed fields.
func (s *Server) view(u *User) User {
	c := u.clone()
	c.IsSuperAdmin = u.PlatformRoleID == RoleSuperAdmin
	c.IsAdmin = c.IsSuperAdmin || u.PlatformRoleID == RoleAdmin
	c.NumAccessTokens = 0
	for _, owner := range s.tokens {
		if owner == u.Username {
			c.NumAccessTokens++
		}
	}
	if c.RemoteGwIDs == nil {
		c.RemoteGwIDs = map[string]struct{}{}
	}
	return c
}

func (s *Server) sortedViews() []User {
	names := make([]string, 0, len(s.users))
	for n := range s.users {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]User, 0, len(names))
	for _, n := range names {
		out = append(out, s.view(s.users[n]))
	}
	return out
}

const errNotFound = "record not found"

// route is one API route: the handler runs after authentication.
type route func(caller string) reply

// match finds the route of r; nil means 404. Routing comes before
// authentication, as in the real server: an unknown route answers 404
// whatever the token.
func (s *Server) match(r *http.Request, body []byte) route {
	p := r.URL.Path
	admin := func(h route) route {
		return func(c string) reply {
			if !s.isAdmin(c) {
				return errReply(403, "W1R3: Forbidden")
			}
			return h(c)
		}
	}
	switch {
	case p == "/api/users" && r.Method == http.MethodGet:
		return admin(func(string) reply { return reply{status: 200, body: s.sortedViews()} })
	case p == "/api/v2/users" && r.Method == http.MethodGet:
		if s.o.LegacyOnly {
			return nil
		}
		return admin(func(string) reply { return s.listV2(r) })
	case p == "/api/v1/users" && r.Method == http.MethodGet:
		return func(c string) reply { return s.getV1(c, r.URL.Query().Get("username")) }
	case p == "/api/v1/users/roles" && r.Method == http.MethodGet:
		return admin(func(string) reply {
			var roles []map[string]any
			for _, id := range s.Roles() {
				roles = append(roles, map[string]any{"id": id, "default": true, "full_access": id == RoleSuperAdmin || id == RoleAdmin})
			}
			return okEnvelope("successfully fetched user roles permission templates", roles)
		})
	case p == "/api/v1/users/groups" && r.Method == http.MethodGet:
		if s.o.Community {
			return nil
		}
		return func(string) reply {
			out := make([]Group, 0, len(s.groups))
			for _, g := range s.groups {
				out = append(out, *g)
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
			return okEnvelope("successfully fetched user groups", out)
		}
	case p == "/api/v1/users/group" && r.Method == http.MethodPost:
		if s.o.Community {
			return nil
		}
		return func(c string) reply { return s.createGroup(c, body) }
	}
	rest, ok := strings.CutPrefix(p, "/api/users/")
	if !ok || rest == "" {
		return nil
	}
	parts := strings.Split(rest, "/")
	name := parts[0]
	switch {
	case len(parts) == 1 && r.Method == http.MethodPost:
		return func(c string) reply { return s.create(c, body) }
	case len(parts) == 1 && r.Method == http.MethodPut:
		return func(c string) reply { return s.update(c, name, body) }
	case len(parts) == 1 && r.Method == http.MethodDelete:
		return func(c string) reply { return s.delete(c, name) }
	case len(parts) == 1 && r.Method == http.MethodGet:
		return func(c string) reply {
			if c != name {
				return errReply(403, "W1R3: access denied")
			}
			return reply{status: 200, body: s.view(s.users[name])}
		}
	case len(parts) == 2 && r.Method == http.MethodPost && (parts[1] == "disable" || parts[1] == "enable"):
		return func(c string) reply { return s.setDisabled(c, name, parts[1] == "disable") }
	}
	return nil
}

// handle routes one request, then authenticates it; s.mu is held.
func (s *Server) handle(r *http.Request, body []byte) (string, reply) {
	h := s.match(r, body)
	if h == nil {
		return s.callerLocked(r), reply{status: 404, raw: "404 page not found\n"}
	}
	caller, why := s.auth(r)
	if why != "" {
		return "", errReply(401, why)
	}
	return caller, h(caller)
}

func (s *Server) callerLocked(r *http.Request) string {
	c, _ := s.auth(r)
	return c
}

func (s *Server) listV2(r *http.Request) reply {
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	per, _ := strconv.Atoi(q.Get("per_page"))
	if page < 1 {
		page = 1
	}
	if per < 1 || per > 100 {
		per = 10 // the real server falls back to 10, also for more than 100
	}
	all := s.sortedViews()
	total := len(all)
	pages := (total + per - 1) / per
	lo := min((page-1)*per, total)
	hi := min(lo+per, total)
	data := all[lo:hi]
	if data == nil {
		data = []User{}
	}
	return okEnvelope("fetched users", map[string]any{"data": data, "page": page, "per_page": per, "total": total, "total_pages": pages})
}

func (s *Server) getV1(caller, name string) reply {
	if name == "" {
		return errReply(400, "username is required")
	}
	if caller != name && !s.isAdmin(caller) {
		return errReply(403, "W1R3: Forbidden")
	}
	u, ok := s.users[name]
	if !ok {
		return errReply(500, errNotFound)
	}
	if !s.validRole(u.PlatformRoleID) {
		// The read resolves the user's platform role; a role this server
		// does not have (a paid-edition role after a downgrade to the
		// community edition) fails the read as a missing record, while
		// the lists still carry the user.
		return errReply(500, errNotFound)
	}
	groups := map[string]Group{}
	for id := range u.UserGroups {
		if g, ok := s.groups[id]; ok {
			groups[id] = *g
		}
	}
	// ReturnUserWithRolesAndGroups: the user's fields, the role object, and
	// user_group_ids holding full group objects.
	b, _ := json.Marshal(s.view(u))
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	m["user_group_ids"] = groups
	m["platform_role"] = map[string]any{"id": u.PlatformRoleID, "default": true}
	return okEnvelope("fetched user with role info", m)
}

// userBody is what the server decodes a create or update body into. The
// pointer fields tell an absent key from an empty one: an absent
// display_name or platform_role_id is kept; an absent is_mfa_enabled turns
// MFA off and an absent user_group_ids removes every group.
type userBody struct {
	Username                   string                         `json:"username"`
	Password                   string                         `json:"password"`
	DisplayName                *string                        `json:"display_name"`
	AuthType                   string                         `json:"auth_type"`
	PlatformRoleID             *string                        `json:"platform_role_id"`
	IsMFAEnabled               bool                           `json:"is_mfa_enabled"`
	AccountDisabled            bool                           `json:"account_disabled"`
	ExternalIdentityProviderID string                         `json:"external_identity_provider_id"`
	UserGroups                 map[string]struct{}            `json:"user_group_ids"`
	NetworkRoles               map[string]map[string]struct{} `json:"network_roles"`
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// ValidUsername reports whether Netmaker accepts name: at least 4
// characters, and an email address or only [A-Za-z0-9.-].
func ValidUsername(name string) bool {
	if len([]rune(name)) < 4 {
		return false
	}
	if inCharset(name) {
		return true
	}
	a, err := mail.ParseAddress(name)
	return err == nil && a.Address == name && a.Name == ""
}

func inCharset(name string) bool {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Server) validRole(id string) bool { return slices.Contains(s.Roles(), id) }

// IsIdP reports whether u signed in through an identity provider (an SSO
// user): Netmaker refuses to delete it or change its display name.
func (u User) IsIdP() bool { return u.AuthType == "oauth" || u.ExternalIdentityProviderID != "" }

func (s *Server) create(caller string, body []byte) reply {
	c, ok := s.users[caller]
	if !ok {
		// The master key is not a user: GetUser("masteradministrator") fails.
		return errReply(400, errNotFound)
	}
	if !s.isAdmin(caller) {
		return errReply(403, "W1R3: Forbidden")
	}
	var u userBody
	if err := json.Unmarshal(body, &u); err != nil {
		return errReply(400, err.Error())
	}
	role := deref(u.PlatformRoleID)
	if s.o.Community {
		role = RoleAdmin
	}
	switch {
	case u.Username == MasterUser:
		return errReply(400, "username not allowed")
	case role == "":
		return errReply(400, "platform role is missing")
	case !s.validRole(role):
		return errReply(400, "error fetching role "+role+" "+errNotFound)
	case role == RoleSuperAdmin:
		return errReply(403, "additional superadmins cannot be created")
	case c.PlatformRoleID != RoleSuperAdmin && role == RoleAdmin:
		return errReply(403, "only superadmin can create admin users")
	case !ValidUsername(u.Username):
		return errReply(400, "Key: 'User.UserName' Error:Field validation for 'UserName' failed on the 'in_charset|email' tag")
	case len(u.Password) < 5:
		return errReply(400, "Key: 'User.Password' Error:Field validation for 'Password' failed on the 'min' tag")
	}
	if _, exists := s.users[u.Username]; exists {
		return errReply(400, "user exists")
	}
	if !s.o.Community {
		for id := range u.UserGroups {
			if _, ok := s.groups[id]; !ok {
				return errReply(400, "user group "+id+" not found")
			}
		}
	}
	now := s.o.Now().UTC()
	// auth_type in the body is ignored: every user created through the API
	// is a password user.
	nu := &User{Username: u.Username, DisplayName: deref(u.DisplayName), AuthType: "basic_auth", PlatformRoleID: role,
		UserGroups: u.UserGroups, NetworkRoles: u.NetworkRoles, HasPassword: true, CreatedAt: now, UpdatedAt: now, CreatedBy: caller}
	s.users[u.Username] = nu
	return reply{status: 200, body: s.view(nu), applied: true}
}

func (s *Server) update(caller, name string, body []byte) reply {
	u, ok := s.users[name]
	if !ok {
		return errReply(500, errNotFound)
	}
	var ch userBody
	if err := json.Unmarshal(body, &ch); err != nil {
		return errReply(400, err.Error())
	}
	if ch.Username != u.Username {
		return errReply(400, "user in param and request body not matching")
	}
	role := u.PlatformRoleID
	if ch.PlatformRoleID != nil && *ch.PlatformRoleID != "" {
		role = *ch.PlatformRoleID
	}
	if caller != MasterUser {
		cr := s.roleOf(caller)
		if caller != name {
			switch {
			case cr == RoleAdmin && u.PlatformRoleID == RoleSuperAdmin:
				return errReply(403, "cannot update superadmin user")
			case cr != RoleAdmin && cr != RoleSuperAdmin:
				return errReply(403, "cannot update superadmin user")
			case cr == RoleAdmin && u.PlatformRoleID == RoleAdmin:
				return errReply(403, "an admin user does not have permissions to update another admin user")
			case cr == RoleAdmin && role == RoleAdmin:
				return errReply(403, "an admin user does not have permissions to assign the admin role to another user")
			}
		} else if role != u.PlatformRoleID {
			return errReply(403, "user not allowed to self assign role")
		}
	}
	switch {
	case role == RoleSuperAdmin && u.PlatformRoleID != RoleSuperAdmin:
		return errReply(403, "only a super-admin can assign the super-admin role to another user via transferSuperAdmin method")
	case s.o.Community && role != RoleAdmin && role != RoleSuperAdmin:
		return errReply(400, "invalid user role "+role)
	case !s.validRole(role):
		return errReply(400, "error fetching role "+role+" "+errNotFound)
	}
	if u.IsIdP() && ch.DisplayName != nil && *ch.DisplayName != u.DisplayName {
		return errReply(400, "display name cannot be updated for external user")
	}
	if u.AuthType == "oauth" && ch.Password != "" {
		return errReply(403, "cannot update user's password for an oauth user "+name)
	}
	if !s.o.Community {
		for id := range ch.UserGroups {
			if _, ok := s.groups[id]; !ok {
				return errReply(400, "user group "+id+" not found")
			}
		}
	}
	if ch.Password != "" && len(ch.Password) < 5 {
		return errReply(400, "Key: 'User.Password' Error:Field validation for 'Password' failed on the 'min' tag")
	}
	if role != u.PlatformRoleID || !sameKeys(u.UserGroups, ch.UserGroups) {
		s.revokeTokens(name)
	}
	// The replace: an absent display_name or role is kept; absent groups,
	// network roles and is_mfa_enabled are lost. account_disabled is
	// ignored (use /disable and /enable). Community edition stores the
	// groups it cannot use.
	if ch.DisplayName != nil {
		u.DisplayName = *ch.DisplayName
	}
	u.PlatformRoleID = role
	u.UserGroups = ch.UserGroups
	u.NetworkRoles = ch.NetworkRoles
	if !ch.IsMFAEnabled {
		u.IsMFAEnabled = false
		u.TOTPSecret = ""
	}
	if ch.Password != "" {
		u.HasPassword = true
	}
	u.UpdatedAt = s.o.Now().UTC()
	return reply{status: 200, body: s.view(u), applied: true}
}

func sameKeys(a, b map[string]struct{}) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func (s *Server) delete(caller, name string) reply {
	c, ok := s.users[caller]
	if !ok {
		return errReply(500, errNotFound)
	}
	u, ok := s.users[name]
	if !ok {
		return errReply(500, errNotFound)
	}
	switch {
	case u.PlatformRoleID == RoleSuperAdmin:
		return errReply(500, "superadmin cannot be deleted")
	case c.PlatformRoleID == RoleAdmin && u.PlatformRoleID == RoleAdmin:
		return errReply(500, "admin cannot delete another admin user, including oneself")
	case !s.isAdmin(caller):
		return errReply(403, "W1R3: Forbidden")
	case u.IsIdP():
		return errReply(400, "cannot delete idp user "+name)
	}
	delete(s.users, name)
	s.revokeTokens(name)
	return reply{status: 200, body: name + " deleted.", applied: true}
}

func (s *Server) setDisabled(caller, name string, disable bool) reply {
	verb := "enable"
	if disable {
		verb = "disable"
	}
	if !s.isAdmin(caller) {
		return errReply(403, "W1R3: Forbidden")
	}
	u, ok := s.users[name]
	if !ok {
		return errReply(500, errNotFound)
	}
	if caller == name {
		return errReply(403, "cannot "+verb+" self")
	}
	// An admin cannot disable (nor, assumed, enable) an admin or the
	// super-admin; the super-admin and the master key can, the master key
	// even the super-admin.
	if s.roleOf(caller) == RoleAdmin && (u.PlatformRoleID == RoleAdmin || u.PlatformRoleID == RoleSuperAdmin) {
		return errReply(403, "admin cannot "+verb+" an admin")
	}
	changed := u.AccountDisabled != disable
	u.AccountDisabled = disable
	if changed {
		u.UpdatedAt = s.o.Now().UTC()
	}
	rep := okEnvelope("user account "+verb+"d", nil)
	rep.applied = changed
	return rep
}

func (s *Server) createGroup(caller string, body []byte) reply {
	if !s.isAdmin(caller) {
		return errReply(403, "W1R3: Forbidden")
	}
	var req struct {
		UserGroup Group    `json:"user_group"`
		Members   []string `json:"members"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return errReply(400, err.Error())
	}
	if req.UserGroup.Name == "" {
		return errReply(400, "group name is required")
	}
	for _, g := range s.groups {
		if g.Name == req.UserGroup.Name {
			return errReply(400, "group with this name already exists")
		}
	}
	g := req.UserGroup
	g.ID = uuid.NewString()
	g.Default = false
	s.groups[g.ID] = &g
	for _, m := range req.Members {
		if u, ok := s.users[m]; ok {
			if u.UserGroups == nil {
				u.UserGroups = map[string]struct{}{}
			}
			u.UserGroups[g.ID] = struct{}{}
		}
	}
	rep := okEnvelope("created user group", g)
	rep.applied = true
	return rep
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewTestServer starts the fake on an httptest server and returns it with
// its base URL; both stop when the test ends.
func NewTestServer(t interface{ Cleanup(func()) }, o Options) (*Server, string) {
	s := New(o)
	return s, fakekit.TestServer(t, s)
}
