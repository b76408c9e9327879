// Package netmaker is the connector for Netmaker's user API (REST, bearer
// token), written against what a real Netmaker v1.5.1 server does.
//
// Capabilities: create (POST /api/users/{username}; the server ignores
// auth_type, so created users are password users with a random password
// that is never logged; create: false for SSO deployments, where people
// appear on first IdP sign-in and are adopted), update (display name),
// suspend and unsuspend (POST .../disable and .../enable), platform role,
// user groups (Account.Groups are group NAMES, resolved to ids; created
// when create_groups is true), delete, list (GET /api/v2/users pages, or
// the bare GET /api/users on older servers) and read (GET
// /api/v1/users?username=). There is no expiry and no forced password
// change in Netmaker.
//
// Never touched (a skipped decision, at plan time and again before
// sending): the super-admin (known from every list and read, and from the
// cached role; a change reads the user first), the account the token
// belongs to (token_user, or the UserName claim of the token: Netmaker
// revokes a user's tokens when its role or groups change), and the
// target's protected list. IdP (SSO) users are
// managed for status, role and groups but never deleted or renamed:
// Netmaker refuses both. Their delete is connector.Impossible, so the
// engine suspends a leaving SSO user (or orphan) instead (invariant 12).
//
// Token: a personal access token of the super-admin is recommended; on the
// community edition every user is an admin and an admin cannot disable,
// demote or delete another admin. The master key can list, update, enable
// and disable but cannot create or delete users: with it (a token that is
// not a JWT, token_kind: auto) creates are skipped — existing accounts are
// still adopted from the list (CannotHold refuses only names Netmaker
// cannot take) — and deletes are impossible (the engine suspends instead).
//
// Role and groups are changed by reading the whole user (GET
// /api/v1/users?username=) and PUTting it back with only that field
// changed, because PUT is a replace: leaving out is_mfa_enabled turns MFA
// off, leaving out user_group_ids drops every group.
//
// Which groups dirsync manages: the groups named by the target's groups
// rules (their "as" names), plus managed_groups, plus the groups the cache
// says dirsync gave the account. Only those are added or removed.
//
// Usernames must have at least 4 characters and be an email address or only
// [A-Za-z0-9.-]; others are mapped per invalid_username (email, replace or
// skip). The name used is kept in Account.Remote["username"].
//
// Outcomes (through the shared HTTP layer): a missing user is HTTP 500
// "record not found" (NotFound) — unless the list still carries it: the
// server answers the same for a user whose platform role it does not have
// (a paid-edition role after a downgrade to community edition), which is
// connector.Unreadable: not gone, its steps wait (invariant 11), and its
// delete is impossible (it cannot be checked first); permission refusals are permanent whatever
// their status (Netmaker sends some as 500); 429 is rate limited; other
// 5xx and dropped connections are retryable, or uncertain for a create.
// Community edition servers (detected: 404 on /api/v1/users/groups, or
// edition: community) have no user groups and create every user as admin:
// group changes, roles other than admin, and creating anyone whose role is
// not admin are skipped. Gate reads the server on first use, so plan and
// sync refuse the same steps.
package netmaker

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/internal/httpapi"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// Sample is the documented YAML of a netmaker target.
//
//go:embed sample.yaml
var Sample string

// Type is the config type name.
const Type = "netmaker"

// Platform roles with special handling.
const (
	roleSuperAdmin = "super-admin"
	roleAdmin      = "admin"
)

