// Package scimfake is a stateful in-memory SCIM 2.0 service provider for
// tests and demos: Users and Groups with eq filters, paging, PATCH and PUT,
// bearer or OAuth2 client-credentials auth, injectable faults, and a record
// of every request it received.
package scimfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/target/fakekit"
)

// Schema URNs the fake speaks.
const (
	SchemaUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	SchemaList       = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	SchemaPatchOp    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	SchemaError      = "urn:ietf:params:scim:api:messages:2.0:Error"
	SchemaSPC        = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
)

// Options shape the fake's behaviour.
type Options struct {
	// Prefix is the SCIM base path (default "/scim/v2").
	Prefix string
	// Token is a static bearer token the fake accepts. With neither Token
	// nor ClientID set, no authentication is required.
	Token string
	// ClientID and ClientSecret enable POST /oauth/token (client
	// credentials, HTTP Basic or form parameters); the tokens it issues are
	// accepted as bearer tokens.
	ClientID, ClientSecret string
	// NoPatch makes ServiceProviderConfig say patch is unsupported and
	// PATCH answer 501.
	NoPatch bool
	// NoSPC makes /ServiceProviderConfig answer 404.
	NoSPC bool
	// PatchNoContent makes a successful PATCH answer 204 without a body.
	PatchNoContent bool
	// MaxResults caps count per page (default 100).
	MaxResults int
	// UserGroups makes User resources carry the read-only "groups" attribute.
	UserGroups bool
	// NoMembersFilter makes filters on members answer 400, like SPs that
	// cannot filter groups by member.
	NoMembersFilter bool
}

// Request is one recorded request.
type Request struct {
	Method string
	// Path is the request path without the prefix ("/Users/u-1").
	Path  string
	Query url.Values
	Body  string
	// Auth is the Authorization header as received.
	Auth string
}

// Fault is an injected response.
type Fault struct {
	Status int
	Header map[string]string
	Body   string
}

// Server is the fake service provider. Create it with New.
type Server struct {
	opts       Options
	mu         sync.Mutex
	users      map[string]map[string]any
	groups     map[string]map[string]any
	userOrder  []string
	groupOrder []string
	seq        int
	rec        fakekit.Recorder[Request]
	faults     *fakekit.Faults
	tokens     map[string]bool
	tokenCalls int
}

// New returns an empty fake.
func New(opts Options) *Server {
	if opts.Prefix == "" {
		opts.Prefix = "/scim/v2"
	}
	if opts.MaxResults <= 0 {
		opts.MaxResults = 100
	}
	return &Server{opts: opts, users: map[string]map[string]any{}, groups: map[string]map[string]any{}, tokens: map[string]bool{},
		faults: fakekit.NewFaults(fakekit.FaultOptions{})}
}

// Prefix is the SCIM base path the handler serves.
func (s *Server) Prefix() string { return s.opts.Prefix }

// Handler serves the SCIM API under Prefix and the token endpoint at
// /oauth/token.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// Requests returns a copy of every recorded request (token requests excluded).
func (s *Server) Requests() []Request { return s.rec.Calls() }

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() { s.rec.Reset() }

// TokenRequests counts the token endpoint's successful calls.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls
}

// FailNext makes the next request with this method whose path starts with
// path ("/Users") answer f instead, once. Faults queue in order.
func (s *Server) FailNext(method, path string, f Fault) {
	h := map[string]string{"Content-Type": "application/scim+json"}
	for k, v := range f.Header {
		h[k] = v
	}
	s.faults.AnswerNext(method, s.opts.Prefix+path, fakekit.Answer{Status: f.Status, Header: h, Body: f.Body})
}

// Faults is the shared fault model (a seeded rate, fail-next), for
// dropped connections, slow answers and the like.
func (s *Server) Faults() *fakekit.Faults { return s.faults }

// SeedUser stores a user resource as if it existed before, and returns its id.
func (s *Server) SeedUser(res map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	res = deepCopy(res).(map[string]any)
	id := s.newID("u")
	res["id"] = id
	if _, ok := res["schemas"]; !ok {
		res["schemas"] = []any{SchemaUser}
	}
	s.users[id] = res
	s.userOrder = append(s.userOrder, id)
	return id
}

