// Package scim is dirsync's inbound SCIM 2.0 server (RFC 7643/7644): one
// per configured SCIM source, it lets identity providers such as Entra ID
// and Okta push Users (with the enterprise extension) and Groups, keeps
// them in the state store, and acts as a source.Source and source.Watcher
// for the sync engine.
package scim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state"
)

// Sample is the documented YAML sample of a SCIM source.
//
//go:embed sample.yaml
var Sample string

// Type is the source type name of the SCIM server in the configuration.
const Type = "scim"

// Defaults for Settings.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultMaxResults   = 100
)

// allowStringValues guards elimity-com/scim's process-wide switch (see
// New): it is written once, before the first server is built, and never
// while a request is being validated.
var allowStringValues sync.Once

// Settings are the type-specific settings of a `type: scim` source.
type Settings struct {
	// TokenSHA256 are hex SHA-256 hashes of the accepted bearer tokens.
	TokenSHA256 []string `yaml:"token_sha256"`
	// Tokens are accepted bearer tokens, hashed at load.
	Tokens []config.Secret `yaml:"tokens"`
	// MaxBodyBytes caps request bodies (default 1 MiB); larger ones get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxResults caps the page size of list responses (default 100).
	MaxResults int `yaml:"max_results"`
	// BaseURL is the public URL of this source's SCIM root, for Location
	// headers and meta.location; derived from each request when empty.
	BaseURL string `yaml:"base_url"`
}

// Option adjusts a Server built by New.
type Option func(*Server)

// WithClock sets the clock used for meta.created/lastModified.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithIDs sets the generator of resource ids (default: random UUIDs).
func WithIDs(newID func() string) Option { return func(s *Server) { s.newID = newID } }

// WithGroupRefresh sets how old the in-process group membership may get
// before Watch re-reads the groups from the store (default 5s), so that
// group changes accepted by other replicas reach Watch's user records.
func WithGroupRefresh(d time.Duration) Option { return func(s *Server) { s.groupRefresh = d } }

// Server is one SCIM source: its HTTP handler, its stored resources and its
// change feed.
type Server struct {
	name         string
	settings     Settings
	tokens       [][sha256.Size]byte
	store        state.Store
	ix           state.IndexedKV // the store's secondary indexes; nil: full scans
	log          *zap.Logger
	now          func() time.Time
	newID        func() string
	groupRefresh time.Duration
	users        *resourceType
	groups       *resourceType
	idx          *index
	recs         recCache // records last read or written (update's first attempt)
	hub          *hub
	prefix       string // default mount path: /scim/<name>/v2
	loaded       atomic.Bool
	loadMu       sync.Mutex
}

var (
	_ source.Source       = (*Server)(nil)
	_ source.Watcher      = (*Server)(nil)
	_ source.EmptyAllowed = (*Server)(nil)
)