// Settings are the type-specific keys of a netmaker target.
type Settings struct {
	// BaseURL is the API server (https://api.netmaker.example.com).
	BaseURL string `yaml:"base_url"`
	// Token is a personal access token (recommended) or the master key.
	Token config.Secret `yaml:"token"`
	// TokenKind: auto (default: a JWT is an access token, anything else the
	// master key), access_token, master_key.
	TokenKind string `yaml:"token_kind"`
	// TokenUser is the user the access token belongs to; default: read
	// from the token.
	TokenUser string `yaml:"token_user"`
	// Create: true (default) creates people through the API; those are
	// password (basic_auth) users whatever auth_type says. false, for SSO
	// deployments: people appear in Netmaker when they first sign in
	// through the IdP, and dirsync adopts them and then manages their
	// status, role and groups.
	Create *bool `yaml:"create"`
	// AuthType is accepted for old configs and ignored: Netmaker's API
	// creates every user as basic_auth (validate warns).
	AuthType string `yaml:"auth_type"`
	// CreateRole is the platform role of a created user when the rules
	// give none (default service-user).
	CreateRole string `yaml:"create_role"`
	// ListAPI: auto (default: v2, falling back to legacy on 404), v2, legacy.
	ListAPI string `yaml:"list_api"`
	// PageSize for v2 lists (1..100, default 100).
	PageSize int `yaml:"page_size"`
	// CreateGroups creates groups named by the rules that do not exist.
	CreateGroups bool `yaml:"create_groups"`
	// ManagedGroups are further group names dirsync may remove users from.
	ManagedGroups []string `yaml:"managed_groups"`
	// InvalidUsername: email (default), replace, skip.
	InvalidUsername string `yaml:"invalid_username"`
	// Edition: auto (default: detected), pro, community.
	Edition string `yaml:"edition"`
	// Protected are further account names never acted on (New only; a
	// configured target uses the common protected key).
	Protected []string `yaml:"-"`
}

// Target is the Netmaker connector.
type Target struct {
	name    string
	s       Settings
	base    *url.URL
	http    *httpapi.Client
	log     *zap.Logger
	now     func() time.Time
	master  bool
	owner   string
	managed map[string]bool // group names dirsync manages by config
	protect *connector.Protected
	deletes []string // the target's settings that delete accounts, for Warnings

	mu        sync.Mutex
	supers    map[string]bool // super-admins seen in lists and reads
	idps      map[string]bool // IdP (SSO) users seen in lists and reads
	listed    bool            // a full list was read: supers covers everyone
	names     map[string]bool // usernames of the last list
	listedAt  time.Time       // when the last list was read
	gateTried time.Time       // when Gate last tried to discover
	edition   string          // "", "pro", "community"
	roles     map[string]bool
	groupByNm map[string]string // name → id
	groupByID map[string]string // id → name
	listAPI   string

	discoverMu sync.Mutex
	groupMu    sync.Mutex
}

var (
	_ connector.Creator     = (*Target)(nil)
	_ connector.Updater     = (*Target)(nil)
	_ connector.Suspender   = (*Target)(nil)
	_ connector.RoleSetter  = (*Target)(nil)
	_ connector.GroupSetter = (*Target)(nil)
	_ connector.Deleter     = (*Target)(nil)
	_ connector.Lister      = (*Target)(nil)
	_ connector.Reader      = (*Target)(nil)
	_ connector.Gater       = (*Target)(nil)
	_ connector.Opener      = (*Target)(nil)
	_ connector.Warner      = (*Target)(nil)
	_ connector.Holder      = (*Target)(nil)

	_ connector.Updater     = (*Adopting)(nil)
	_ connector.Suspender   = (*Adopting)(nil)
	_ connector.RoleSetter  = (*Adopting)(nil)
	_ connector.GroupSetter = (*Adopting)(nil)
	_ connector.Deleter     = (*Adopting)(nil)
	_ connector.Lister      = (*Adopting)(nil)
	_ connector.Reader      = (*Adopting)(nil)
	_ connector.Gater       = (*Adopting)(nil)
	_ connector.Opener      = (*Adopting)(nil)
	_ connector.Warner      = (*Adopting)(nil)
	_ connector.Holder      = (*Adopting)(nil)
)

// Adopting is the connector with create: false (SSO deployments): it does
// everything Target does but create. People appear in Netmaker when they
// first sign in through the IdP; dirsync adopts them from the list and then
// manages their status, role and groups.
type Adopting struct{ t *Target }

