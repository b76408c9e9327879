// Package console is dirsync's web console: server-rendered pages at /ui/
// for the people on call (overview, runs, held plans, a person's chain),
// behind OpenID Connect sign-in with viewer and approver roles. It talks to
// the engine only through Backend, so it holds no engine logic of its own.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/report"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Backend is what the console needs from the engine and the store.
type Backend interface {
	Overview(ctx context.Context) (Overview, error)
	Runs(ctx context.Context, limit int) ([]state.Run, error)
	Run(ctx context.Context, id string) (state.Run, error)
	Decisions(ctx context.Context, q state.DecisionQuery) ([]state.Decision, error)
	// HeldPlans lists what is held, without re-checking.
	HeldPlans(ctx context.Context) ([]Held, error)
	// Recheck returns a held plan with each step's Wanted set from a plan
	// made now from the current sources and cache.
	Recheck(ctx context.Context, runID string) (Held, error)
	// Approve applies the held steps a fresh plan still wants, limited to
	// the actions in only when it is not empty; by names the approver. It
	// may answer at once with Status "started" and go on in the
	// background; Approval then tells how far it got.
	Approve(ctx context.Context, runID string, only []string, by string) (ApproveResult, error)
	// Approval is the state of the last approval of runID started here.
	Approval(ctx context.Context, runID string) (Approval, error)
	// Discard drops a held plan; by names who did it.
	Discard(ctx context.Context, runID, by string) error
	// Explain is the chain for a person (key, username or email) per target.
	Explain(ctx context.Context, who string) ([]Explanation, error)
	// FindPeople returns up to limit people whose username, email or name
	// (any word of it) starts with q, case-insensitively.
	FindPeople(ctx context.Context, q string, limit int) ([]PersonMatch, error)
	// Leavers is the offboarding evidence from since until now.
	Leavers(ctx context.Context, since time.Time) (*report.LeaversReport, error)
}

// Status is a traffic-light state with its reason.
type Status struct {
	Level  string // ok, warn, bad
	Reason string
}

// Overview is the state of every source and target.
type Overview struct {
	Sources []SourceHealth
	Targets []TargetHealth
	Leader  string // this replica's role and the leader, as known
	Now     time.Time
}

// SourceHealth is one source's state.
type SourceHealth struct {
	Name        string
	LastPull    time.Time // last complete snapshot
	Users       int
	Incremental string // how changes arrive (watch, poll, push) and the last one seen
	LastError   string
	Status      Status
}

// TargetHealth is one target's state.
type TargetHealth struct {
	Name        string
	Accounts    int
	LastRun     time.Time
	Breaker     string // closed, or why it opened in the last run
	Quarantined int
	Held        int
	Reconcile   time.Time
	Status      Status
}

// Step is one held step.
type Step struct {
	Target string
	User   string
	Action string
	Reason string
	// Wanted is whether a plan made now still wants it (after Recheck).
	Wanted bool
}

// Held is a held plan.
type Held struct {
	RunID     string
	Reason    string
	Created   time.Time
	Targets   []string
	Steps     []Step
	Rechecked bool
	// ReadsAt is when the reads the re-check planned from were made.
	ReadsAt time.Time
}

// Approval is an approval running in the background, or its outcome.
type Approval struct {
	HeldRun  string
	By       string
	Total    int // held steps released (an upper bound of what is applied)
	Done     int // decisions recorded so far
	Started  time.Time
	Finished time.Time // zero while running
	RunID    string    // the run that applied it (when finished)
	Status   string
	Err      string // a fixed message when it failed
}

// ApproveResult is what an approval did.
type ApproveResult struct {
	RunID  string // the run that applied it
	Status string
	Counts map[string]int
}

// Explanation is one target's chain for a person: the source facts, the
// rules that matched, the desired account, the last confirmed one, and what
// a run would do now.
type Explanation struct {
	Target  string
	User    *identity.User
	InScope bool
	Why     string
	RoleWhy string
	Desired *identity.Account
	Cached  *identity.Account
	Steps   []Step
	Skips   []Step
	// ReadsAt is when the stored reads it was planned from were made.
	ReadsAt time.Time
}

// PersonMatch is one person a search found.
type PersonMatch struct {
	Key, Source, Username, Email, Name string
}

// Options build a Server.
type Options struct {
	Config  config.Console
	Backend Backend
	Logger  *zap.Logger
	// Secrets are values no page may contain (checked before every write).
	Secrets []string
	// Sessions is where sign-ins are kept: the state store (required).
	Sessions KV
	// HTTPClient reaches the IdP (default http.DefaultClient).
	HTTPClient *http.Client
	Now        func() time.Time
}

// Server serves the console. Mount Handler at /ui/.
type Server struct {
	o       Options
	base    *url.URL
	tmpl    map[string]*template.Template
	auth    *authenticator
	static  http.Handler
	secrets []string
}

// New builds the console. It does not contact the IdP until someone signs in.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	base, err := url.Parse(o.Config.BaseURL)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	s := &Server{o: o, base: base}
	for _, v := range o.Secrets {
		if len(v) >= 4 {
			s.secrets = append(s.secrets, v)
		}
	}
	if s.tmpl, err = parseTemplates(); err != nil {
		return nil, err
	}
	if s.auth, err = newAuthenticator(o, base); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(assets, "static")
	s.static = http.StripPrefix("/ui/static/", noListing(http.FileServerFS(sub)))
	return s, nil
}

// Handler serves everything under /ui/.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", s.static)
	mux.HandleFunc("GET /ui/login", s.loginPage)
	mux.HandleFunc("GET /ui/login/oidc", s.auth.startOIDC)
	mux.HandleFunc("GET /ui/auth/callback", s.callback)
	mux.HandleFunc("POST /ui/login/token", s.tokenLogin)
	mux.Handle("POST /ui/logout", s.need(roleViewer, s.logout))
	mux.Handle("GET /ui/{$}", s.need(roleViewer, s.overview))
	mux.Handle("GET /ui/runs", s.need(roleViewer, s.runs))
	mux.Handle("GET /ui/runs/{id}", s.need(roleViewer, s.run))
	mux.Handle("GET /ui/held", s.need(roleViewer, s.heldList))
	mux.Handle("GET /ui/held/{id}", s.need(roleViewer, s.held))
	mux.Handle("POST /ui/held/{id}/approve", s.need(roleApprover, s.approve))
	mux.Handle("GET /ui/held/{id}/approval", s.need(roleViewer, s.approval))
	mux.Handle("POST /ui/held/{id}/discard", s.need(roleApprover, s.discard))
	mux.Handle("GET /ui/person", s.need(roleViewer, s.person))
	mux.Handle("GET /ui/leavers", s.need(roleViewer, s.leavers))
	mux.Handle("GET /ui/leavers.csv", s.need(roleViewer, s.leavers))
	return securityHeaders(mux)
}

// securityHeaders sets the headers every console response carries: a CSP
// that allows no script at all, no framing, no referrer to other sites,
// and no caching of pages that show people's data.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// noListing answers 404 for a folder instead of listing it.
func noListing(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