// New builds the SCIM server of a `type: scim` source. Its settings are
// decoded strictly from cfg. Resources live in store; the in-process index
// is loaded from it on the first request or Pull (no I/O here).
func New(cfg config.Source, store state.Store, logger *zap.Logger, opts ...Option) (*Server, error) {
	// Entra ID sends booleans as strings ("False"); the schema validator
	// of elimity-com/scim accepts them, converted, only with this switch,
	// which is process-wide: set it here, where a server is built, once.
	allowStringValues.Do(func() { schema.SetAllowStringValues(true) })
	if cfg.Type != Type {
		return nil, fmt.Errorf("scim %s: source type is %q, not %q", cfg.Name, cfg.Type, Type)
	}
	if store == nil {
		return nil, fmt.Errorf("scim %s: no state store", cfg.Name)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	var st Settings
	if err := cfg.Decode(&st); err != nil {
		return nil, fmt.Errorf("scim %s: %w", cfg.Name, err)
	}
	s := &Server{
		name:         cfg.Name,
		settings:     st,
		store:        store,
		log:          logger.With(zap.String("source", cfg.Name)),
		now:          time.Now,
		newID:        func() string { return uuid.NewString() },
		groupRefresh: 5 * time.Second,
		users:        userType(),
		groups:       groupType(),
		idx:          newIndex(),
		prefix:       "/scim/" + cfg.Name + "/v2",
	}
	var ps config.Problems
	for i, h := range st.TokenSHA256 {
		b, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(b) != sha256.Size {
			ps.Add(fmt.Sprintf("%s.token_sha256[%d]", cfg.Path(), i), "must be 64 hex digits (a SHA-256 hash)")
			continue
		}
		s.tokens = append(s.tokens, [sha256.Size]byte(b))
	}
	for i, t := range st.Tokens {
		if strings.TrimSpace(t.Value()) == "" {
			ps.Add(fmt.Sprintf("%s.tokens[%d]", cfg.Path(), i), "is empty")
			continue
		}
		s.tokens = append(s.tokens, sha256.Sum256([]byte(t.Value())))
	}
	if len(st.TokenSHA256)+len(st.Tokens) == 0 {
		ps.Add(cfg.Path()+".token_sha256", "at least one token (token_sha256 or tokens) is required")
	}
	if st.MaxBodyBytes < 0 {
		ps.Add(cfg.Path()+".max_body_bytes", "must be > 0")
	}
	if st.MaxResults < 0 {
		ps.Add(cfg.Path()+".max_results", "must be > 0")
	}
	if st.BaseURL != "" {
		if u, err := url.Parse(st.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.Add(cfg.Path()+".base_url", "must be an http(s) URL (got %q)", st.BaseURL)
		}
	}
	if err := ps.Err(); err != nil {
		return nil, fmt.Errorf("scim %s: %w", cfg.Name, err)
	}
	if s.settings.MaxBodyBytes == 0 {
		s.settings.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.settings.MaxResults == 0 {
		s.settings.MaxResults = DefaultMaxResults
	}
	s.settings.BaseURL = strings.TrimRight(s.settings.BaseURL, "/")
	for _, o := range opts {
		o(s)
	}
	s.hub = newHub()
	if ix, ok := store.(state.IndexedKV); ok {
		s.ix = ix
	}
	return s, nil
}

// Name is the configured source name.
func (s *Server) Name() string { return s.name }

// MountPath is where the daemon mounts Handler: /scim/<source-name>/v2.
func (s *Server) MountPath() string { return s.prefix }

// Handler returns the SCIM endpoint. It serves requests whose path starts
// with MountPath, as well as requests already stripped of it (for instance
// through http.StripPrefix).
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// LoadIndex reads every stored user and group to rebuild the in-process
// index. New does not do it; the daemon may call it at start, and Pull
// does it on every full read.
func (s *Server) LoadIndex(ctx context.Context) error {
	if err := s.ensureStoreIndex(ctx); err != nil {
		return err
	}
	if s.ix == nil {
		// Without store indexes, userName and externalId lookups use the
		// in-process index; with them, the store answers.
		users, err := s.listAll(ctx, s.users)
		if err != nil {
			return err
		}
		s.idx.resetUsers(users)
	}
	groups, err := s.listAll(ctx, s.groups)
	if err != nil {
		return err
	}
	s.idx.resetGroups(groups, s.now())
	s.loaded.Store(true)
	return nil
}

// ensureIndex loads the index before the first request is served. The
// index is only a cache (lookups fall back to the store), so a failure is
// logged and retried on the next request.
func (s *Server) ensureIndex(ctx context.Context) {
	if s.loaded.Load() {
		return
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.loaded.Load() {
		return
	}
	if err := s.LoadIndex(ctx); err != nil {
		s.log.Warn("scim: index not loaded; lookups read the store", zapErr(err))
	}
}

// writeCtx is the context of a write: once a write has begun (claim,
// record, externalId record), it is finished even if the client goes away.
func writeCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), 30*time.Second)
}

// authorized checks the bearer token against every configured hash in
// constant time.
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	match := 0
	for i := range s.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], s.tokens[i][:])
	}
	return match == 1
}

