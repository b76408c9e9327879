// Package netmaker is the connector for Netmaker's user API (REST, bearer
// token).
//
// Capabilities: create (POST /api/users/{username}, a random password that
// is never logged, auth_type configurable: oauth for SSO users by default),
// update (display name), suspend and unsuspend (POST .../disable and
// .../enable), platform role (Account.Role, set from the target's roles
// rules), user groups (Account.Groups are group NAMES, resolved to ids;
// created when create_groups is true), delete (DELETE /api/users/{u}, used
// when the target's deprovision action is delete), list (GET /api/v2/users
// pages, or the bare GET /api/users on older servers) and read (GET
// /api/v1/users?username=). There is no expiry and no forced password
// change in Netmaker.
//
// Token: a personal access token of a super-admin is recommended (POST
// /api/v1/users/access_token). The master key can list, update, enable and
// disable but cannot create or delete users (the server looks the caller up
// as a user and fails with "record not found"); a token that is not a JWT is
// taken for the master key (token_kind: auto), and create and delete are
// then skipped with a decision that says so. Netmaker deletes a user's
// access tokens whenever that user's role or groups change, so the account
// the token belongs to (token_user, or the UserName claim of the token) is
// never suspended, deleted, or given a new role or groups.
//
// Role and groups are changed by reading the whole user (GET
// /api/v1/users?username=) and PUTting it back with only that field changed,
// because PUT is a full replace: leaving out is_mfa_enabled turns MFA off,
// leaving out user_group_ids drops every group. Every field the server
// returned is sent back as it was.
//
// Which groups dirsync manages: the groups named by the target's groups
// rules (their "as" names), plus managed_groups, plus the groups the cache
// says dirsync gave the account. Only those are added or removed; any other
// group the user is in (set by hand, the default groups) is kept. List and
// Read report only managed groups.
//
// Usernames must have at least 4 characters and be an email address or only
// [A-Za-z0-9.-]. A username that is not valid is mapped per
// invalid_username: email (default: use the account's email), replace
// (replace other characters with "-"), or skip; an account whose name
// cannot be mapped gets a skipped decision. The name used is kept in
// Account.Remote["username"], and Netmaker cannot rename users.
//
// A missing user is HTTP 500 "record not found": a NotFound. Community
// edition servers (detected in Open: 404 on /api/v1/users/groups, or
// edition: community) have no user groups and create every user as admin:
// group changes are skipped, a role other than admin or super-admin is
// skipped, and creating a user is skipped (rather than creating an admin)
// unless the role a new user gets is admin. That role is create_role
// (default: the target's default_role, else service-user): the engine
// creates an account first and sets its role from the rules afterwards.
// Users owned by Netmaker's own IdP sync (external_identity_provider_id set)
// are left alone with a skipped decision.
//
// The connector makes one attempt per call and classifies the outcome: 429
// (and 503 with Retry-After) is rate limited, other 5xx and dropped
// connections are retryable, except that a create whose connection dropped
// is uncertain (the engine re-reads before retrying); 4xx are permanent.
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
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/internal/httpapi"
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
	// AuthType of created users: oauth (default) or basic_auth.
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
	protect *target.Protected

	mu        sync.Mutex
	edition   string // "", "pro", "community"
	roles     map[string]bool
	groupByNm map[string]string // name → id
	groupByID map[string]string // id → name
	listAPI   string

	discoverMu sync.Mutex
	groupMu    sync.Mutex
}

var (
	_ target.Creator     = (*Target)(nil)
	_ target.Updater     = (*Target)(nil)
	_ target.Suspender   = (*Target)(nil)
	_ target.RoleSetter  = (*Target)(nil)
	_ target.GroupSetter = (*Target)(nil)
	_ target.Deleter     = (*Target)(nil)
	_ target.Lister      = (*Target)(nil)
	_ target.Reader      = (*Target)(nil)
	_ target.Gater       = (*Target)(nil)
	_ target.Opener      = (*Target)(nil)
)

// Factory builds a netmaker target from its config (type "netmaker"). It
// validates and fills defaults only; Open detects the edition.
func Factory(cfg config.Target, deps target.Deps) (target.Target, error) {
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
	return newTarget(cfg.Name, s, deps, cfg.Timeout.D(), managed, role, cfg.Path(), cfg.Protected)
}

// New builds a Target from decoded settings. ruleGroups are the
// application group names of the target's groups rules (managed groups).
func New(name string, s Settings, deps target.Deps, ruleGroups ...string) (*Target, error) {
	return newTarget(name, s, deps, 0, ruleGroups, "", "", s.Protected)
}

