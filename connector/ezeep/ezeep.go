// Package ezeep is the connector for ezeep Blue: its account API (users,
// invitations) and its printing API (group membership), both behind OAuth2
// client-credential bearer tokens.
//
// Capabilities: create (an invitation, POST /v1/userinvitations/, open for
// invitation_validity; an email that already has an ezeep user is adopted
// instead, and its invitation resent when it is still pending), expiry
// (ezeep has no user expiry, only the invitation's: while the invitation
// is pending, its expire_date follows the directory expiry through PATCH
// /v1/userinvitations/<id>/ — the engine creates accounts without their
// expiry and sets it in the step that follows, so an invitee with a
// directory expiry gets that PATCH, which ezeep treats as a resend, right
// after the invitation; once accepted there is nothing to set, and the
// engine strips the account when the expiry passes),
// update (PATCH /v1/users/<uuid>/ first_name, last_name, email), role
// (Account.Role "admin" or "user", written as the string ezeep expects),
// groups (PATCH /printing/v1/users/<uuid>/), suspend and unsuspend (see
// below), delete (DELETE /v1/users/<uuid>/), list (GET /v1/users/ and GET
// /printing/v1/users/, following next until done) and read. There is no
// user expiry and no forced password change in ezeep.
//
// Users are matched by email, case-insensitively; their uuid is kept in
// Account.Remote["uuid"] and looked up (walking the user list, which ezeep
// orders newest first, so a fresh invitee is found on the first page) when
// the cache does not know it.
//
// Groups: Account.Groups are names, mapped to ezeep group ids by group_ids
// (a name that is itself a group uuid is used as is). The printing API's
// PATCH replaces the user's whole group list, so every group PATCH carries
// the complete list: the desired managed groups plus the groups the user
// has that dirsync does not manage (those named by the groups rules,
// group_ids and managed_groups are managed). The user's current list is
// taken from the cache (Account.Remote["groups"], the list last written or
// read) and read first (GET /printing/v1/users/<uuid>) when the cache does
// not know it, and by default (read_groups_first) before every change, so
// that a group an administrator added by hand is never dropped.
//
// ezeep has no suspension. Unless the target's deprovision action is
// delete, Suspend stands in for it, covering every way in the document
// shows: a pending invitee (unverified, invitation not accepted) is
// deleted, which withdraws the invitation (there is no other call that
// does: PATCH /v1/userinvitations/<id>/ re-sends it), and the connector
// checks that no open invitation is left for the email; anyone else is
// set to role user first, then loses every printing group and the
// printing features (PATCH groups [], self_service_enabled,
// myprinters_enabled, local_printing_enabled and pull_printing_enabled
// false). A user the printing API does not know (404) has nothing to strip
// there; the role is demoted all the same. The decision names what was
// done. Unsuspend re-sends the role, the managed groups of the cached
// account it is given and turns printing_features back on; a withdrawn
// invitee is gone (not found), so the engine invites them again. Groups
// set by hand outside dirsync are not restored. The expiry step runs after
// the suspension and sends nothing for a suspended account, so
// deprovisioning never re-sends an invitation. With deprovision action
// delete the connector offers no suspension at all: users who leave the
// scope are deleted by the engine, and a disabled user who stays in scope
// (include_inactive, the default) gets a skipped suspend decision, so set
// include_inactive: false with delete.
//
// The credential must be an organisation admin's: an ordinary user's
// token lists only that user (still 200, as the document says), which a
// reconcile would take as every other account gone. A complete user list
// of one user who is not an admin cannot come from an admin's credential
// (the admin sees themself): List and every look-up that did not find its
// user then fail with an error that says so, and nothing is adopted or
// forgotten.
//
// Tokens come from the token endpoint (POST /oauth/access_token/, HTTP
// Basic client credentials, grant_type=client_credentials), are reused
// until they expire, and are fetched again when the API answers 401 (the
// request is then sent once more: a 401 means it was not applied). Tokens
// and the client secret never appear in logs or errors.
//
// The connector makes one attempt per call and classifies the outcome: 429
// (and 503 with Retry-After) is rate limited, other 5xx and dropped
// connections are retryable, except that an invitation whose answer was
// lost is uncertain (the engine re-reads by email before retrying); 404 is
// not found; other 4xx are permanent.
//
// Config keys (type ezeep; see Sample): client_id and client_secret
// (required), account_url, printing_url, token_url, page_size, group_ids,
// managed_groups, read_groups_first, printing_features,
// invitation_validity; of the common
// keys it uses roles/default_role (admin or user), groups (their "as" names
// must have an id in group_ids or be uuids), deprovision.action and
// timeout.
//
// Assumptions where the seed is silent or inconsistent: invitations are
// posted to /v1/userinvitations/ (the seed also names
// /v1/users/userinvitations/); an invited user appears in both user lists
// at once, unverified, with role user and no groups; inviting an email
// that already has a user is refused with 400; expire_date is sent as UTC
// without a zone; a PATCH of /v1/userinvitations/<id>/ may carry
// expire_date; a group id that does not exist is refused with 400;
// deleting a pending invitee withdraws their invitation (checked after);
// the printing-user fields can be written in the group PATCH.
package ezeep

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/internal/httpapi"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Sample is the documented YAML of an ezeep target.
//
//go:embed sample.yaml
var Sample string

