// Package scimclient provisions accounts in any SCIM 2.0 service provider
// (RFC 7643/7644): it discovers the provider's ServiceProviderConfig, finds
// users by userName (or externalId) before creating them, adopts existing
// ones, updates them with PATCH (or read-modify-PUT where PATCH is not
// supported), suspends with active=false, manages group membership with
// member add/remove, and reads everything back with paged lists.
//
// Behaviour worth knowing:
//   - Create sends externalId = the dirsync account key. When a user with the
//     same userName (or externalId) already exists, or the create answers 409,
//     the existing user is adopted: its id goes into Remote["id"] and its
//     profile is overwritten with the desired one (active=true).
//   - Emails are written as one work address (the whole emails attribute is
//     replaced).
//   - Group membership is made exactly Account.Groups (group displayNames):
//     missing groups are created; group ids are cached in memory. When the
//     cached account shows no groups (a new or adopted account) the current
//     membership is read from the provider first.
//   - The enterprise manager attribute holds the manager's userName; it is
//     resolved to the manager's SCIM id, and left unset when not found.
//   - Delete is available; the engine only deletes when the target's
//     deprovision.action says so.
//   - Secrets (the bearer token, the client secret and issued access
//     tokens) are scrubbed from every error message and never logged.
package scimclient

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/internal/httpapi"
	"go.uber.org/zap"
)

// Type is the config type name of this connector.
const Type = "scim"

// Sample is the documented sample configuration of a SCIM target.
//
//go:embed sample.yaml
var Sample string