// reqCtx is what a handler needs to know about one request.
type reqCtx struct {
	w    http.ResponseWriter
	r    *http.Request
	base string // absolute URL of the SCIM root, no trailing slash
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/scim+json")
	rel := r.URL.Path
	if len(rel) >= len(s.prefix) && strings.EqualFold(rel[:len(s.prefix)], s.prefix) {
		rel = rel[len(s.prefix):]
	}
	rc := &reqCtx{w: w, r: r, base: s.baseURL(r, rel)}
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dirsync scim"`)
		s.writeError(rc, scimerrors.ScimError{Status: http.StatusUnauthorized,
			Detail: "authorization failure: a valid bearer token is required"})
		return
	}
	if r.ContentLength > s.settings.MaxBodyBytes {
		s.writeError(rc, errTooLarge(s.settings.MaxBodyBytes))
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, s.settings.MaxBodyBytes)
	}
	s.ensureIndex(r.Context())
	if r.Method == http.MethodHead {
		// RFC 7231 §4.3.2: HEAD is GET without the body. The server drops
		// the body of a HEAD response; handlers see a GET (on a copy: the
		// server still knows the request was a HEAD).
		g := *r
		g.Method = http.MethodGet
		rc.r = &g
	}
	segs := splitSegments(rel)
	if len(segs) == 0 {
		s.writeError(rc, scimerrors.ScimError{Status: http.StatusNotFound, Detail: "no such endpoint"})
		return
	}
	switch strings.ToLower(segs[0]) {
	case "users":
		s.serveResource(rc, s.users, segs[1:])
	case "groups":
		s.serveResource(rc, s.groups, segs[1:])
	case "serviceproviderconfig", "serviceproviderconfigs":
		if len(segs) == 1 && s.allow(rc, http.MethodGet) {
			s.writeJSON(rc, http.StatusOK, spConfig(rc.base, s.settings.MaxResults))
		}
	case "resourcetypes":
		s.serveResourceTypes(rc, segs[1:])
	case "schemas":
		s.serveSchemas(rc, segs[1:])
	case ".search":
		// RFC 7644 §3.4.3: a search at the root spans every resource type.
		if len(segs) == 1 && s.allow(rc, http.MethodPost) {
			p, err := s.searchParams(rc)
			if err != nil {
				s.writeError(rc, err)
				return
			}
			s.serveSearch(rc, []*resourceType{s.users, s.groups}, p)
		}
	case "me", "bulk":
		// Optional endpoints (RFC 7644 §3.11, §3.7) this server does not offer.
		s.writeError(rc, scimerrors.ScimError{Status: http.StatusNotImplemented, Detail: "/" + segs[0] + " is not supported"})
	default:
		s.writeError(rc, scimerrors.ScimError{Status: http.StatusNotFound, Detail: "no such endpoint"})
	}
}

// splitSegments splits a relative path into its non-empty, unescaped
// segments (so a trailing slash does not matter).
func splitSegments(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// baseURL is the absolute URL of the SCIM root for a request.
func (s *Server) baseURL(r *http.Request, rel string) string {
	if s.settings.BaseURL != "" {
		return s.settings.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	prefix := s.prefix
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && r.RequestURI != "" {
		if orig := u.Path; strings.HasSuffix(orig, rel) {
			prefix = strings.TrimSuffix(orig, rel)
		}
	}
	prefix = strings.TrimRight(prefix, "/")
	return scheme + "://" + r.Host + prefix
}

func (s *Server) allow(rc *reqCtx, methods ...string) bool {
	for _, m := range methods {
		if rc.r.Method == m {
			return true
		}
	}
	rc.w.Header().Set("Allow", strings.Join(methods, ", "))
	s.writeError(rc, scimerrors.ScimError{Status: http.StatusMethodNotAllowed,
		Detail: fmt.Sprintf("%s is not allowed here", rc.r.Method)})
	return false
}

func errTooLarge(limit int64) scimerrors.ScimError {
	return scimerrors.ScimError{Status: http.StatusRequestEntityTooLarge,
		Detail: fmt.Sprintf("the request body exceeds %d bytes", limit)}
}

// writeError writes a SCIM error. Errors that are not SCIM errors are
// logged and answered with a 500 that does not echo them.
func (s *Server) writeError(rc *reqCtx, err error) {
	var se scimerrors.ScimError
	if !errors.As(err, &se) {
		if errors.Is(err, context.Canceled) {
			return
		}
		s.log.Error("scim: request failed", zap.String("method", rc.r.Method), zap.String("path", rc.r.URL.Path), zap.Error(err))
		se = scimerrors.ScimError{Status: http.StatusInternalServerError, Detail: "internal error; see the dirsync log"}
	}
	b, _ := json.Marshal(se)
	rc.w.WriteHeader(se.Status)
	_, _ = rc.w.Write(b)
}

func (s *Server) writeJSON(rc *reqCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(rc, fmt.Errorf("scim %s: encode response: %w", s.name, err))
		return
	}
	rc.w.WriteHeader(status)
	_, _ = rc.w.Write(b)
}

// readJSON reads a JSON object body.
func (s *Server) readJSON(rc *reqCtx) (map[string]any, error) {
	b, err := s.readBody(rc)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, "the body is not a JSON object")
	}
	if d.More() {
		return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, "trailing data after the JSON object")
	}
	return m, nil
}