// Type is the config type name.
const Type = "ezeep"

// Roles ezeep knows.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// Remote keys the connector keeps in Account.Remote.
const (
	// RemoteUUID is the ezeep user id.
	RemoteUUID = "uuid"
	// RemoteInvitation is the id of the user's last invitation.
	RemoteInvitation = "invitation"
	// RemoteGroups is the user's complete printing group list (ids,
	// comma-separated) as last written or read; absent when unknown.
	RemoteGroups = "groups"
)

// Settings are the type-specific keys of an ezeep target.
type Settings struct {
	// AccountURL is the account API (default https://account.ezeep.com).
	AccountURL string `yaml:"account_url"`
	// PrintingURL is the printing API (default
	// https://api2.ezeep.com/printing/v1).
	PrintingURL string `yaml:"printing_url"`
	// TokenURL is the OAuth token endpoint (default
	// <account_url>/oauth/access_token/).
	TokenURL string `yaml:"token_url"`
	// ClientID and ClientSecret are the OAuth client credentials of an
	// organisation admin's API client.
	ClientID     string        `yaml:"client_id"`
	ClientSecret config.Secret `yaml:"client_secret"`
	// PageSize is per_page for lists (1..1000, default 100).
	PageSize int `yaml:"page_size"`
	// GroupIDs maps application group names (the groups rules' "as") to
	// ezeep group ids.
	GroupIDs map[string]string `yaml:"group_ids"`
	// ManagedGroups are further group names or ids dirsync may remove
	// users from.
	ManagedGroups []string `yaml:"managed_groups"`
	// ReadGroupsFirst reads the user's groups before every group change
	// (default true: groups added by hand are kept); false trusts the list
	// dirsync last wrote or read.
	ReadGroupsFirst *bool `yaml:"read_groups_first"`
	// PrintingFeatures are the printing-user fields a suspension turns off
	// and an unsuspension turns back on (default self_service_enabled and
	// myprinters_enabled, the ones the document's examples show on; the
	// suspension turns all four off).
	PrintingFeatures []string `yaml:"printing_features"`
	// InvitationValidity is how long an invitation stays open when the
	// user has no directory expiry (default 30d).
	InvitationValidity config.Duration `yaml:"invitation_validity"`
}

// Common are the parts of the common target config the connector uses.
type Common struct {
	// Deprovision is the target's deprovision action: suspend (default),
	// delete or none. With delete the connector offers no Suspender.
	Deprovision string
	// RuleGroups are the application group names of the groups rules.
	RuleGroups []string
	// IncludeInactive mirrors the common key (only used for a warning).
	IncludeInactive bool
	// Timeout bounds each HTTP request when deps carry no client.
	Timeout time.Duration
	// Protected are account names (emails) never acted on.
	Protected []string
}

// Target is the ezeep connector without suspension (deprovision: delete).
// New returns a *Suspending (which embeds it) otherwise.
type Target struct {
	name     string
	s        Settings
	common   Common
	account  *url.URL
	printing *url.URL
	client   *http.Client
	cc       *clientcredentials.Config
	log      *zap.Logger
	now      func() time.Time
	managed  map[string]bool   // group ids dirsync manages
	byName   map[string]string // group name → id
	byID     map[string]string // group id → name

	http    *httpapi.Client
	protect *connector.Protected

	tokMu sync.Mutex
	tok   *oauth2.Token
}

// Suspending is the ezeep connector whose Suspend strips groups and role.
type Suspending struct{ *Target }

// printingFeatures are the printing-user fields the document lists; the
// suspension stand-in turns them all off.
var printingFeatures = []string{"self_service_enabled", "myprinters_enabled", "local_printing_enabled", "pull_printing_enabled"}

