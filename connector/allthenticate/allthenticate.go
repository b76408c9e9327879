// Package allthenticate is the connector for Allthenticate's organisation
// user API (an API key made in the admin portal).
//
// Capabilities: suspend and unsuspend (POST /togglesuspension, a toggle:
// see below), rank (Account.Role REGULAR, ADMIN or SUPER through POST
// /modifyrank with admin_user_id, the user's user_id; granting SUPER needs
// allow_super: true, else the change is a skipped decision), computer
// usernames and smartcards (Account.Attributes["computer_usernames"] and
// ["smartcards"], comma-separated, mapped from directory attributes with
// the target's attributes key; each is a whole-list replacement through
// POST /modifyallusernames and POST /modifysmartcard, and an absent
// attribute clears the list), delete (DELETE /user: removes the user from
// the organisation only), list (GET /multipleusers, the organisation's full
// users) and read.
//
// No create: Allthenticate users join by invitation from the portal. When a
// person comes into scope, Create looks for them: a guest (GET
// /multipleusers?user_tag=GUEST) is promoted to a full user (POST
// /promoteguest); a full user not yet in the cache is adopted; either is
// then made active and given the mapped computer usernames and smartcards
// (the engine takes a created account to have them). Anyone else gets a
// skipped decision saying they must be invited in Allthenticate first (they
// are adopted by the engine's list on a later full run once they are
// members). Guests are listed (GET /multipleusers?user_tag=GUEST, marked
// Remote["tag"] GUEST) and suspended like full users: a guest can sign in,
// so a person disabled in the directory who is only a guest loses access
// too. A guest whom the rules give a rank is promoted first, unless the
// account is suspended (suspend runs before set_role: see Order). Names and email cannot be changed through
// the API: the cache keeps them, nothing is sent.
//
// Users are matched by email (case-insensitive); their email_id and user_id
// are kept in Account.Remote.
//
// Suspension: which /multipleusers field shows it is not documented (the
// /togglesuspension states ACTIVE and SUSPENDED could be email_status's or
// ad_status's values), so the connector learns it from the server, unless
// suspension_field names it: while it does not know, a user whom neither
// field shows SUSPENDED is active under either reading, and the first
// toggle of such a user (a suspension) is read before and after: the field
// that changed is the one. What was learnt is kept in the target's memory
// (the state store), so a restarted process does not guess again. While
// the field is not known, a user whom one field shows SUSPENDED cannot be
// told: the connector refuses to toggle them (a skipped decision says
// why) and lists them as suspended (the reading that keeps access away).
// A toggle that changed neither field or both, or a configured field that
// a toggle contradicts, is kept in memory too, and every further toggle is
// refused until suspension_field is set (or changed).
//
// /togglesuspension is not idempotent, so the connector never toggles
// blindly: it holds a per-user lock, reads the current status (GET
// /multipleusers) and toggles only when it differs from the wanted one,
// then reads again to verify. A toggle whose answer is lost (timeout,
// dropped connection, 5xx) is Uncertain: it may have landed, and the next
// attempt reads again before doing anything (a toggle made while learning
// leaves its before-reading in memory, so the next process learns from it).
// A stale cache does not matter: the read, not the cache, decides.
//
// /promoteguest's parameter is named email_id but described as "user_id of
// the user". Until the server has shown which it reads, the connector
// sends the id that cannot promote someone else (the one that names no
// other guest under the other reading), verifies who was promoted, and
// keeps what it learnt; when both ids would name another guest it refuses
// with a skipped decision.
//
// DELETE /user also deletes the policies assigned only to that user: the
// connector reads the user's policies first (GET /user) and names them in
// the decision.
//
// Not documented either, so configurable: how the key is sent (header,
// default Authorization, and prefix, default "Bearer ") and how parameters
// travel (params: json body, the default; form; or query — GET requests
// always use the query). An unknown user is recognised by a 404 or a 400
// whose error says "not found" or "does not exist".
//
// The connector makes one attempt per call and classifies the outcome: 429
// (and 503 with Retry-After) is rate limited, other 5xx and dropped
// connections are retryable (uncertain for a toggle or a promotion), other
// 4xx are permanent. The API key never appears in logs or errors.
//
// Config keys (type allthenticate; see Sample): base_url and api_key
// (required), header, prefix, params, suspension_field (default: learn),
// suspended_value,
// allow_super, allow_duplicate_smartcards; of the common keys it uses
// roles/default_role (ranks, checked when the config is loaded),
// attributes (computer_usernames, smartcards), deprovision.action and
// timeout. Groups rules have no effect: the API cannot change groups.
//
// Assumptions where the seed is silent: GET /multipleusers without
// user_tag lists full users only, the field that shows a suspension reads
// suspended_value (SUSPENDED) while a user is suspended, list parameters (computer_usernames, smartcards) are
// serialized JSON arrays sent as strings in every encoding, and a guest
// cannot be given a rank before it is promoted.
package allthenticate

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/internal/httpapi"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// Sample is the documented YAML of an allthenticate target.
//
//go:embed sample.yaml
var Sample string