func (s *Server) readBody(rc *reqCtx) ([]byte, error) {
	if rc.r.Body == nil {
		return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, "a body is required")
	}
	b, err := io.ReadAll(rc.r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errTooLarge(mbe.Limit)
	}
	if err != nil {
		return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, "could not read the body")
	}
	return b, nil
}

func (s *Server) serveResourceTypes(rc *reqCtx, rest []string) {
	if !s.allow(rc, http.MethodGet) {
		return
	}
	types := []*resourceType{s.users, s.groups}
	if len(rest) == 0 {
		res := make([]any, 0, len(types))
		for _, t := range types {
			res = append(res, t.descriptor(rc.base))
		}
		s.writeJSON(rc, http.StatusOK, listResponse(len(res), 1, res))
		return
	}
	for _, t := range types {
		if len(rest) == 1 && strings.EqualFold(rest[0], t.name) {
			s.writeJSON(rc, http.StatusOK, t.descriptor(rc.base))
			return
		}
	}
	s.writeError(rc, scimerrors.ScimError{Status: http.StatusNotFound, Detail: "no such resource type"})
}

func (s *Server) serveSchemas(rc *reqCtx, rest []string) {
	if !s.allow(rc, http.MethodGet) {
		return
	}
	all := []schema.Schema{s.users.core, s.users.exts[0], s.groups.core}
	docs := make([]map[string]any, 0, len(all)+3)
	for _, sc := range all {
		docs = append(docs, schemaDoc(sc, rc.base))
	}
	// RFC 7643 §5–7: the schemas of the discovery resources themselves.
	docs = append(docs, metaSchemaDocs(rc.base)...)
	if len(rest) == 0 {
		res := make([]any, 0, len(docs))
		for _, d := range docs {
			res = append(res, d)
		}
		s.writeJSON(rc, http.StatusOK, listResponse(len(res), 1, res))
		return
	}
	want := strings.Join(rest, "/")
	for _, d := range docs {
		if id, _ := d["id"].(string); strings.EqualFold(id, want) {
			s.writeJSON(rc, http.StatusOK, d)
			return
		}
	}
	s.writeError(rc, scimerrors.ScimError{Status: http.StatusNotFound, Detail: "no such schema"})
}

func listResponse(total, start int, res []any) map[string]any {
	if res == nil {
		res = []any{}
	}
	return map[string]any{
		"schemas":      []string{urnListResponse},
		"totalResults": total,
		"itemsPerPage": len(res),
		"startIndex":   start,
		"Resources":    res,
	}
}

func (s *Server) serveResource(rc *reqCtx, rt *resourceType, rest []string) {
	switch {
	case len(rest) == 0:
		if !s.allow(rc, http.MethodGet, http.MethodPost) {
			return
		}
		if rc.r.Method == http.MethodGet {
			s.serveList(rc, rt, listParamsFromQuery(rc.r.URL.Query()))
			return
		}
		s.serveCreate(rc, rt)
	case len(rest) == 1 && rest[0] == ".search":
		if !s.allow(rc, http.MethodPost) {
			return
		}
		p, err := s.searchParams(rc)
		if err != nil {
			s.writeError(rc, err)
			return
		}
		s.serveList(rc, rt, p)
	case len(rest) == 1:
		id := rest[0]
		if !s.allow(rc, http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete) {
			return
		}
		switch rc.r.Method {
		case http.MethodGet:
			s.serveGet(rc, rt, id)
		case http.MethodPut:
			s.serveReplace(rc, rt, id)
		case http.MethodPatch:
			s.servePatch(rc, rt, id)
		case http.MethodDelete:
			s.serveDelete(rc, rt, id)
		}
	default:
		s.writeError(rc, scimerrors.ScimError{Status: http.StatusNotFound, Detail: "no such endpoint"})
	}
}

