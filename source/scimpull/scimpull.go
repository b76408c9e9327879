// Package scimpull is a directory source that reads people and groups from a
// SCIM 2.0 service provider on the schedule, as ldapsrc reads a directory:
// /Users and /Groups paged, mapped to the canonical model, and between full
// reads a meta.lastModified poll whose changed users become targeted runs.
package scimpull

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"go.uber.org/zap"
	"golang.org/x/oauth2/clientcredentials"
)

// Sample is the documented YAML of a SCIM pull source, for config.example.yaml.
//
//go:embed sample.yaml
var Sample string

// Type is the config type name of this source.
const Type = "scim_pull"

// Where group membership is read from.
const (
	GroupsMembers    = "members"
	GroupsUserGroups = "user_groups"
	GroupsNone       = "none"
)

// Paging modes.
const (
	PagingAuto   = "auto"
	PagingIndex  = "index"
	PagingCursor = "cursor"
)

// Settings are the type-specific settings of a SCIM pull source.
type Settings struct {
	// URL is the base of the provider's SCIM endpoint. Required.
	URL string `yaml:"url"`
	// Token is a bearer token; OAuth configures client credentials instead.
	Token config.Secret `yaml:"token"`
	OAuth *OAuth        `yaml:"oauth"`
	// Filter scopes the users read (a SCIM filter expression).
	Filter string `yaml:"filter"`
	// Groups: members (default), user_groups or none.
	Groups string `yaml:"groups"`
	// Paging: auto (default), index or cursor.
	Paging string `yaml:"paging"`
	// PageSize is the count asked per page (default 100).
	PageSize int `yaml:"page_size"`
	// RateLimit is requests per second (default 20).
	RateLimit float64 `yaml:"rate_limit"`
	// Retries of one request that failed transiently (default 5).
	Retries *int `yaml:"retries"`
	// Timeout of one request (default 30s).
	Timeout config.Duration `yaml:"timeout"`
	// PollInterval of the lastModified poll (default 30s; 0 turns it off).
	PollInterval *config.Duration `yaml:"poll_interval"`
	TLS          struct {
		CAFile string `yaml:"ca_file"`
	} `yaml:"tls"`
}

// OAuth are OAuth 2.0 client credentials.
type OAuth struct {
	TokenURL     string        `yaml:"token_url"`
	ClientID     string        `yaml:"client_id"`
	ClientSecret config.Secret `yaml:"client_secret"`
	Scopes       []string      `yaml:"scopes"`
}

// Options are what New needs besides the settings.
type Options struct {
	Logger  *zap.Logger
	Cursors source.Cursors
	// HTTPClient replaces the transport (tests); auth is still added.
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits between retries (default: a timer honouring ctx).
	Sleep func(ctx context.Context, d time.Duration) error
}

// Source reads one SCIM service provider.
type Source struct {
	name string
	s    Settings
	c    *client
	log  *zap.Logger
	now  func() time.Time
	cur  source.Cursors

	mu sync.Mutex
	// idx is what the last full read or poll saw: the basis on which a
	// poll resolves group changes to users. Nil until the first Pull.
	idx *index
	// since is where the next poll resumes; gen counts full reads, so a
	// poll that ran across one does not overwrite its index.
	since time.Time
	gen   int
}

var (
	_ source.Source  = (*Source)(nil)
	_ source.Watcher = (*Source)(nil)
)

// Factory builds a SCIM pull source from its config (type "scim_pull"). No
// request is made until Pull or Watch.
func Factory(cfg config.Source, deps source.Deps) (source.Source, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	if ps := s.validate(cfg.Path()); len(ps) > 0 {
		return nil, ps
	}
	return New(cfg.Name, s, Options{Logger: deps.Logger, Cursors: deps.Cursors})
}