// Inner returns the full connector.
func (a *Adopting) Inner() *Target { return a.t }

// Name implements connector.Connector.
func (a *Adopting) Name() string { return a.t.Name() }

// Type implements connector.Connector.
func (a *Adopting) Type() string { return a.t.Type() }

// Open implements connector.Opener.
func (a *Adopting) Open(ctx context.Context) error { return a.t.Open(ctx) }

// Warnings implements connector.Warner.
func (a *Adopting) Warnings() []string { return a.t.Warnings() }

// Gate implements connector.Gater.
func (a *Adopting) Gate(act connector.Action, acc identity.Account) string { return a.t.Gate(act, acc) }

// Update implements connector.Updater.
func (a *Adopting) Update(ctx context.Context, before identity.Account, acc *identity.Account) error {
	return a.t.Update(ctx, before, acc)
}

// Suspend implements connector.Suspender.
func (a *Adopting) Suspend(ctx context.Context, acc *identity.Account) error {
	return a.t.Suspend(ctx, acc)
}

// Unsuspend implements connector.Suspender.
func (a *Adopting) Unsuspend(ctx context.Context, acc *identity.Account) error {
	return a.t.Unsuspend(ctx, acc)
}

// SetRole implements connector.RoleSetter.
func (a *Adopting) SetRole(ctx context.Context, acc *identity.Account) error {
	return a.t.SetRole(ctx, acc)
}

// SetGroups implements connector.GroupSetter.
func (a *Adopting) SetGroups(ctx context.Context, before identity.Account, acc *identity.Account) error {
	return a.t.SetGroups(ctx, before, acc)
}

// Delete implements connector.Deleter.
func (a *Adopting) Delete(ctx context.Context, acc *identity.Account) error {
	return a.t.Delete(ctx, acc)
}

// List implements connector.Lister.
func (a *Adopting) List(ctx context.Context) ([]identity.Account, error) { return a.t.List(ctx) }

// Read implements connector.Reader.
func (a *Adopting) Read(ctx context.Context, acc identity.Account) (identity.Account, error) {
	return a.t.Read(ctx, acc)
}

// Factory builds a netmaker target from its config (type "netmaker"). It
// validates and fills defaults only; Open detects the edition.
func Factory(cfg config.Target, deps connector.Deps) (connector.Connector, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	managed := make([]string, 0, len(cfg.Groups))
	for _, g := range cfg.Groups {
		name := g.As
		if name == "" {
			name = g.Group
		}
		managed = append(managed, name)
	}
	role := ""
	if cfg.DefaultRole != "" && s.CreateRole == "" {
		role = cfg.DefaultRole
	}
	t, err := newTarget(cfg.Name, s, deps, cfg.Timeout.D(), managed, role, cfg.Path(), cfg.Protected)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.Deprovision.Action == "delete":
		t.deletes = append(t.deletes, "deprovision is delete")
	case cfg.Deprovision.DeleteAfter > 0:
		t.deletes = append(t.deletes, "deprovision.delete_after is set")
	}
	if cfg.Reconcile.Orphans == "delete" {
		t.deletes = append(t.deletes, "reconcile.orphans is delete")
	}
	if !*t.s.Create {
		return &Adopting{t: t}, nil
	}
	return t, nil
}

// New builds a Target from decoded settings. ruleGroups are the
// application group names of the target's groups rules (managed groups).
func New(name string, s Settings, deps connector.Deps, ruleGroups ...string) (*Target, error) {
	return newTarget(name, s, deps, 0, ruleGroups, "", "", s.Protected)
}