// listParams are the query parameters of a list or search.
type listParams struct {
	filter     string
	startIndex string
	count      string
	proj       projection
}

func listParamsFromQuery(q url.Values) listParams {
	return listParams{filter: q.Get("filter"), startIndex: q.Get("startIndex"), count: q.Get("count"),
		proj: newProjection(q.Get("attributes"), q.Get("excludedAttributes"))}
}

func (s *Server) searchParams(rc *reqCtx) (listParams, error) {
	m, err := s.readJSON(rc)
	if err != nil {
		return listParams{}, err
	}
	var p listParams
	str := func(k string) string {
		v, _ := getFold(m, k)
		switch x := v.(type) {
		case string:
			return x
		case json.Number:
			return x.String()
		case []any:
			parts := make([]string, 0, len(x))
			for _, e := range x {
				if s, ok := e.(string); ok {
					parts = append(parts, s)
				}
			}
			return strings.Join(parts, ",")
		}
		return ""
	}
	p.filter, p.startIndex, p.count = str("filter"), str("startIndex"), str("count")
	p.proj = newProjection(str("attributes"), str("excludedAttributes"))
	return p, nil
}

func (s *Server) serveList(rc *reqCtx, rt *resourceType, p listParams) {
	s.serveSearch(rc, []*resourceType{rt}, p)
}

// serveSearch answers a list or search over the resource types rts, in
// their order. A filter that does not apply to a type (an attribute it
// does not have) matches none of its resources; one that applies to none
// is an invalid filter.
func (s *Server) serveSearch(rc *reqCtx, rts []*resourceType, p listParams) {
	start, count := 1, s.settings.MaxResults
	if p.startIndex != "" {
		n, err := strconv.Atoi(strings.TrimSpace(p.startIndex))
		if err != nil {
			s.writeError(rc, errInvalid(scimerrors.ScimTypeInvalidValue, "startIndex must be an integer"))
			return
		}
		start = max(n, 1)
	}
	if p.count != "" {
		n, err := strconv.Atoi(strings.TrimSpace(p.count))
		if err != nil {
			s.writeError(rc, errInvalid(scimerrors.ScimTypeInvalidValue, "count must be an integer"))
			return
		}
		count = min(max(n, 0), s.settings.MaxResults)
	}
	if s.ix != nil {
		s.serveIndexedSearch(rc, rts, p, start, count)
		return
	}
	type hit struct {
		rt *resourceType
		v  versioned
	}
	var hits []hit
	tfs, err := parseFilters(rts, p.filter)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	for _, tf := range tfs {
		rt, f := tf.rt, tf.f
		recs, err := s.query(rc.r.Context(), rt, f, rc.base)
		if err != nil {
			s.writeError(rc, err)
			return
		}
		for _, r := range recs {
			hits = append(hits, hit{rt, r})
		}
	}
	total := len(hits)
	from := min(start-1, total)
	to := min(from+count, total)
	res := make([]any, 0, to-from)
	for _, h := range hits[from:to] {
		res = append(res, p.proj.apply(h.rt, s.render(h.rt, h.v.rec, h.v.ver, rc.base)))
	}
	s.writeJSON(rc, http.StatusOK, listResponse(total, start, res))
}

// serveIndexedSearch answers a list or search from the store's indexes:
// each resource type is asked only for the part of the page that falls in
// its results (see index.go for the plans).
func (s *Server) serveIndexedSearch(rc *reqCtx, rts []*resourceType, p listParams, start, count int) {
	tfs, err := parseFilters(rts, p.filter)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	total := 0
	var res []any
	for _, tf := range tfs {
		rt, f := tf.rt, tf.f
		offset := max(start-1-total, 0)
		limit := max(count-len(res), 0)
		n, page, err := s.indexedQuery(rc.r.Context(), rt, f, rc.base, offset, limit)
		if err != nil {
			s.writeError(rc, err)
			return
		}
		total += n
		for _, v := range page {
			res = append(res, p.proj.apply(rt, s.render(rt, v.rec, v.ver, rc.base)))
		}
	}
	s.writeJSON(rc, http.StatusOK, listResponse(total, start, res))
}