// SCIM schema URNs.
const (
	SchemaUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	schemaPatchOp    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// EnterpriseFields are the enterprise extension attributes that can be
// mapped from Account.Attributes.
var EnterpriseFields = []string{"employeeNumber", "costCenter", "organization", "division", "department", "manager"}

// Settings are the type-specific keys of a scim target.
type Settings struct {
	// BaseURL is the SCIM root, e.g. https://scim.example.com/scim/v2.
	BaseURL string `yaml:"base_url"`
	Auth    Auth   `yaml:"auth"`
	// MatchBy is how existing users are found: userName (default) or
	// externalId (the dirsync account key).
	MatchBy string `yaml:"match_by"`
	// UserSchemaExtensions are extra schema URNs listed in "schemas" of every
	// user dirsync writes (the enterprise URN is added when needed).
	UserSchemaExtensions []string `yaml:"user_schema_extensions"`
	// EnterpriseAttributes maps enterprise extension fields to
	// Account.Attributes names. Empty means every enterprise field is taken
	// from the attribute of the same name, when present.
	EnterpriseAttributes map[string]string `yaml:"enterprise_attributes"`
	// ExtensionAttributes maps full attribute paths of other extensions
	// ("urn:...:User:badge") to Account.Attributes names.
	ExtensionAttributes map[string]string `yaml:"extension_attributes"`
	// RoleAttribute, when set, makes the target a role setter: "roles" (the
	// multi-valued core attribute, written as one primary value), a core
	// string attribute ("userType", "title") or an extension attribute path.
	RoleAttribute string `yaml:"role_attribute"`
	// ManageGroups turns group membership handling on (default) or off.
	ManageGroups *bool `yaml:"manage_groups"`
	// Patch is auto (default: ServiceProviderConfig decides), on or off
	// (read-modify-PUT).
	Patch string `yaml:"patch"`
	// PageSize is the count asked for per list page (default 100, capped by
	// the provider's filter.maxResults).
	PageSize int `yaml:"page_size"`
}

// Auth is either a static bearer token or OAuth2 client credentials.
type Auth struct {
	BearerToken config.Secret `yaml:"bearer_token"`
	OAuth2      *OAuth2       `yaml:"oauth2"`
}

// OAuth2 configures the client-credentials grant.
type OAuth2 struct {
	TokenURL     string        `yaml:"token_url"`
	ClientID     string        `yaml:"client_id"`
	ClientSecret config.Secret `yaml:"client_secret"`
	Scopes       []string      `yaml:"scopes"`
	// AuthStyle is how the client authenticates to the token endpoint:
	// auto (default), header (HTTP Basic) or params (form fields).
	AuthStyle string `yaml:"auth_style"`
}

// validate fills defaults and reports every problem, located under path.
func (s *Settings) validate(path string) error {
	var ps config.Problems
	p := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	if s.BaseURL == "" {
		ps.Add(p("base_url"), "is required")
	} else if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.Add(p("base_url"), "must be an http(s) URL (got %q)", s.BaseURL)
	} else if u.User != nil {
		ps.Add(p("base_url"), "must not carry credentials; use auth")
	}
	switch {
	case s.Auth.OAuth2 != nil && !s.Auth.BearerToken.IsZero():
		ps.Add(p("auth"), "set either bearer_token or oauth2, not both")
	case s.Auth.OAuth2 == nil && s.Auth.BearerToken.IsZero():
		ps.Add(p("auth"), "bearer_token or oauth2 is required")
	case s.Auth.OAuth2 != nil:
		o := s.Auth.OAuth2
		if u, err := url.Parse(o.TokenURL); o.TokenURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			ps.Add(p("auth.oauth2.token_url"), "must be an http(s) URL")
		}
		if o.ClientID == "" {
			ps.Add(p("auth.oauth2.client_id"), "is required")
		}
		if o.ClientSecret.IsZero() {
			ps.Add(p("auth.oauth2.client_secret"), "is required")
		}
		switch o.AuthStyle {
		case "", "auto", "header", "params":
		default:
			ps.Add(p("auth.oauth2.auth_style"), "must be auto, header or params (got %q)", o.AuthStyle)
		}
	}
	switch strings.ToLower(s.MatchBy) {
	case "", "username":
		s.MatchBy = "userName"
	case "externalid":
		s.MatchBy = "externalId"
	default:
		ps.Add(p("match_by"), "must be userName or externalId (got %q)", s.MatchBy)
	}
	for i, u := range s.UserSchemaExtensions {
		if !strings.HasPrefix(strings.ToLower(u), "urn:") {
			ps.Add(fmt.Sprintf("%s[%d]", p("user_schema_extensions"), i), "must be a schema URN (got %q)", u)
		}
	}
	for f, a := range s.EnterpriseAttributes {
		if !slices.Contains(EnterpriseFields, f) {
			ps.Add(p("enterprise_attributes."+f), "unknown enterprise field; one of %s", strings.Join(EnterpriseFields, ", "))
		}
		if a == "" {
			ps.Add(p("enterprise_attributes."+f), "needs an attribute name")
		}
	}
	for path, a := range s.ExtensionAttributes {
		if i := strings.LastIndex(path, ":"); !strings.HasPrefix(strings.ToLower(path), "urn:") || i == len(path)-1 {
			ps.Add(p("extension_attributes."+path), "must be a full attribute path urn:...:Name")
		}
		if a == "" {
			ps.Add(p("extension_attributes."+path), "needs an attribute name")
		}
	}
	if strings.ContainsAny(s.RoleAttribute, " []\"") {
		ps.Add(p("role_attribute"), "must be an attribute name or path (got %q)", s.RoleAttribute)
	}
	switch strings.ToLower(s.Patch) {
	case "", "auto":
		s.Patch = "auto"
	case "on", "true":
		s.Patch = "on"
	case "off", "false":
		s.Patch = "off"
	default:
		ps.Add(p("patch"), "must be auto, on or off (got %q)", s.Patch)
	}
	switch {
	case s.PageSize == 0:
		s.PageSize = 100
	case s.PageSize < 1 || s.PageSize > 1000:
		ps.Add(p("page_size"), "must be between 1 and 1000")
	}
	if s.ManageGroups == nil {
		v := true
		s.ManageGroups = &v
	}
	return ps.Err()
}

// enterpriseMap returns field → attribute name.
func (s *Settings) enterpriseMap() map[string]string {
	if len(s.EnterpriseAttributes) > 0 {
		return s.EnterpriseAttributes
	}
	m := map[string]string{}
	for _, f := range EnterpriseFields {
		m[f] = f
	}
	return m
}