// Type is the config type name.
const Type = "allthenticate"

// Ranks.
const (
	RankRegular = "REGULAR"
	RankAdmin   = "ADMIN"
	RankSuper   = "SUPER"
)

// Account attributes the connector applies.
const (
	// AttrComputerUsernames is a comma-separated list of workstation
	// usernames.
	AttrComputerUsernames = "computer_usernames"
	// AttrSmartcards is a comma-separated list of smartcard numbers, each
	// optionally "label:number".
	AttrSmartcards = "smartcards"
)

// Remote keys the connector keeps in Account.Remote.
const (
	RemoteEmailID = "email_id"
	RemoteUserID  = "user_id"
	// RemoteTag is "GUEST" for a guest (absent for a full user).
	RemoteTag = "tag"
)

// TagGuest marks a guest in Remote[RemoteTag].
const TagGuest = "GUEST"

// Settings are the type-specific keys of an allthenticate target.
type Settings struct {
	// BaseURL is the API's base URL.
	BaseURL string `yaml:"base_url"`
	// APIKey is the key made in the admin portal.
	APIKey config.Secret `yaml:"api_key"`
	// Header carries the key (default Authorization).
	Header string `yaml:"header"`
	// Prefix goes before the key (default "Bearer " with the
	// Authorization header, "" with another).
	Prefix *string `yaml:"prefix"`
	// Params: json (default), form or query.
	Params string `yaml:"params"`
	// SuspensionField is the /multipleusers field that shows suspension;
	// empty (the default) means learn it from the server (email_status or
	// ad_status). SuspendedValue is its value when suspended (default
	// SUSPENDED).
	SuspensionField string `yaml:"suspension_field"`
	SuspendedValue  string `yaml:"suspended_value"`
	// AllowSuper lets the role rules grant SUPER.
	AllowSuper bool `yaml:"allow_super"`
	// AllowDuplicateSmartcards sends allow_duplicates=true.
	AllowDuplicateSmartcards bool `yaml:"allow_duplicate_smartcards"`
	// Protected are further account emails never acted on (New only; a
	// configured target uses the common protected key).
	Protected []string `yaml:"-"`
}

// Target is the Allthenticate connector.
type Target struct {
	name    string
	s       Settings
	prefix  string
	base    *url.URL
	http    *httpapi.Client
	log     *zap.Logger
	now     func() time.Time
	protect *connector.Protected
	mapped  map[string]bool // account attributes the config maps

	locksMu sync.Mutex
	locks   map[int]*sync.Mutex

	// mem keeps what was learnt (memory.go); learnMu serialises learning
	// and every change of it.
	mem     connector.Memory
	learnMu sync.Mutex
}

var (
	_ connector.Creator    = (*Target)(nil)
	_ connector.Updater    = (*Target)(nil)
	_ connector.Suspender  = (*Target)(nil)
	_ connector.RoleSetter = (*Target)(nil)
	_ connector.Deleter    = (*Target)(nil)
	_ connector.Lister     = (*Target)(nil)
	_ connector.Reader     = (*Target)(nil)
	_ connector.Gater      = (*Target)(nil)
)