// SeedGroup stores a group with the given member ids and returns its id.
func (s *Server) SeedGroup(displayName string, memberIDs ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID("g")
	members := []any{}
	for _, m := range memberIDs {
		members = append(members, map[string]any{"value": m})
	}
	s.groups[id] = map[string]any{"schemas": []any{SchemaGroup}, "id": id, "displayName": displayName, "members": members}
	s.groupOrder = append(s.groupOrder, id)
	return id
}

// DeleteGroup removes a group directly (as an administrator would).
func (s *Server) DeleteGroup(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, id)
	s.groupOrder = slices.DeleteFunc(s.groupOrder, func(x string) bool { return x == id })
}

// GroupByName returns a copy of the group with this displayName.
func (s *Server) GroupByName(name string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.groupOrder {
		if g := s.groups[id]; strings.EqualFold(str(g["displayName"]), name) {
			return deepCopy(g).(map[string]any), true
		}
	}
	return nil, false
}

// User returns a copy of the user resource with this id.
func (s *Server) User(id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return nil, false
	}
	return s.renderUser(u), true
}

// UserByName returns a copy of the user whose userName matches
// (case-insensitively).
func (s *Server) UserByName(userName string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.userOrder {
		u := s.users[id]
		if n, _ := u["userName"].(string); strings.EqualFold(n, userName) {
			return s.renderUser(u), true
		}
	}
	return nil, false
}

// Users returns copies of every user, in creation order.
func (s *Server) Users() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, id := range s.userOrder {
		out = append(out, s.renderUser(s.users[id]))
	}
	return out
}

// Groups returns copies of every group, in creation order.
func (s *Server) Groups() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, id := range s.groupOrder {
		out = append(out, deepCopy(s.groups[id]).(map[string]any))
	}
	return out
}

// MemberOf returns the displayNames of the groups userID is a member of,
// sorted.
func (s *Server) MemberOf(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, g := range s.groups {
		if hasMember(g, userID) {
			out = append(out, str(g["displayName"]))
		}
	}
	slices.Sort(out)
	return out
}

func (s *Server) newID(kind string) string {
	s.seq++
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", kind, s.seq, hex.EncodeToString(b))
}

// --- HTTP ---

type apiError struct {
	status   int
	scimType string
	detail   string
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if r.URL.Path == "/oauth/token" {
		s.token(w, r, body)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, s.opts.Prefix)
	if !ok {
		writeErr(w, apiError{404, "", "no such endpoint"})
		return
	}
	var status int
	var out any
	var aerr *apiError
	s.faults.Serve(w, r, fakekit.Exchange{
		Apply: func() int {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.authorized(r) {
				aerr = &apiError{401, "", "Authorization failed"}
				return 401
			}
			status, out, aerr = s.route(r.Method, path, r.URL.Query(), body)
			if aerr != nil {
				return aerr.status
			}
			return status
		},
		Record: func(int, fakekit.Fault) {
			s.rec.Add(func(int) Request {
				return Request{Method: r.Method, Path: path, Query: r.URL.Query(), Body: string(body), Auth: r.Header.Get("Authorization")}
			}, "")
		},
		Write: func() {
			if aerr != nil {
				writeErr(w, *aerr)
				return
			}
			if out == nil {
				w.WriteHeader(status)
				return
			}
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(out)
		},
	})
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" && s.opts.ClientID == "" {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return false
	}
	return (s.opts.Token != "" && tok == s.opts.Token) || s.tokens[tok]
}

func (s *Server) token(w http.ResponseWriter, r *http.Request, body []byte) {
	form, _ := url.ParseQuery(string(body))
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || form.Get("grant_type") != "client_credentials" {
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":"unsupported_grant_type"}`)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.ClientID == "" || id != s.opts.ClientID || secret != s.opts.ClientSecret {
		w.WriteHeader(401)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := "at-" + hex.EncodeToString(b)
	s.tokens[tok] = true
	s.tokenCalls++
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "scope": form.Get("scope")})
}