func newTarget(name string, s Settings, deps target.Deps, timeout time.Duration, ruleGroups []string, defaultRole, path string, protected []string) (*Target, error) {
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
	case "":
		s.AuthType = "oauth"
	case "oauth", "basic_auth":
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
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	client := deps.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
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
	protect := target.NewProtected(protected...)
	if owner != "" {
		protect.Add(owner, "it is the account dirsync's Netmaker token belongs to: changing it would revoke or lock out that token")
	}
	t := &Target{name: name, s: s, base: base, http: hc, log: log, now: now,
		master: master, owner: owner, managed: managed, edition: edition, listAPI: s.ListAPI, protect: protect}
	return t, nil
}

// Name implements target.Target.
func (t *Target) Name() string { return t.name }

// Type implements target.Target.
func (t *Target) Type() string { return Type }

// Open implements target.Opener: it detects the edition (a 404 on
// /api/v1/users/groups means community), loads the groups and the platform
// roles, and warns when the token is the master key.
func (t *Target) Open(ctx context.Context) error {
	if t.master {
		t.log.Warn("the netmaker token looks like the master key: it cannot create or delete users, so those actions are skipped; use a personal access token (POST /api/v1/users/access_token)")
	}
	return t.discover(ctx, true)
}

// discover loads the edition, roles and groups once (or again with force).
func (t *Target) discover(ctx context.Context, force bool) error {
	t.discoverMu.Lock()
	defer t.discoverMu.Unlock()
	t.mu.Lock()
	done := t.roles != nil && (t.edition == "community" || t.groupByNm != nil)
	t.mu.Unlock()
	if done && !force {
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
				return target.Retryable(fmt.Errorf("netmaker: list groups: %w", err))
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
			return target.Retryable(fmt.Errorf("netmaker: list roles: %w", err))
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
	t.log.Debug("netmaker discovered", zap.String("edition", edition), zap.Int("roles", len(roles)), zap.Int("groups", len(groups)))
	return nil
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

// Gate implements target.Gater. It refuses, with the reason:
// usernames that cannot be mapped to a valid Netmaker name, users owned by
// Netmaker's IdP sync, changes to the account the token belongs to, create
// and delete with the master key, group changes and non-admin roles on a
// community server, unknown roles, and groups that do not exist when
// create_groups is false.
//
// A create is not refused here but by Create itself (a skip at apply time):
// the engine then records the account as not creatable and plans nothing
// else for it, where a create refused at plan time would still be followed
// by role and group steps on an account that does not exist.
func (t *Target) Gate(act target.Action, a identity.Account) string {
	if act == target.ActCreate {
		return ""
	}
	return t.gateFor(act, a, true)
}

// gateFor is Gate; checkGroups says whether to refuse groups missing from
// the last group list (at apply time SetGroups re-reads the list instead).
func (t *Target) gateFor(act target.Action, a identity.Account, checkGroups bool) string {
	name, why := t.remoteName(a)
	if why != "" {
		return why
	}
	if idp := a.Remote["idp"]; idp != "" {
		return fmt.Sprintf("%q is owned by Netmaker's IdP sync (external_identity_provider_id %s): left alone", name, idp)
	}
	if t.owner != "" && name == t.owner {
		switch act {
		case target.ActSuspend, target.ActDelete, target.ActSetRole, target.ActSetGroups:
			return fmt.Sprintf("%q is the account dirsync's Netmaker token belongs to: changing it would revoke or lock out that token", name)
		}
	}
	if t.master && (act == target.ActCreate || act == target.ActDelete) {
		return "the configured token is Netmaker's master key, which cannot create or delete users: use a personal access token of a super-admin (POST /api/v1/users/access_token)"
	}
	t.mu.Lock()
	edition, roles := t.edition, t.roles
	groupByNm := t.groupByNm
	t.mu.Unlock()
	role := a.Role
	if act == target.ActCreate && role == "" {
		role = t.s.CreateRole
	}
	if act == target.ActSetRole || act == target.ActCreate {
		if role == roleSuperAdmin {
			return "super-admin cannot be assigned through the API (Netmaker has one super-admin, transferred in its UI)"
		}
	}
	if edition == "community" {
		switch act {
		case target.ActSetGroups:
			return "this Netmaker server is the community edition, which has no user groups"
		case target.ActSetRole:
			if role != roleAdmin {
				return fmt.Sprintf("this Netmaker server is the community edition, whose only roles are super-admin and admin: %q cannot be set", role)
			}
		case target.ActCreate:
			if role != roleAdmin {
				return fmt.Sprintf("this Netmaker server is the community edition, which creates every user as admin, but the rules give %q the role %q", name, role)
			}
		}
		return ""
	}
	if (act == target.ActSetRole || act == target.ActCreate) && len(roles) > 0 && !roles[role] {
		return fmt.Sprintf("platform role %q does not exist in Netmaker (roles: %s)", role, strings.Join(sortedKeys(roles), ", "))
	}
	if checkGroups && act == target.ActSetGroups && groupByNm != nil && !t.s.CreateGroups {
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
func (t *Target) gate(ctx context.Context, act target.Action, a identity.Account) (string, error) {
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
		return "", target.Skip("netmaker: %s %q: %s", act, user, why)
	}
	return name, nil
}

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