func newTarget(name string, s Settings, deps connector.Deps, timeout time.Duration, ruleGroups []string, defaultRole, path string, protected []string) (*Target, error) {
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
		bad("base_url", "is required")
	} else if u, err := url.Parse(strings.TrimRight(s.BaseURL, "/")); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("base_url", "%q is not an http(s) URL", s.BaseURL)
	} else {
		if u.User != nil {
			bad("base_url", "must not carry credentials (use token)")
		}
		base = u
	}
	if s.Create == nil {
		yes := true
		s.Create = &yes
	}
	if s.Token.IsZero() {
		bad("token", "is required (a personal access token; see POST /api/v1/users/access_token)")
	}
	master := false
	switch s.TokenKind {
	case "", "auto":
		s.TokenKind = "auto"
		master = !s.Token.IsZero() && !looksLikeJWT(s.Token.Value())
	case "access_token":
	case "master_key":
		master = true
	default:
		bad("token_kind", "%q is not one of auto, access_token, master_key", s.TokenKind)
	}
	owner := s.TokenUser
	if owner == "" && !master {
		owner = jwtUser(s.Token.Value())
	}
	switch s.AuthType {
	case "", "oauth", "basic_auth":
	default:
		bad("auth_type", "%q is not one of oauth, basic_auth", s.AuthType)
	}
	if s.CreateRole == "" {
		s.CreateRole = defaultRole
	}
	if s.CreateRole == "" {
		s.CreateRole = "service-user"
	}
	if s.CreateRole == roleSuperAdmin {
		bad("create_role", "super-admin cannot be given to new users")
	}
	switch s.ListAPI {
	case "":
		s.ListAPI = "auto"
	case "auto", "v2", "legacy":
	default:
		bad("list_api", "%q is not one of auto, v2, legacy", s.ListAPI)
	}
	switch {
	case s.PageSize == 0:
		s.PageSize = 100
	case s.PageSize < 1 || s.PageSize > 100:
		bad("page_size", "must be between 1 and 100 (got %d)", s.PageSize)
	}
	switch s.InvalidUsername {
	case "":
		s.InvalidUsername = "email"
	case "email", "replace", "skip":
	default:
		bad("invalid_username", "%q is not one of email, replace, skip", s.InvalidUsername)
	}
	edition := ""
	switch s.Edition {
	case "", "auto":
		s.Edition = "auto"
	case "pro", "community":
		edition = s.Edition
	default:
		bad("edition", "%q is not one of auto, pro, community", s.Edition)
	}
	for i, g := range s.ManagedGroups {
		if strings.TrimSpace(g) == "" {
			bad(fmt.Sprintf("managed_groups[%d]", i), "is empty")
		}
	}
	if len(ps) > 0 {
		if path != "" {
			return nil, ps
		}
		return nil, fmt.Errorf("netmaker: %w", ps)
	}
	client, log, now := httpapi.Base(deps, timeout)
	managed := map[string]bool{}
	for _, g := range append(slices.Clone(ruleGroups), s.ManagedGroups...) {
		managed[g] = true
	}
	tok := s.Token.Value()
	log = log.With(zap.String("target", name))
	hc := &httpapi.Client{App: Type, HTTP: client, Log: log, Now: now, Secrets: httpapi.NewSecrets(tok), Leading: deps.Leading, Rules: rules,
		Authorize: func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+tok)
			return nil
		}}
	protect := connector.NewProtected(protected...)
	if owner != "" {
		protect.Add(owner, "it is the account dirsync's Netmaker token belongs to: changing it would revoke or lock out that token")
	}
	t := &Target{name: name, s: s, base: base, http: hc, log: log, now: now,
		master: master, owner: owner, managed: managed, edition: edition, listAPI: s.ListAPI, protect: protect, supers: map[string]bool{}, idps: map[string]bool{}}
	return t, nil
}

// Name implements connector.Connector.
func (t *Target) Name() string { return t.name }

// Type implements connector.Connector.
func (t *Target) Type() string { return Type }