func writeErr(w http.ResponseWriter, e apiError) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(e.status)
	m := map[string]any{"schemas": []any{SchemaError}, "status": strconv.Itoa(e.status), "detail": e.detail}
	if e.scimType != "" {
		m["scimType"] = e.scimType
	}
	_ = json.NewEncoder(w).Encode(m)
}

func (s *Server) route(method, path string, q url.Values, body []byte) (int, any, *apiError) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 1 && parts[0] == "ServiceProviderConfig" && method == http.MethodGet {
		if s.opts.NoSPC {
			return 0, nil, &apiError{404, "", "not found"}
		}
		return 200, map[string]any{
			"schemas":               []any{SchemaSPC},
			"patch":                 map[string]any{"supported": !s.opts.NoPatch},
			"bulk":                  map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
			"filter":                map[string]any{"supported": true, "maxResults": s.opts.MaxResults},
			"changePassword":        map[string]any{"supported": false},
			"sort":                  map[string]any{"supported": false},
			"etag":                  map[string]any{"supported": false},
			"authenticationSchemes": []any{map[string]any{"type": "oauthbearertoken", "name": "OAuth Bearer Token"}},
		}, nil
	}
	if len(parts) < 1 || len(parts) > 2 || (parts[0] != "Users" && parts[0] != "Groups") {
		return 0, nil, &apiError{404, "", "no such endpoint " + path}
	}
	isUser := parts[0] == "Users"
	if len(parts) == 1 {
		switch method {
		case http.MethodGet:
			return s.list(isUser, q)
		case http.MethodPost:
			return s.create(isUser, body)
		}
		return 0, nil, &apiError{405, "", "method not allowed"}
	}
	id := parts[1]
	store := s.groups
	if isUser {
		store = s.users
	}
	cur, ok := store[id]
	if !ok {
		return 0, nil, &apiError{404, "", fmt.Sprintf("Resource %s not found", id)}
	}
	switch method {
	case http.MethodGet:
		return 200, s.render(isUser, cur, q), nil
	case http.MethodDelete:
		delete(store, id)
		if isUser {
			s.userOrder = slices.DeleteFunc(s.userOrder, func(x string) bool { return x == id })
			for _, g := range s.groups {
				removeMember(g, id)
			}
		} else {
			s.groupOrder = slices.DeleteFunc(s.groupOrder, func(x string) bool { return x == id })
		}
		return 204, nil, nil
	case http.MethodPut:
		var in map[string]any
		if err := json.Unmarshal(body, &in); err != nil {
			return 0, nil, &apiError{400, "invalidSyntax", "body is not JSON: " + err.Error()}
		}
		next := cleanInput(in)
		next["id"] = id
		next["meta"] = cur["meta"]
		if aerr := s.validate(isUser, next, id); aerr != nil {
			return 0, nil, aerr
		}
		touch(next)
		store[id] = next
		return 200, s.render(isUser, next, nil), nil
	case http.MethodPatch:
		if s.opts.NoPatch {
			return 0, nil, &apiError{501, "", "PATCH is not supported"}
		}
		var in struct {
			Schemas    []string `json:"schemas"`
			Operations []struct {
				Op    string `json:"op"`
				Path  string `json:"path"`
				Value any    `json:"value"`
			} `json:"Operations"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return 0, nil, &apiError{400, "invalidSyntax", "body is not JSON: " + err.Error()}
		}
		if !slices.Contains(in.Schemas, SchemaPatchOp) {
			return 0, nil, &apiError{400, "invalidSyntax", "schemas must hold the PatchOp URN"}
		}
		next := deepCopy(cur).(map[string]any)
		for _, op := range in.Operations {
			if aerr := applyOp(next, strings.ToLower(op.Op), op.Path, op.Value); aerr != nil {
				return 0, nil, aerr
			}
		}
		if aerr := s.validate(isUser, next, id); aerr != nil {
			return 0, nil, aerr
		}
		touch(next)
		store[id] = next
		if s.opts.PatchNoContent {
			return 204, nil, nil
		}
		return 200, s.render(isUser, next, nil), nil
	}
	return 0, nil, &apiError{405, "", "method not allowed"}
}

func touch(m map[string]any) {
	meta, _ := m["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["lastModified"] = time.Now().UTC().Format(time.RFC3339Nano)
	m["meta"] = meta
}

func cleanInput(in map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range in {
		switch strings.ToLower(k) {
		case "id", "meta", "groups":
			continue
		}
		out[k] = v
	}
	return out
}

// validate checks required and unique attributes and member references.
func (s *Server) validate(isUser bool, res map[string]any, id string) *apiError {
	if isUser {
		name := str(get(res, "userName"))
		if name == "" {
			return &apiError{400, "invalidValue", "userName is required"}
		}
		for oid, u := range s.users {
			if oid != id && strings.EqualFold(str(get(u, "userName")), name) {
				return &apiError{409, "uniqueness", fmt.Sprintf("userName %q already in use", name)}
			}
		}
		return nil
	}
	name := str(get(res, "displayName"))
	if name == "" {
		return &apiError{400, "invalidValue", "displayName is required"}
	}
	for oid, g := range s.groups {
		if oid != id && strings.EqualFold(str(get(g, "displayName")), name) {
			return &apiError{409, "uniqueness", fmt.Sprintf("displayName %q already in use", name)}
		}
	}
	members, _ := get(res, "members").([]any)
	seen := map[string]bool{}
	var kept []any
	for _, m := range members {
		mm, _ := m.(map[string]any)
		v := str(get(mm, "value"))
		if _, ok := s.users[v]; !ok {
			if _, ok := s.groups[v]; !ok {
				return &apiError{400, "invalidValue", fmt.Sprintf("member %q does not exist", v)}
			}
		}
		if !seen[v] {
			seen[v] = true
			kept = append(kept, m)
		}
	}
	if members != nil {
		res[keyOf(res, "members")] = append([]any{}, kept...)
	}
	return nil
}

func (s *Server) create(isUser bool, body []byte) (int, any, *apiError) {
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		return 0, nil, &apiError{400, "invalidSyntax", "body is not JSON: " + err.Error()}
	}
	res := cleanInput(in)
	if aerr := s.validate(isUser, res, ""); aerr != nil {
		return 0, nil, aerr
	}
	kind := "g"
	if isUser {
		kind = "u"
	}
	id := s.newID(kind)
	res["id"] = id
	now := time.Now().UTC().Format(time.RFC3339Nano)
	rt := "Group"
	if isUser {
		rt = "User"
	}
	res["meta"] = map[string]any{"resourceType": rt, "created": now, "lastModified": now}
	if isUser {
		s.users[id] = res
		s.userOrder = append(s.userOrder, id)
	} else {
		s.groups[id] = res
		s.groupOrder = append(s.groupOrder, id)
	}
	return 201, s.render(isUser, res, nil), nil
}

func (s *Server) renderUser(u map[string]any) map[string]any {
	out := deepCopy(u).(map[string]any)
	if s.opts.UserGroups {
		gs := []any{}
		for _, gid := range s.groupOrder {
			g := s.groups[gid]
			if hasMember(g, str(u["id"])) {
				gs = append(gs, map[string]any{"value": gid, "display": str(g["displayName"]), "type": "direct"})
			}
		}
		out["groups"] = gs
	}
	return out
}

func (s *Server) render(isUser bool, res map[string]any, q url.Values) map[string]any {
	var out map[string]any
	if isUser {
		out = s.renderUser(res)
	} else {
		out = deepCopy(res).(map[string]any)
	}
	if q == nil {
		return out
	}
	if ex := q.Get("excludedAttributes"); ex != "" {
		for _, a := range strings.Split(ex, ",") {
			delete(out, keyOf(out, strings.TrimSpace(a)))
		}
	}
	if at := q.Get("attributes"); at != "" {
		keep := map[string]any{"id": out["id"], "schemas": out["schemas"]}
		for _, a := range strings.Split(at, ",") {
			a = strings.TrimSpace(a)
			if v := get(out, a); v != nil {
				keep[keyOf(out, a)] = v
			}
		}
		out = keep
	}
	return out
}

var filterRe = regexp.MustCompile(`^\s*([A-Za-z][\w.:$-]*)\s+(?i:eq)\s+(".*")\s*$`)

func (s *Server) list(isUser bool, q url.Values) (int, any, *apiError) {
	order, store := s.groupOrder, s.groups
	if isUser {
		order, store = s.userOrder, s.users
	}
	var match func(map[string]any) bool
	if f := q.Get("filter"); f != "" {
		m := filterRe.FindStringSubmatch(f)
		if m == nil {
			return 0, nil, &apiError{400, "invalidFilter", "unsupported filter: " + f}
		}
		var want string
		if err := json.Unmarshal([]byte(m[2]), &want); err != nil {
			return 0, nil, &apiError{400, "invalidFilter", "bad filter value: " + m[2]}
		}
		attr := m[1]
		lattr := strings.ToLower(attr)
		if s.opts.NoMembersFilter && strings.HasPrefix(lattr, "members") {
			return 0, nil, &apiError{400, "invalidFilter", "filtering on members is not supported"}
		}
		exact := lattr == "id" || lattr == "externalid" || lattr == "members.value"
		match = func(r map[string]any) bool {
			for _, v := range values(r, attr) {
				if (exact && v == want) || (!exact && strings.EqualFold(v, want)) {
					return true
				}
			}
			return false
		}
	}
	var all []map[string]any
	for _, id := range order {
		r := store[id]
		if isUser && s.opts.UserGroups && match != nil {
			r = s.renderUser(r) // the filter may look at groups
		}
		if match == nil || match(r) {
			all = append(all, r)
		}
	}
	start := 1
	if v, err := strconv.Atoi(q.Get("startIndex")); err == nil && v > 1 {
		start = v
	}
	count := s.opts.MaxResults
	if v, err := strconv.Atoi(q.Get("count")); err == nil && v >= 0 && v < count {
		count = v
	}
	page := []any{}
	for i := start - 1; i < len(all) && len(page) < count; i++ {
		page = append(page, s.render(isUser, all[i], q))
	}
	return 200, map[string]any{"schemas": []any{SchemaList}, "totalResults": len(all), "startIndex": start, "itemsPerPage": len(page), "Resources": page}, nil
}

// values returns the string values at a dotted attribute path, looking
// into multi-valued attributes.
func values(r map[string]any, path string) []string {
	var cur []any = []any{r}
	for _, seg := range strings.Split(path, ".") {
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			switch v := get(m, seg).(type) {
			case []any:
				next = append(next, v...)
			case nil:
			default:
				next = append(next, v)
			}
		}
		cur = next
	}
	var out []string
	for _, c := range cur {
		switch v := c.(type) {
		case string:
			out = append(out, v)
		case bool:
			out = append(out, strconv.FormatBool(v))
		}
	}
	return out
}

// --- PATCH ---

var valuePathRe = regexp.MustCompile(`^([^\[]+)\[\s*([\w.]+)\s+(?i:eq)\s+(".*")\s*\](?:\.(\w+))?$`)

func applyOp(res map[string]any, op, path string, value any) *apiError {
	if op != "add" && op != "replace" && op != "remove" {
		return &apiError{400, "invalidSyntax", "unknown op " + op}
	}
	if path == "" {
		if op == "remove" {
			return &apiError{400, "noTarget", "remove needs a path"}
		}
		m, ok := value.(map[string]any)
		if !ok {
			return &apiError{400, "invalidValue", "a path-less op needs an object value"}
		}
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok && isURN(k) && !strings.Contains(k[len("urn:"):], ".") && knownSchema(k) {
				for sk, sv := range sub {
					if aerr := applyOp(res, op, k+":"+sk, sv); aerr != nil {
						return aerr
					}
				}
				continue
			}
			if aerr := applyOp(res, op, k, v); aerr != nil {
				return aerr
			}
		}
		return nil
	}
	container := res
	attrPath := path
	if isURN(path) {
		if knownSchema(path) {
			m, ok := value.(map[string]any)
			if !ok || op == "remove" {
				if op == "remove" {
					delete(res, keyOf(res, path))
					return nil
				}
				return &apiError{400, "invalidValue", "an extension needs an object value"}
			}
			for k, v := range m {
				if aerr := applyOp(res, op, path+":"+k, v); aerr != nil {
					return aerr
				}
			}
			return nil
		}
		i := strings.LastIndex(path, ":")
		schema := path[:i]
		attrPath = path[i+1:]
		k := keyOf(res, schema)
		c, _ := res[k].(map[string]any)
		if c == nil {
			if op == "remove" {
				return nil
			}
			c = map[string]any{}
			res[k] = c
			addSchema(res, schema)
		}
		container = c
	}
	if m := valuePathRe.FindStringSubmatch(attrPath); m != nil {
		var want string
		if err := json.Unmarshal([]byte(m[3]), &want); err != nil {
			return &apiError{400, "invalidPath", "bad value in path " + path}
		}
		k := keyOf(container, m[1])
		arr, _ := container[k].([]any)
		var kept []any
		hit := false
		for _, e := range arr {
			em, _ := e.(map[string]any)
			if em != nil && str(get(em, m[2])) == want {
				hit = true
				switch {
				case op == "remove" && m[4] == "":
					continue
				case op == "remove":
					delete(em, keyOf(em, m[4]))
				case m[4] != "":
					em[keyOf(em, m[4])] = value
				default:
					if vm, ok := value.(map[string]any); ok {
						e = vm
					}
				}
			}
			kept = append(kept, e)
		}
		if !hit && op != "remove" {
			return &apiError{400, "noTarget", "no value matches " + path}
		}
		container[k] = append([]any{}, kept...)
		return nil
	}
	segs := strings.Split(attrPath, ".")
	if len(segs) > 2 {
		return &apiError{400, "invalidPath", "invalid path " + path}
	}
	if len(segs) == 2 {
		k := keyOf(container, segs[0])
		c, _ := container[k].(map[string]any)
		if c == nil {
			if op == "remove" {
				return nil
			}
			c = map[string]any{}
			container[k] = c
		}
		container = c
	}
	last := segs[len(segs)-1]
	k := keyOf(container, last)
	switch op {
	case "remove":
		delete(container, k)
	case "add":
		if arr, ok := container[k].([]any); ok {
			add, ok := value.([]any)
			if !ok {
				add = []any{value}
			}
			for _, v := range add {
				if !containsValue(arr, v) {
					arr = append(arr, v)
				}
			}
			container[k] = arr
			return nil
		}
		container[k] = value
	case "replace":
		container[k] = value
	}
	return nil
}

func containsValue(arr []any, v any) bool {
	vm, ok := v.(map[string]any)
	if !ok {
		return slices.Contains(arr, v)
	}
	want := str(get(vm, "value"))
	for _, e := range arr {
		if em, ok := e.(map[string]any); ok && want != "" && str(get(em, "value")) == want {
			return true
		}
	}
	return false
}

func isURN(p string) bool { return strings.HasPrefix(strings.ToLower(p), "urn:") }

func knownSchema(p string) bool {
	return strings.EqualFold(p, SchemaEnterprise) || strings.EqualFold(p, SchemaUser) || strings.HasSuffix(strings.ToLower(p), ":user") || strings.HasSuffix(strings.ToLower(p), ":group")
}

func addSchema(res map[string]any, schema string) {
	k := keyOf(res, "schemas")
	arr, _ := res[k].([]any)
	for _, s := range arr {
		if strings.EqualFold(str(s), schema) {
			return
		}
	}
	res[k] = append(arr, schema)
}

func hasMember(g map[string]any, id string) bool {
	members, _ := get(g, "members").([]any)
	for _, m := range members {
		if mm, ok := m.(map[string]any); ok && str(get(mm, "value")) == id {
			return true
		}
	}
	return false
}

func removeMember(g map[string]any, id string) {
	k := keyOf(g, "members")
	members, _ := g[k].([]any)
	var kept []any
	for _, m := range members {
		if mm, ok := m.(map[string]any); ok && str(get(mm, "value")) == id {
			continue
		}
		kept = append(kept, m)
	}
	if members != nil {
		g[k] = append([]any{}, kept...)
	}
}

// keyOf returns the existing key of m equal to k ignoring case, or k.
func keyOf(m map[string]any, k string) string {
	if _, ok := m[k]; ok {
		return k
	}
	for mk := range m {
		if strings.EqualFold(mk, k) {
			return mk
		}
	}
	return k
}

func get(m map[string]any, k string) any {
	if m == nil {
		return nil
	}
	return m[keyOf(m, k)]
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}