// typedFilter is a list filter parsed for one resource type (f nil: none).
type typedFilter struct {
	rt *resourceType
	f  expr
}

// parseFilters parses a list filter for each resource type. A type it does
// not parse for (an attribute it does not have) is left out: none of its
// resources match. A filter no type takes, or one comparing in a way its
// attribute's type does not allow, is a 400 invalidFilter.
func parseFilters(rts []*resourceType, filter string) ([]typedFilter, error) {
	var out []typedFilter
	var perr error
	for _, rt := range rts {
		tf := typedFilter{rt: rt}
		if strings.TrimSpace(filter) != "" {
			f, err := parseFilter(filter, rt.urns)
			if err != nil {
				perr = err
				continue
			}
			if err := rt.checkFilter(f); err != nil {
				return nil, err
			}
			tf.f = f
		}
		out = append(out, tf)
	}
	if len(out) == 0 {
		return nil, scimerrors.ScimError{ScimType: scimerrors.ScimTypeInvalidFilter, Status: http.StatusBadRequest,
			Detail: fmt.Sprintf("invalid filter: %v", perr)}
	}
	return out, nil
}

type versioned struct {
	rec *record
	ver int64
}

// query returns the resources passing f, in creation order. Equality on
// userName, externalId or id is answered without reading everything.
func (s *Server) query(ctx context.Context, rt *resourceType, f expr, base string) ([]versioned, error) {
	if c, ok := f.(compareExpr); ok && c.op == "eq" && c.path.sub == "" && c.value.kind != "null" {
		d := rt.lookupPath(c.path)
		switch {
		case d != nil && d.name == "id":
			r, ver, err := s.get(ctx, rt, c.value.str)
			if isNotFound(err) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			return []versioned{{r, ver}}, nil
		case rt == s.users && d != nil && d.name == "userName":
			r, ok, err := s.findUserByName(ctx, c.value.str)
			if err != nil || !ok {
				return nil, err
			}
			return s.withVersions(ctx, rt, f, base, []*record{r})
		case rt == s.users && d != nil && d.name == "externalId":
			rs, err := s.findUsersByExternalID(ctx, c.value.str)
			if err != nil {
				return nil, err
			}
			return s.withVersions(ctx, rt, f, base, rs)
		}
	}
	m, err := s.store.KVList(ctx, s.bucket(rt))
	if err != nil {
		return nil, fmt.Errorf("scim %s: list %s: %w", s.name, rt.endpoint, err)
	}
	all := make([]*record, 0, len(m))
	for k, b := range m {
		r, err := decodeRecord(b)
		if err != nil {
			s.log.Error("scim: undecodable record skipped", zapKind(rt.name), zapID(k), zapErr(err))
			continue
		}
		r.ID = k
		all = append(all, r)
	}
	sortRecords(all)
	if rt == s.users {
		s.idx.resetUsers(all)
	} else {
		s.idx.resetGroups(all, s.now())
	}
	ev := evalCtx{rt: rt}
	out := make([]versioned, 0, len(all))
	for _, r := range all {
		if f != nil && !ev.match(f, s.fullView(rt, r, 0, base)) {
			continue
		}
		out = append(out, versioned{rec: r})
	}
	return s.withVersions(ctx, rt, f, base, recordsOf(out))
}

func recordsOf(vs []versioned) []*record {
	out := make([]*record, len(vs))
	for i, v := range vs {
		out[i] = v.rec
	}
	return out
}