// Warnings implements connector.Warner.
func (t *Target) Warnings() []string {
	var w []string
	if *t.s.Create {
		w = append(w, "netmaker: people dirsync creates through the API are password (basic_auth) users, whatever auth_type says: "+
			"Netmaker ignores auth_type, and its SSO sign-in then refuses them. For SSO deployments set create: false: people appear "+
			"when they first sign in through the IdP, and dirsync adopts them and manages their status, role and groups")
	} else if t.s.AuthType != "" {
		w = append(w, "netmaker: auth_type is ignored (Netmaker creates every API user as basic_auth, and create is false)")
	}
	if t.master {
		w = append(w, "netmaker: the token looks like the master key: it cannot create or delete users (creates are skipped, existing accounts are adopted from the list, and leavers are suspended instead of deleted); use a personal access token of the super-admin")
	}
	if len(t.deletes) > 0 {
		w = append(w, "netmaker: "+strings.Join(t.deletes, " and ")+", but Netmaker refuses to delete users that sign in through an IdP (SSO users, auth_type oauth"+
			map[bool]string{true: ", which is how everyone gets in with create: false", false: ""}[!*t.s.Create]+
			"): those are suspended instead (or stay suspended), with a decision that says why")
	}
	return w
}

// Open implements connector.Opener: it detects the edition (a 404 on
// /api/v1/users/groups means community), loads the groups and the platform
// roles, and warns when the token is the master key. The super-admin is
// learnt from every list and read (see gateFor and status).
func (t *Target) Open(ctx context.Context) error {
	if t.master {
		t.log.Warn("the netmaker token looks like the master key: it cannot create or delete users, so those actions are skipped; use a personal access token (POST /api/v1/users/access_token)")
	}
	return t.discover(ctx, true)
}

// discovered reports whether discover has run.
func (t *Target) discovered() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.roles != nil && (t.edition == "community" || t.groupByNm != nil)
}

// discover loads the edition, roles and groups once (or again with force).
func (t *Target) discover(ctx context.Context, force bool) error {
	t.discoverMu.Lock()
	defer t.discoverMu.Unlock()
	if t.discovered() && !force {
		return nil
	}
	edition := ""
	t.mu.Lock()
	if t.s.Edition != "auto" {
		edition = t.s.Edition
	}
	t.mu.Unlock()
	var groups []apiGroup
	if edition != "community" {
		body, status, err := t.raw(ctx, http.MethodGet, "/api/v1/users/groups", nil, nil, "netmaker: list groups", true)
		switch {
		case status == http.StatusNotFound && edition == "":
			edition = "community"
		case err != nil:
			return err
		default:
			if err := decodeResponse(body, &groups); err != nil {
				return connector.Retryable(fmt.Errorf("netmaker: list groups: %w", err))
			}
			edition = "pro"
		}
	}
	var roles []struct {
		ID string `json:"id"`
	}
	body, status, err := t.raw(ctx, http.MethodGet, "/api/v1/users/roles", url.Values{"platform": {"true"}}, nil, "netmaker: list roles", true)
	switch {
	case status == http.StatusNotFound:
		// Older servers: the role list is unknown; roles are not checked.
	case err != nil:
		return err
	default:
		if err := decodeResponse(body, &roles); err != nil {
			return connector.Retryable(fmt.Errorf("netmaker: list roles: %w", err))
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.edition = edition
	t.roles = map[string]bool{}
	for _, r := range roles {
		t.roles[r.ID] = true
	}
	if edition == "pro" {
		t.setGroupsLocked(groups)
	}
	t.log.Debug("netmaker discovered", zap.String("edition", edition), zap.Int("roles", len(roles)), zap.Int("groups", len(groups)),
		zap.Strings("super_admins", sortedKeys(t.supers)))
	return nil
}

// noteUser remembers whether u is a super-admin and whether it signs in
// through the IdP (so a delete the cache does not know to be impossible is
// refused at plan time after the first read, not read again every run).
func (t *Target) noteUser(u apiUser) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u.super() {
		t.supers[u.Username] = true
	} else {
		delete(t.supers, u.Username)
	}
	if u.idp() {
		t.idps[u.Username] = true
	} else {
		delete(t.idps, u.Username)
	}
}

// idpUser reports whether a signs in through the IdP, from the cache or
// from what this process read.
func (t *Target) idpUser(name string, a identity.Account) bool {
	if a.Remote["auth_type"] == "oauth" || a.Remote["idp"] != "" {
		return true
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idps[name]
}

func (t *Target) setGroupsLocked(groups []apiGroup) {
	t.groupByNm = map[string]string{}
	t.groupByID = map[string]string{}
	for _, g := range groups {
		t.groupByNm[g.Name] = g.ID
		t.groupByID[g.ID] = g.Name
	}
}

// Edition returns the detected edition ("pro", "community"), or "" before
// Open.
func (t *Target) Edition() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.edition
}

// Gate implements connector.Gater. It refuses, with the reason: accounts
// dirsync never touches (the super-admin, the account the token belongs
// to, the target's protected list), usernames that cannot be mapped to a
// valid Netmaker name, deleting or renaming an IdP (SSO) user, create and
// delete with the master key, group changes and non-admin roles on a
// community server, unknown roles, and groups that do not exist when
// create_groups is false.
//
// Gate reads what the server supports (edition, roles, groups) on first
// use, so that a plan made without a sync refuses exactly what the sync
// would. The super-admin is known from the lists and reads made so far
// and from the cached role; at apply time every change reads the user
// first, so a super-admin is never changed even when Gate could not tell.
func (t *Target) Gate(act connector.Action, a identity.Account) string {
	if why := t.protect.Reason(a); why != "" {
		return why
	}
	if !t.discovered() && t.tryDiscover() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := t.discover(ctx, false); err != nil {
			t.log.Warn("netmaker: cannot read the server's edition, roles and super-admin yet; the plan may list steps the sync then skips", zap.Error(err))
		}
		cancel()
	}
	return t.gateFor(act, a, true)
}