// Factory builds an allthenticate target from its config (type
// "allthenticate"). It validates and fills defaults only.
func Factory(cfg config.Target, deps connector.Deps) (connector.Connector, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	var ps config.Problems
	for i, r := range cfg.Roles {
		if _, ok := rank(r.Role); !ok {
			ps.Add(fmt.Sprintf("%s.roles[%d].role", cfg.Path(), i), "%q is not an Allthenticate rank (REGULAR, ADMIN, SUPER)", r.Role)
		}
	}
	if cfg.DefaultRole != "" {
		if _, ok := rank(cfg.DefaultRole); !ok {
			ps.Add(cfg.Path()+".default_role", "%q is not an Allthenticate rank (REGULAR, ADMIN, SUPER)", cfg.DefaultRole)
		}
	}
	s.Protected = append(s.Protected, cfg.Protected...)
	var mapped []string
	for k := range cfg.Attributes {
		mapped = append(mapped, k)
	}
	t, err := build(cfg.Name, s, deps, cfg.Timeout.D(), cfg.Path(), mapped)
	if err != nil {
		if p, ok := err.(config.Problems); ok {
			ps = append(ps, p...)
		} else {
			return nil, err
		}
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return t, nil
}

// New builds a Target from decoded settings. attributes are the account
// attributes the target's attributes key maps (AttrComputerUsernames,
// AttrSmartcards): a promoted or adopted user gets exactly those lists.
func New(name string, s Settings, deps connector.Deps, attributes ...string) (*Target, error) {
	return build(name, s, deps, 0, "", attributes)
}

func build(name string, s Settings, deps connector.Deps, timeout time.Duration, path string, attributes []string) (*Target, error) {
	var ps config.Problems
	bad := func(key, format string, args ...any) {
		if path != "" {
			key = path + "." + key
		}
		ps.Add(key, format, args...)
	}
	if name == "" {
		bad("name", "is required")
	}
	var base *url.URL
	if s.BaseURL == "" {
		bad("base_url", "is required (Allthenticate does not publish it: ask them, or see the admin portal)")
	} else if u, err := url.Parse(strings.TrimRight(s.BaseURL, "/")); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("base_url", "%q is not an http(s) URL", s.BaseURL)
	} else if u.User != nil {
		bad("base_url", "must not carry credentials (use api_key)")
	} else {
		base = u
	}
	if s.APIKey.IsZero() {
		bad("api_key", "is required (made in the Allthenticate admin portal)")
	}
	if s.Header == "" {
		s.Header = "Authorization"
	}
	if strings.ContainsAny(s.Header, " :\r\n") {
		bad("header", "%q is not a header name", s.Header)
	}
	prefix := ""
	switch {
	case s.Prefix != nil:
		prefix = *s.Prefix
	case strings.EqualFold(s.Header, "Authorization"):
		prefix = "Bearer "
	}
	switch s.Params {
	case "":
		s.Params = "json"
	case "json", "form", "query":
	default:
		bad("params", "%q is not one of json, form, query", s.Params)
	}
	if s.SuspendedValue == "" {
		s.SuspendedValue = "SUSPENDED"
	}
	if len(ps) > 0 {
		if path != "" {
			return nil, ps
		}
		return nil, fmt.Errorf("allthenticate: %w", ps)
	}
	client, log, now := httpapi.Base(deps, timeout)
	mapped := map[string]bool{}
	for _, a := range attributes {
		mapped[a] = true
	}
	log = log.With(zap.String("target", name))
	key := s.APIKey.Value()
	hc := &httpapi.Client{App: Type, HTTP: client, Log: log, Now: now, Secrets: httpapi.NewSecrets(key), Leading: deps.Leading, Rules: rules,
		Authorize: func(_ context.Context, r *http.Request) error {
			r.Header.Set(s.Header, prefix+key)
			return nil
		}}
	return &Target{name: name, s: s, prefix: prefix, base: base, http: hc, log: log,
		now: now, protect: connector.NewProtected(s.Protected...), locks: map[int]*sync.Mutex{}, mapped: mapped,
		mem: connector.MemoryOf(deps)}, nil
}

// Name implements connector.Connector.
func (t *Target) Name() string { return t.name }

// Type implements connector.Connector.
func (t *Target) Type() string { return Type }

// rank normalises a role to a rank.
func rank(role string) (string, bool) {
	r := strings.ToUpper(strings.TrimSpace(role))
	switch r {
	case RankRegular, RankAdmin, RankSuper:
		return r, true
	}
	return r, false
}

// Gate implements connector.Gater. It refuses, with the reason: an account
// without email and ids, ranks that do not exist, SUPER without
// allow_super, and smartcard numbers that are not integers.
func (t *Target) Gate(act connector.Action, a identity.Account) string {
	if why := t.protect.Reason(a); why != "" {
		return why
	}
	if a.Email == "" && a.Remote[RemoteEmailID] == "" {
		return "no email address: Allthenticate users are found by email"
	}
	switch act {
	case connector.ActSetRole:
		r, ok := rank(a.Role)
		if !ok {
			return fmt.Sprintf("%q is not an Allthenticate rank (REGULAR, ADMIN, SUPER)", a.Role)
		}
		if r == RankSuper && !t.s.AllowSuper {
			return "granting SUPER (billing, creating admins) needs allow_super: true in the target's config"
		}
	case connector.ActUpdate:
		if _, err := parseSmartcards(a.Attributes[AttrSmartcards]); err != nil {
			return err.Error()
		}
	}
	return ""
}

// lockFor returns the lock of one user (by email_id).
func (t *Target) lockFor(emailID int) *sync.Mutex {
	t.locksMu.Lock()
	defer t.locksMu.Unlock()
	m, ok := t.locks[emailID]
	if !ok {
		m = &sync.Mutex{}
		t.locks[emailID] = m
	}
	return m
}

// remoteInt reads an integer id from a.Remote.
func remoteInt(a identity.Account, k string) int {
	n, _ := strconv.Atoi(a.Remote[k])
	return n
}

func setIDs(a *identity.Account, u apiUser) {
	if a.Remote == nil {
		a.Remote = map[string]string{}
	}
	a.Remote[RemoteEmailID] = strconv.Itoa(u.EmailID)
	a.Remote[RemoteUserID] = strconv.Itoa(u.UserID)
	if u.guest {
		a.Remote[RemoteTag] = TagGuest
	} else if _, had := a.Remote[RemoteTag]; had {
		// Emptied, not deleted: the engine merges Remote into its record,
		// so a deleted key would stay GUEST there.
		a.Remote[RemoteTag] = ""
	}
}