// withVersions attaches each record's version (its ETag). KVList does not
// return versions, so small result sets (lookups) are read again, record
// and version together; larger lists are rendered without meta.version.
func (s *Server) withVersions(ctx context.Context, rt *resourceType, f expr, base string, rs []*record) ([]versioned, error) {
	out := make([]versioned, 0, len(rs))
	for _, r := range rs {
		if len(rs) > 10 {
			out = append(out, versioned{rec: r})
			continue
		}
		fresh, ver, err := s.get(ctx, rt, r.ID)
		if isNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		if f != nil && !(evalCtx{rt: rt}).match(f, s.fullView(rt, fresh, ver, base)) {
			continue // changed meanwhile and no longer matches
		}
		out = append(out, versioned{rec: fresh, ver: ver})
	}
	return out, nil
}

// filterView is a record as filters see it: attributes plus id and meta.
// Index entries are computed from it too.
func (s *Server) filterView(rt *resourceType, r *record) map[string]any {
	v := make(map[string]any, len(r.Attrs)+2)
	for k, x := range r.Attrs {
		v[k] = x
	}
	v["id"] = r.ID
	v["meta"] = map[string]any{
		"resourceType": rt.name,
		"created":      r.Created.UTC().Format(time.RFC3339Nano),
		"lastModified": r.Modified.UTC().Format(time.RFC3339Nano),
	}
	return v
}

// fullView is a record as a filter sees it in a list: everything a GET
// returns (schemas, the computed groups, meta.location and meta.version
// included), so a filter matches what the client can read (RFC 7644
// §3.4.2.2).
func (s *Server) fullView(rt *resourceType, r *record, ver int64, base string) map[string]any {
	return s.render(rt, r, ver, base)
}

// render builds the response representation of a record.
func (s *Server) render(rt *resourceType, r *record, ver int64, base string) map[string]any {
	out := make(map[string]any, len(r.Attrs)+4)
	for k, v := range r.Attrs {
		out[k] = v
	}
	schemas := []any{rt.core.ID} // []any: filters (schemas eq ...) read it as a list
	for _, e := range rt.exts {
		if _, ok := r.Attrs[e.ID]; ok {
			schemas = append(schemas, e.ID)
		}
	}
	out["schemas"] = schemas
	out["id"] = r.ID
	loc := base + "/" + rt.endpoint + "/" + url.PathEscape(r.ID)
	meta := map[string]any{
		"resourceType": rt.name,
		"created":      r.Created.UTC().Format(time.RFC3339Nano),
		"lastModified": r.Modified.UTC().Format(time.RFC3339Nano),
		"location":     loc,
	}
	if ver > 0 {
		meta["version"] = etag(ver)
	}
	out["meta"] = meta
	if rt == s.users {
		if gs := s.idx.directGroups(r.ID); len(gs) > 0 {
			list := make([]any, 0, len(gs))
			for _, g := range gs {
				list = append(list, map[string]any{"value": g.id, "display": g.name,
					"$ref": base + "/Groups/" + url.PathEscape(g.id), "type": "direct"})
			}
			out["groups"] = list
		}
	}
	return out
}

func (s *Server) serveGet(rc *reqCtx, rt *resourceType, id string) {
	r, ver, err := s.get(rc.r.Context(), rt, id)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	rc.w.Header().Set("ETag", etag(ver))
	if inm := rc.r.Header.Get("If-None-Match"); inm != "" && matchesIfMatch(inm, ver) {
		rc.w.WriteHeader(http.StatusNotModified)
		return
	}
	proj := newProjection(rc.r.URL.Query().Get("attributes"), rc.r.URL.Query().Get("excludedAttributes"))
	s.writeJSON(rc, http.StatusOK, proj.apply(rt, s.render(rt, r, ver, rc.base)))
}

// validateBody validates a POST or PUT body and checks required values.
func (s *Server) validateBody(rt *resourceType, body map[string]any) (map[string]any, error) {
	attrs, err := rt.validate(body)
	if err != nil {
		return nil, err
	}
	if rt == s.users && strings.TrimSpace(asString(attrs["userName"])) == "" {
		return nil, errInvalid(scimerrors.ScimTypeInvalidValue, "userName is required")
	}
	if rt == s.groups && strings.TrimSpace(asString(attrs["displayName"])) == "" {
		return nil, errInvalid(scimerrors.ScimTypeInvalidValue, "displayName is required")
	}
	// RFC 7643 §2.4: "primary" true appears at most once per attribute; of
	// several (a POST or PUT that sends two), the first is kept.
	for _, d := range rt.attrs {
		if d.multi && d.sub("primary") != nil {
			keepFirstPrimary(asList(attrs[d.name]))
		}
	}
	return attrs, nil
}