// tryDiscover reports whether Gate may try to read the server now: at most
// once a minute, so an unreachable server does not stall a plan.
func (t *Target) tryDiscover() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if !t.gateTried.IsZero() && now.Sub(t.gateTried) < time.Minute {
		return false
	}
	t.gateTried = now
	return true
}

// gateFor is Gate; checkGroups says whether to refuse groups missing from
// the last group list (at apply time SetGroups re-reads the list instead).
func (t *Target) gateFor(act connector.Action, a identity.Account, checkGroups bool) string {
	if why := t.protect.Reason(a); why != "" {
		return why
	}
	name, why := t.remoteName(a)
	if why != "" {
		return why
	}
	t.mu.Lock()
	super := t.supers[name]
	edition, roles := t.edition, t.roles
	groupByNm := t.groupByNm
	t.mu.Unlock()
	if super || (a.Role == roleSuperAdmin && act != connector.ActSetRole && act != connector.ActCreate) {
		return fmt.Sprintf("%q is Netmaker's super-admin, the application's owner: dirsync never disables, demotes, changes or deletes it", name)
	}
	if (act == connector.ActDelete || act == connector.ActUpdate) && t.idpUser(name, a) {
		what := "delete"
		if act == connector.ActUpdate {
			what = "rename"
		}
		return fmt.Sprintf("%q signed in through the IdP (an SSO user): Netmaker refuses to %s IdP users", name, what)
	}
	if t.master && (act == connector.ActCreate || act == connector.ActDelete) {
		return "the configured token is Netmaker's master key, which cannot create or delete users: use a personal access token of a super-admin (POST /api/v1/users/access_token)"
	}
	role := a.Role
	if act == connector.ActCreate && role == "" {
		role = t.s.CreateRole
	}
	if act == connector.ActSetRole || act == connector.ActCreate {
		if role == roleSuperAdmin {
			return "super-admin cannot be assigned through the API (Netmaker has one super-admin, transferred in its UI)"
		}
	}
	if edition == "community" {
		switch act {
		case connector.ActSetGroups:
			return "this Netmaker server is the community edition, which has no user groups"
		case connector.ActSetRole:
			if role != roleAdmin {
				return fmt.Sprintf("this Netmaker server is the community edition, whose only roles are super-admin and admin: %q cannot be set", role)
			}
		case connector.ActCreate:
			switch {
			case a.Role != "" && role != roleAdmin:
				return fmt.Sprintf("this Netmaker server is the community edition, which creates every user as admin, but the rules give %q the role %q", name, role)
			case role != roleAdmin:
				return fmt.Sprintf("this Netmaker server is the community edition, which creates every user as admin; a new user's role is not known when it is created, and create_role (default: default_role) is %q: set create_role: admin if everyone in scope may be an admin", role)
			}
		}
		return ""
	}
	if (act == connector.ActSetRole || act == connector.ActCreate) && len(roles) > 0 && !roles[role] {
		return fmt.Sprintf("platform role %q does not exist in Netmaker (roles: %s)", role, strings.Join(sortedKeys(roles), ", "))
	}
	if checkGroups && act == connector.ActSetGroups && groupByNm != nil && !t.s.CreateGroups {
		var missing []string
		for _, g := range a.Groups {
			if _, ok := groupByNm[g]; !ok {
				missing = append(missing, g)
			}
		}
		if len(missing) > 0 {
			return fmt.Sprintf("group(s) %s do not exist in Netmaker and create_groups is false", strings.Join(missing, ", "))
		}
	}
	return ""
}