// Order implements connector.Orderer: suspend before set_expiry, so a
// person disabled with a new expiry is stripped (a pending invitee's
// invitation withdrawn) before the expiry step, which then sends nothing:
// ezeep's only expiry call re-sends the invitation.
func (s *Suspending) Order() []connector.Action {
	return []connector.Action{connector.ActCreate, connector.ActUnsuspend, connector.ActUpdate, connector.ActSetRole, connector.ActSetGroups,
		connector.ActForcePasswordChange, connector.ActSuspend, connector.ActSetExpiry, connector.ActDelete}
}

var (
	_ connector.Creator      = (*Target)(nil)
	_ connector.Updater      = (*Target)(nil)
	_ connector.RoleSetter   = (*Target)(nil)
	_ connector.GroupSetter  = (*Target)(nil)
	_ connector.Deleter      = (*Target)(nil)
	_ connector.ExpirySetter = (*Target)(nil)
	_ connector.Lister       = (*Target)(nil)
	_ connector.Reader       = (*Target)(nil)
	_ connector.Gater        = (*Target)(nil)
	_ connector.Opener       = (*Target)(nil)
	_ connector.Suspender    = (*Suspending)(nil)
	_ connector.Orderer      = (*Suspending)(nil)
)

// Factory builds an ezeep target from its config (type "ezeep"). It
// validates and fills defaults only; Open fetches the first token.
func Factory(cfg config.Target, deps connector.Deps) (connector.Connector, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	c := Common{Deprovision: cfg.Deprovision.Action, Timeout: cfg.Timeout.D(), IncludeInactive: cfg.IncludeInactive == nil || *cfg.IncludeInactive,
		Protected: cfg.Protected}
	for _, g := range cfg.Groups {
		name := g.As
		if name == "" {
			name = g.Group
		}
		c.RuleGroups = append(c.RuleGroups, name)
	}
	return build(cfg.Name, s, deps, c, cfg.Path())
}