// Target is the SCIM connector. Build it with Factory (which adds the role
// and group capabilities when configured) or New.
type Target struct {
	name    string
	s       Settings
	log     *zap.Logger
	now     func() time.Time
	hc      *http.Client
	http    *httpapi.Client
	base    string
	secrets *httpapi.Secrets
	attrs   map[string]string // SCIM attribute path → Account.Attributes name
	paths   []string          // the keys of attrs, sorted

	mu            sync.Mutex
	discovered    bool
	patch         bool
	maxResults    int
	noMemberQuery bool
	groupIDs      map[string]string
	groupLocks    map[string]*sync.Mutex
}

var (
	_ target.Creator   = (*Target)(nil)
	_ target.Updater   = (*Target)(nil)
	_ target.Suspender = (*Target)(nil)
	_ target.Deleter   = (*Target)(nil)
	_ target.Lister    = (*Target)(nil)
	_ target.Reader    = (*Target)(nil)
	_ target.Opener    = (*Target)(nil)

	_ target.RoleSetter  = roleTarget{}
	_ target.GroupSetter = groupTarget{}
	_ target.RoleSetter  = roleGroupTarget{}
	_ target.GroupSetter = roleGroupTarget{}
)

// roleTarget adds SetRole.
type roleTarget struct{ *Target }

// SetRole implements target.RoleSetter.
func (t roleTarget) SetRole(ctx context.Context, a *identity.Account) error {
	return t.setRole(ctx, a)
}

// groupTarget adds SetGroups.
type groupTarget struct{ *Target }

// SetGroups implements target.GroupSetter.
func (t groupTarget) SetGroups(ctx context.Context, before identity.Account, a *identity.Account) error {
	return t.setGroups(ctx, before, a)
}

// roleGroupTarget adds both.
type roleGroupTarget struct{ *Target }

// SetRole implements target.RoleSetter.
func (t roleGroupTarget) SetRole(ctx context.Context, a *identity.Account) error {
	return t.setRole(ctx, a)
}

// SetGroups implements target.GroupSetter.
func (t roleGroupTarget) SetGroups(ctx context.Context, before identity.Account, a *identity.Account) error {
	return t.setGroups(ctx, before, a)
}

// Factory builds a scim target from its config (type "scim"). It validates
// only; the provider is first contacted by Open or the first action.
func Factory(cfg config.Target, deps target.Deps) (target.Target, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	t, err := New(cfg.Name, s, deps, cfg.Path())
	if err != nil {
		return nil, err
	}
	return t.withCapabilities(), nil
}

// withCapabilities wraps t so that it declares SetRole only when a role
// attribute is configured and SetGroups only when groups are managed.
func (t *Target) withCapabilities() target.Target {
	role, groups := t.s.RoleAttribute != "", *t.s.ManageGroups
	switch {
	case role && groups:
		return roleGroupTarget{t}
	case role:
		return roleTarget{t}
	case groups:
		return groupTarget{t}
	}
	return t
}

// New builds a Target from decoded settings; path locates the settings in
// the config file for error messages (may be empty).
func New(name string, s Settings, deps target.Deps, path string) (*Target, error) {
	if err := s.validate(path); err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = zap.NewNop()
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	t := &Target{
		name:       name,
		s:          s,
		log:        log.With(zap.String("target", name), zap.String("type", Type)),
		now:        now,
		base:       strings.TrimRight(s.BaseURL, "/"),
		secrets:    &httpapi.Secrets{},
		attrs:      map[string]string{},
		patch:      s.Patch != "off",
		groupIDs:   map[string]string{},
		groupLocks: map[string]*sync.Mutex{},
	}
	for f, a := range s.enterpriseMap() {
		t.attrs[SchemaEnterprise+":"+f] = a
	}
	for p, a := range s.ExtensionAttributes {
		t.attrs[p] = a
	}
	t.paths = slices.Sorted(maps.Keys(t.attrs))
	t.hc = t.httpClient(deps.HTTPClient)
	t.http = &httpapi.Client{App: "scim", HTTP: t.hc, Log: t.log, Now: now, Secrets: t.secrets, Leading: deps.Leading,
		Accept: "application/scim+json, application/json", Rules: rules}
	return t, nil
}

// Name implements target.Target.
func (t *Target) Name() string { return t.name }

// Type implements target.Target.
func (t *Target) Type() string { return Type }