// gate is Gate at apply time, after discovery: a reason becomes a skip.
func (t *Target) gate(ctx context.Context, act connector.Action, a identity.Account) (string, error) {
	if err := t.discover(ctx, false); err != nil {
		return "", err
	}
	name, why := t.remoteName(a)
	if why == "" {
		why = t.gateFor(act, a, false)
	}
	if why != "" {
		user := name
		if user == "" {
			user = a.Username
		}
		if act == connector.ActDelete && t.deleteImpossible(a) {
			return "", connector.Impossible("netmaker: %s %q: %s", act, user, why)
		}
		return "", connector.Skip("netmaker: %s %q: %s", act, user, why)
	}
	return name, nil
}

// deleteImpossible reports whether Netmaker cannot delete a for a reason
// of the application (an IdP user, the master key), not of dirsync's
// policy (protected, the super-admin): the engine then suspends instead.
func (t *Target) deleteImpossible(a identity.Account) bool {
	if t.protect.Reason(a) != "" || a.Role == roleSuperAdmin {
		return false
	}
	name, _ := t.remoteName(a)
	if name != "" {
		t.mu.Lock()
		super := t.supers[name]
		t.mu.Unlock()
		if super {
			return false
		}
	}
	return t.master || t.idpUser(name, a)
}

// CannotHold implements connector.Holder: only a name Netmaker cannot take
// means no account can exist for a person. A refused create (the master
// key, a community server) does not: accounts made by hand or by an IdP
// sign-in are adopted from the list.
func (t *Target) CannotHold(a identity.Account) string {
	_, why := t.remoteName(a)
	return why
}

// CannotHold implements connector.Holder.
func (a *Adopting) CannotHold(acc identity.Account) string { return a.t.CannotHold(acc) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// looksLikeJWT reports whether tok has the shape of a JWT (access tokens
// and user tokens are; the master key is not).
func looksLikeJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	hdr, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return false
	}
	var h map[string]any
	return json.Unmarshal(hdr, &h) == nil && h["alg"] != nil
}

// jwtUser reads the user name claim of a JWT without verifying it.
func jwtUser(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var c map[string]any
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	for _, k := range []string{"UserName", "user_name", "username"} {
		if v, ok := c[k].(string); ok && v != "" {
			return v
		}
	}
	return ""
}