// New builds the connector from decoded settings: a *Suspending, or a
// *Target when c.Deprovision is delete.
func New(name string, s Settings, deps connector.Deps, c Common) (connector.Connector, error) {
	return build(name, s, deps, c, "")
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isUUID(s string) bool { return uuidRE.MatchString(s) }

func parseBase(v string) (*url.URL, bool) {
	u, err := url.Parse(strings.TrimRight(v, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, false
	}
	return u, true
}

func build(name string, s Settings, deps connector.Deps, c Common, path string) (connector.Connector, error) {
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
	if s.AccountURL == "" {
		s.AccountURL = "https://account.ezeep.com"
	}
	if s.PrintingURL == "" {
		s.PrintingURL = "https://api2.ezeep.com/printing/v1"
	}
	account, ok := parseBase(s.AccountURL)
	if !ok {
		bad("account_url", "%q is not an http(s) URL without credentials", s.AccountURL)
	}
	printing, ok := parseBase(s.PrintingURL)
	if !ok {
		bad("printing_url", "%q is not an http(s) URL without credentials", s.PrintingURL)
	}
	if s.TokenURL == "" && account != nil {
		s.TokenURL = account.String() + "/oauth/access_token/"
	} else if _, ok := parseBase(s.TokenURL); !ok && s.TokenURL != "" {
		bad("token_url", "%q is not an http(s) URL without credentials", s.TokenURL)
	}
	if s.ClientID == "" {
		bad("client_id", "is required (the OAuth client of an ezeep organisation admin)")
	}
	if s.ClientSecret.IsZero() {
		bad("client_secret", "is required")
	}
	switch {
	case s.PageSize == 0:
		s.PageSize = 100
	case s.PageSize < 1 || s.PageSize > 1000:
		bad("page_size", "must be between 1 and 1000 (got %d)", s.PageSize)
	}
	if s.ReadGroupsFirst == nil {
		on := true
		s.ReadGroupsFirst = &on
	}
	if s.PrintingFeatures == nil {
		s.PrintingFeatures = []string{"self_service_enabled", "myprinters_enabled"}
	}
	for i, f := range s.PrintingFeatures {
		if !slices.Contains(printingFeatures, f) {
			bad(fmt.Sprintf("printing_features[%d]", i), "%q is not one of %s", f, strings.Join(printingFeatures, ", "))
		}
	}
	switch {
	case s.InvitationValidity == 0:
		s.InvitationValidity = config.Duration(30 * 24 * time.Hour)
	case s.InvitationValidity < 0:
		bad("invitation_validity", "must be > 0")
	}
	switch c.Deprovision {
	case "":
		c.Deprovision = "suspend"
	case "suspend", "delete", "none":
	default:
		bad("deprovision.action", "must be suspend, delete or none (got %q)", c.Deprovision)
	}
	byName := map[string]string{}
	byID := map[string]string{}
	managed := map[string]bool{}
	for _, n := range slices.Sorted(maps.Keys(s.GroupIDs)) {
		id := strings.TrimSpace(s.GroupIDs[n])
		if id == "" || strings.TrimSpace(n) == "" {
			bad("group_ids."+n, "name and id must both be set")
			continue
		}
		byName[n] = id
		if _, dup := byID[id]; !dup {
			byID[id] = n
		}
		managed[id] = true
	}
	resolve := func(n string) (string, bool) {
		if id, ok := byName[n]; ok {
			return id, true
		}
		if isUUID(n) {
			return n, true
		}
		return "", false
	}
	for i, n := range c.RuleGroups {
		id, ok := resolve(n)
		if !ok {
			bad(fmt.Sprintf("groups[%d]", i), "ezeep group %q has no id: add it to group_ids, or use the group's uuid as \"as\"", n)
			continue
		}
		managed[id] = true
	}
	for i, n := range s.ManagedGroups {
		id, ok := resolve(n)
		if !ok {
			bad(fmt.Sprintf("managed_groups[%d]", i), "%q is neither a group_ids name nor a group uuid", n)
			continue
		}
		managed[id] = true
	}
	if len(ps) > 0 {
		if path != "" {
			return nil, ps
		}
		return nil, fmt.Errorf("ezeep: %w", ps)
	}
	client, log, now := httpapi.Base(deps, c.Timeout)
	t := &Target{name: name, s: s, common: c, account: account, printing: printing, client: client,
		log: log.With(zap.String("target", name)), now: now, managed: managed, byName: byName, byID: byID,
		cc: &clientcredentials.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret.Value(), TokenURL: s.TokenURL,
			AuthStyle: oauth2.AuthStyleInHeader}}
	t.http = &httpapi.Client{App: Type, HTTP: client, Log: t.log, Now: now, Secrets: httpapi.NewSecrets(s.ClientSecret.Value()),
		Leading: deps.Leading, Rules: rules}
	t.protect = connector.NewProtected(c.Protected...)
	if c.Deprovision == "delete" {
		return t, nil
	}
	return &Suspending{t}, nil
}

// Name implements connector.Connector.
func (t *Target) Name() string { return t.name }

// Type implements connector.Connector.
func (t *Target) Type() string { return Type }

// Open implements connector.Opener: it fetches a token, which checks the
// client credentials and the token endpoint.
func (t *Target) Open(ctx context.Context) error {
	if t.common.Deprovision == "delete" && t.common.IncludeInactive {
		t.log.Warn("ezeep has no suspension and deprovision.action is delete: disabled users who stay in scope keep their ezeep account (skipped suspend decisions); set include_inactive: false so they leave the scope and are deleted")
	}
	_, err := t.token(ctx)
	return err
}

// Gate implements connector.Gater. It refuses, with the reason: an account
// without email (ezeep matches and invites by email), roles other than
// admin and user, and groups that have no ezeep id.
func (t *Target) Gate(act connector.Action, a identity.Account) string {
	if why := t.protect.Reason(a); why != "" {
		return why
	}
	if a.Email == "" && (act == connector.ActCreate || a.Remote[RemoteUUID] == "") {
		return "no email address: ezeep finds and invites users by email"
	}
	switch act {
	case connector.ActSetRole:
		if r := strings.ToLower(a.Role); r != RoleAdmin && r != RoleUser {
			return fmt.Sprintf("ezeep has only the roles admin and user: %q cannot be set", a.Role)
		}
	case connector.ActSetGroups:
		if _, missing := t.groupIDs(a.Groups); len(missing) > 0 {
			return fmt.Sprintf("group(s) %s have no ezeep group id (add them to group_ids)", strings.Join(missing, ", "))
		}
	}
	return ""
}

// groupIDs maps group names to ids; missing are names without an id.
func (t *Target) groupIDs(names []string) (ids, missing []string) {
	for _, n := range names {
		switch id, ok := t.byName[n]; {
		case ok:
			ids = append(ids, id)
		case isUUID(n):
			ids = append(ids, n)
		default:
			missing = append(missing, n)
		}
	}
	return identity.SortedSet(ids), missing
}

// groupNames maps ids back to names, keeping only managed groups.
func (t *Target) groupNames(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !t.managed[id] {
			continue
		}
		if n, ok := t.byID[id]; ok {
			out = append(out, n)
		} else {
			out = append(out, id)
		}
	}
	return identity.SortedSet(out)
}

// remember adds a value to the secrets scrubbed from error messages.
func (t *Target) remember(v string) { t.http.Secrets.AddToken(v) }

// clean removes every known secret from s.
func (t *Target) clean(s string) string { return t.http.Secrets.Scrub(s) }