func asString(v any) string { s, _ := v.(string); return s }

func (s *Server) serveCreate(rc *reqCtx, rt *resourceType) {
	body, err := s.readJSON(rc)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	attrs, err := s.validateBody(rt, body)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	ctx, cancel := writeCtx(rc.r)
	defer cancel()
	r, ver, err := s.create(ctx, rt, attrs)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	s.changed(rt, "POST", nil, r)
	out := s.render(rt, r, ver, rc.base)
	rc.w.Header().Set("Location", out["meta"].(map[string]any)["location"].(string))
	rc.w.Header().Set("ETag", etag(ver))
	proj := newProjection(rc.r.URL.Query().Get("attributes"), rc.r.URL.Query().Get("excludedAttributes"))
	s.writeJSON(rc, http.StatusCreated, proj.apply(rt, out))
}

func (s *Server) serveReplace(rc *reqCtx, rt *resourceType, id string) {
	body, err := s.readJSON(rc)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	attrs, err := s.validateBody(rt, body)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	ctx, cancel := writeCtx(rc.r)
	defer cancel()
	r, ver, prev, err := s.update(ctx, rt, id, preOf(rc.r), func(*record) (map[string]any, error) {
		return jsonClone(attrs).(map[string]any), nil
	})
	if err != nil {
		s.writeError(rc, err)
		return
	}
	if prev != nil {
		s.changed(rt, "PUT", prev, r)
	}
	rc.w.Header().Set("ETag", etag(ver))
	proj := newProjection(rc.r.URL.Query().Get("attributes"), rc.r.URL.Query().Get("excludedAttributes"))
	s.writeJSON(rc, http.StatusOK, proj.apply(rt, s.render(rt, r, ver, rc.base)))
}

func (s *Server) servePatch(rc *reqCtx, rt *resourceType, id string) {
	b, err := s.readBody(rc)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	ops, err := decodePatch(b)
	if err != nil {
		s.writeError(rc, err)
		return
	}
	ctx, cancel := writeCtx(rc.r)
	defer cancel()
	r, ver, prev, err := s.update(ctx, rt, id, preOf(rc.r), func(cur *record) (map[string]any, error) {
		return s.patched(rt, cur.Attrs, ops)
	})
	if err != nil {
		s.writeError(rc, err)
		return
	}
	if prev != nil {
		s.changed(rt, "PATCH", prev, r)
	}
	rc.w.Header().Set("ETag", etag(ver))
	q := rc.r.URL.Query()
	if q.Has("attributes") || q.Has("excludedAttributes") {
		proj := newProjection(q.Get("attributes"), q.Get("excludedAttributes"))
		s.writeJSON(rc, http.StatusOK, proj.apply(rt, s.render(rt, r, ver, rc.base)))
		return
	}
	rc.w.WriteHeader(http.StatusNoContent)
}

// patched applies PATCH operations to a copy of attrs and validates the
// result like a PUT body.
func (s *Server) patched(rt *resourceType, attrs map[string]any, ops []patchOp) (map[string]any, error) {
	doc := jsonClone(attrs).(map[string]any)
	if err := rt.applyPatch(doc, ops); err != nil {
		return nil, err
	}
	return s.validateBody(rt, doc)
}

func (s *Server) serveDelete(rc *reqCtx, rt *resourceType, id string) {
	ctx, cancel := writeCtx(rc.r)
	defer cancel()
	prev, err := s.remove(ctx, rt, id, preOf(rc.r))
	if err != nil {
		s.writeError(rc, err)
		return
	}
	s.changed(rt, "DELETE", prev, nil)
	rc.w.WriteHeader(http.StatusNoContent)
}

func zapKind(k string) zap.Field   { return zap.String("resource_type", k) }
func zapID(id string) zap.Field    { return zap.String("id", id) }
func zapErr(err error) zap.Field   { return zap.Error(err) }
func zapReason(r string) zap.Field { return zap.String("reason", r) }