// New returns a SCIM pull source named name.
func New(name string, s Settings, o Options) (*Source, error) {
	if ps := s.validate(""); len(ps) > 0 {
		return nil, fmt.Errorf("scimpull: %s: %w", name, ps)
	}
	s.fillDefaults()
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	hc := o.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if s.TLS.CAFile != "" {
			pem, err := os.ReadFile(s.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("scimpull: %s: tls.ca_file: %w", name, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("scimpull: %s: tls.ca_file %s: no PEM certificate", name, s.TLS.CAFile)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		hc = &http.Client{Transport: tr}
	}
	hc = &http.Client{Transport: hc.Transport, Timeout: s.Timeout.D(), CheckRedirect: hc.CheckRedirect}
	var auth authorizer
	if s.OAuth != nil {
		cc := clientcredentials.Config{ClientID: s.OAuth.ClientID, ClientSecret: s.OAuth.ClientSecret.Value(), TokenURL: s.OAuth.TokenURL, Scopes: s.OAuth.Scopes}
		auth = newOAuth(cc, hc)
	} else {
		auth = bearer(s.Token.Value())
	}
	c := newClient(name, strings.TrimRight(s.URL, "/"), hc, auth, s, o)
	return &Source{name: name, s: s, c: c, log: o.Logger, now: o.Now, cur: o.Cursors}, nil
}

func (s *Settings) fillDefaults() {
	if s.Groups == "" {
		s.Groups = GroupsMembers
	}
	if s.Paging == "" {
		s.Paging = PagingAuto
	}
	if s.PageSize == 0 {
		s.PageSize = 100
	}
	if s.RateLimit == 0 {
		s.RateLimit = 20
	}
	if s.Retries == nil {
		n := 5
		s.Retries = &n
	}
	if s.Timeout == 0 {
		s.Timeout = config.Duration(30 * time.Second)
	}
	if s.PollInterval == nil {
		d := config.Duration(30 * time.Second)
		s.PollInterval = &d
	}
}

// validate reports every problem with the settings, with key paths under path.
func (s Settings) validate(path string) config.Problems {
	var ps config.Problems
	at := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	if u, err := url.Parse(s.URL); strings.TrimSpace(s.URL) == "" {
		ps.Add(at("url"), "is required")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.Add(at("url"), "must be an http(s) URL (got %q)", s.URL)
	}
	switch {
	case s.OAuth != nil && !s.Token.IsZero():
		ps.Add(at("token"), "set either token or oauth, not both")
	case s.OAuth == nil && s.Token.IsZero():
		ps.Add(at("token"), "is required (or oauth: client credentials)")
	case s.OAuth != nil:
		if s.OAuth.TokenURL == "" {
			ps.Add(at("oauth.token_url"), "is required")
		}
		if s.OAuth.ClientID == "" {
			ps.Add(at("oauth.client_id"), "is required")
		}
		if s.OAuth.ClientSecret.IsZero() {
			ps.Add(at("oauth.client_secret"), "is required")
		}
	}
	switch s.Groups {
	case "", GroupsMembers, GroupsUserGroups, GroupsNone:
	default:
		ps.Add(at("groups"), "must be members, user_groups or none (got %q)", s.Groups)
	}
	switch s.Paging {
	case "", PagingAuto, PagingIndex, PagingCursor:
	default:
		ps.Add(at("paging"), "must be auto, index or cursor (got %q)", s.Paging)
	}
	if s.PageSize < 0 || s.PageSize > 10000 {
		ps.Add(at("page_size"), "must be between 1 and 10000 (got %d)", s.PageSize)
	}
	if s.RateLimit < 0 {
		ps.Add(at("rate_limit"), "must not be negative")
	}
	if s.Retries != nil && (*s.Retries < 0 || *s.Retries > 20) {
		ps.Add(at("retries"), "must be between 0 and 20 (got %d)", *s.Retries)
	}
	if s.Timeout < 0 {
		ps.Add(at("timeout"), "must not be negative")
	}
	if s.PollInterval != nil && *s.PollInterval < 0 {
		ps.Add(at("poll_interval"), "must not be negative")
	}
	return ps
}

// Name implements source.Source.
func (s *Source) Name() string { return s.name }

// Pull reads every user and group in scope and returns a complete snapshot.
// A failed request, a short read, a provider that ignores count or whose
// totalResults changes while paging is an error, never a short snapshot.
func (s *Source) Pull(ctx context.Context) (*identity.Snapshot, error) {
	started := s.now()
	res, err := s.read(ctx)
	if err != nil {
		return nil, fmt.Errorf("scimpull: %s: %w", s.name, err)
	}
	if len(res.idx.users) == 0 {
		return nil, fmt.Errorf("scimpull: %s: the provider returned no users", s.name)
	}
	users, groups := res.idx.snapshot(s.name, s.s.Groups)
	s.mu.Lock()
	s.idx = res.idx
	s.mu.Unlock()
	// The poll resumes from when this read began, by the provider's clock
	// where it told it (Date header): a change made while the pages were
	// read is polled again rather than missed.
	since := res.serverStart
	if since.IsZero() {
		since = started.Add(-clockMargin)
	}
	s.saveCursor(ctx, since)
	s.log.Info("scim pull", zap.String("source", s.name), zap.Int("users", len(users)), zap.Int("groups", len(groups)),
		zap.Int("requests", res.requests), zap.Duration("took", s.now().Sub(started)))
	return &identity.Snapshot{Source: s.name, TakenAt: started.UTC(), Users: users, Groups: groups}, nil
}

// clockMargin is how far before our own clock a poll resumes when the
// provider sends no Date header.
const clockMargin = 5 * time.Minute

type readResult struct {
	idx         *index
	serverStart time.Time
	requests    int
}

func (s *Source) read(ctx context.Context) (readResult, error) {
	n0 := s.c.requests.Load()
	mode, serverStart, err := s.c.pagingMode(ctx)
	if err != nil {
		return readResult{}, err
	}
	idx := newIndex()
	users, err := s.c.list(ctx, "Users", s.s.Filter, mode)
	if err != nil {
		return readResult{}, err
	}
	for _, r := range users {
		idx.putUser(r)
	}
	if s.s.Groups == GroupsMembers {
		groups, err := s.c.list(ctx, "Groups", "", mode)
		if err != nil {
			return readResult{}, err
		}
		for _, g := range groups {
			idx.putGroup(g)
		}
	}
	return readResult{idx: idx, serverStart: serverStart, requests: int(s.c.requests.Load() - n0)}, nil
}
