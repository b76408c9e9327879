package netmaker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

type apiGroup struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// apiUser is the part of Netmaker's user JSON the connector reads.
type apiUser struct {
	Username                   string                     `json:"username"`
	DisplayName                string                     `json:"display_name"`
	AccountDisabled            bool                       `json:"account_disabled"`
	IsMFAEnabled               bool                       `json:"is_mfa_enabled"`
	AuthType                   string                     `json:"auth_type"`
	PlatformRoleID             string                     `json:"platform_role_id"`
	ExternalIdentityProviderID string                     `json:"external_identity_provider_id"`
	UserGroups                 map[string]json.RawMessage `json:"user_group_ids"`
	IsSuperAdmin               bool                       `json:"issuperadmin"`
}

// idp reports whether u signs in through an identity provider (an SSO
// user): Netmaker refuses to delete it or change its display name.
func (u apiUser) idp() bool { return u.AuthType == "oauth" || u.ExternalIdentityProviderID != "" }

// super reports whether u is the super-admin.
func (u apiUser) super() bool { return u.IsSuperAdmin || u.PlatformRoleID == roleSuperAdmin }

func userPath(name string) string { return "/api/users/" + url.PathEscape(name) }

func setRemote(a *identity.Account, name string) {
	if a.Remote == nil {
		a.Remote = map[string]string{}
	}
	a.Remote["username"] = name
}

// randomPassword returns 32 random characters: created users need a
// password (≥ 5 characters) even when they sign in through SSO. It is sent
// once and never logged or kept.
func randomPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Create implements connector.Creator.
func (t *Target) Create(ctx context.Context, a *identity.Account) error {
	name, err := t.gate(ctx, connector.ActCreate, *a)
	if err != nil {
		return err
	}
	subject := fmt.Sprintf("netmaker: create %q", name)
	role := a.Role
	if role == "" {
		role = t.s.CreateRole
	}
	pw, err := randomPassword()
	if err != nil {
		return connector.Retryable(fmt.Errorf("%s: generate a password: %w", subject, err))
	}
	// Netmaker ignores auth_type: the user is a password user whose
	// password nobody knows.
	body := map[string]any{"username": name, "password": pw, "platform_role_id": role,
		"display_name": a.DisplayName, "is_mfa_enabled": false}
	_, status, err := t.raw(ctx, http.MethodPost, userPath(name), nil, body, subject, false)
	if err != nil {
		msg := strings.ToLower(err.Error())
		switch {
		case status == http.StatusBadRequest && strings.Contains(msg, "user exists"):
			return connector.Permanent(fmt.Errorf("%w: a Netmaker user with this name already exists; the next full run adopts it", err))
		case status == http.StatusBadRequest && strings.Contains(msg, "record not found"):
			return connector.Permanent(fmt.Errorf("%w: Netmaker could not find the calling user; is the token the master key? It cannot create users: use a personal access token", err))
		}
		return err
	}
	setRemote(a, name)
	t.log.Info("netmaker user created", zap.String("user", name), zap.String("role", role))
	return nil
}

// Suspend implements connector.Suspender (POST /api/users/{u}/disable).
func (t *Target) Suspend(ctx context.Context, a *identity.Account) error {
	return t.status(ctx, connector.ActSuspend, a, "disable")
}

// Unsuspend implements connector.Suspender (POST /api/users/{u}/enable).
func (t *Target) Unsuspend(ctx context.Context, a *identity.Account) error {
	return t.status(ctx, connector.ActUnsuspend, a, "enable")
}

func (t *Target) status(ctx context.Context, act connector.Action, a *identity.Account, verb string) error {
	name, err := t.gate(ctx, act, *a)
	if err != nil {
		return err
	}
	subject := fmt.Sprintf("netmaker: %s %q", verb, name)
	t.mu.Lock()
	known := t.listed
	t.mu.Unlock()
	if !known {
		// Nothing listed yet in this process: read the user, so the
		// super-admin is never disabled (the master key could). A user the
		// server lists but cannot read is known from that list instead
		// (disable and enable do not need its role).
		_, cur, err := t.getUser(ctx, name, subject)
		switch {
		case connector.CauseOf(err) == connector.CauseUnreadable:
			t.mu.Lock()
			cur.IsSuperAdmin = t.supers[name]
			t.mu.Unlock()
		case err != nil:
			return err
		}
		if cur.super() {
			return connector.Skip("%s: %q is Netmaker's super-admin, the application's owner: never disabled or enabled", subject, name)
		}
	}
	if _, _, err := t.raw(ctx, http.MethodPost, userPath(name)+"/"+verb, nil, nil, subject, true); err != nil {
		return err
	}
	setRemote(a, name)
	return nil
}

// SetRole implements connector.RoleSetter: read the user, change
// platform_role_id, PUT the whole user back.
func (t *Target) SetRole(ctx context.Context, a *identity.Account) error {
	return t.rmw(ctx, connector.ActSetRole, a, "set role of", func(doc map[string]json.RawMessage, cur apiUser) (bool, error) {
		if cur.PlatformRoleID == a.Role {
			return false, nil
		}
		doc["platform_role_id"] = mustJSON(a.Role)
		return true, nil
	})
}

// Update implements connector.Updater. Netmaker keeps only a display name;
// it cannot rename users, so a changed directory username keeps its
// Netmaker name (Remote["username"]).
func (t *Target) Update(ctx context.Context, before identity.Account, a *identity.Account) error {
	if r := a.Remote["username"]; r != "" {
		if mapped, why := MapUsername(t.s.InvalidUsername, a.Username, a.Email); why == "" && mapped != r {
			t.log.Info("netmaker cannot rename users: the account keeps its Netmaker name", zap.String("user", r), zap.String("directory_username", a.Username))
		}
	}
	return t.rmw(ctx, connector.ActUpdate, a, "update", func(doc map[string]json.RawMessage, cur apiUser) (bool, error) {
		if a.DisplayName == "" || cur.DisplayName == a.DisplayName {
			return false, nil
		}
		doc["display_name"] = mustJSON(a.DisplayName)
		return true, nil
	})
}

// SetGroups implements connector.GroupSetter. Only managed groups are added
// or removed (see the package doc); the user's other groups are kept.
func (t *Target) SetGroups(ctx context.Context, before identity.Account, a *identity.Account) error {
	if _, err := t.gate(ctx, connector.ActSetGroups, *a); err != nil {
		return err
	}
	want, err := t.groupIDs(ctx, a.Groups)
	if err != nil {
		return err
	}
	managedIDs := map[string]bool{}
	t.mu.Lock()
	for _, n := range t.managedNames(before.Groups, a.Groups) {
		if id, ok := t.groupByNm[n]; ok {
			managedIDs[id] = true
		}
	}
	t.mu.Unlock()
	return t.rmw(ctx, connector.ActSetGroups, a, "set groups of", func(doc map[string]json.RawMessage, cur apiUser) (bool, error) {
		next := map[string]struct{}{}
		for id := range cur.UserGroups {
			if !managedIDs[id] {
				next[id] = struct{}{}
			}
		}
		for _, id := range want {
			next[id] = struct{}{}
		}
		if slices.Equal(slices.Sorted(maps.Keys(next)), slices.Sorted(maps.Keys(cur.UserGroups))) {
			return false, nil
		}
		doc["user_group_ids"] = mustJSON(next)
		return true, nil
	})
}

// managedNames are the group names dirsync may add or remove; t.mu held.
func (t *Target) managedNames(extra ...[]string) []string {
	set := maps.Clone(t.managed)
	for _, l := range extra {
		for _, g := range l {
			set[g] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// groupIDs resolves group names to ids, creating missing groups when
// create_groups is set.
func (t *Target) groupIDs(ctx context.Context, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	t.groupMu.Lock()
	defer t.groupMu.Unlock()
	lookup := func() (ids, missing []string) {
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, n := range names {
			if id, ok := t.groupByNm[n]; ok {
				ids = append(ids, id)
			} else {
				missing = append(missing, n)
			}
		}
		return ids, missing
	}
	ids, missing := lookup()
	if len(missing) == 0 {
		return ids, nil
	}
	// Someone may have created them since discovery.
	if err := t.refreshGroups(ctx); err != nil {
		return nil, err
	}
	ids, missing = lookup()
	if len(missing) == 0 {
		return ids, nil
	}
	if !t.s.CreateGroups {
		return nil, connector.Skip("netmaker: group(s) %s do not exist in Netmaker and create_groups is false", strings.Join(missing, ", "))
	}
	for _, n := range missing {
		subject := fmt.Sprintf("netmaker: create group %q", n)
		body := map[string]any{"user_group": map[string]any{"name": n}, "members": []string{}}
		b, _, err := t.raw(ctx, http.MethodPost, "/api/v1/users/group", nil, body, subject, false)
		if err != nil {
			return nil, err
		}
		var g apiGroup
		if err := decodeResponse(b, &g); err != nil || g.ID == "" {
			// Created, but the answer is unreadable: find it by name.
			if err := t.refreshGroups(ctx); err != nil {
				return nil, err
			}
		} else {
			t.mu.Lock()
			t.groupByNm[g.Name], t.groupByID[g.ID] = g.ID, g.Name
			t.mu.Unlock()
		}
		t.log.Info("netmaker group created", zap.String("group", n))
	}
	ids, missing = lookup()
	if len(missing) > 0 {
		return nil, connector.Retryable(fmt.Errorf("netmaker: group(s) %s were created but are not listed", strings.Join(missing, ", ")))
	}
	return ids, nil
}

func (t *Target) refreshGroups(ctx context.Context) error {
	b, _, err := t.raw(ctx, http.MethodGet, "/api/v1/users/groups", nil, nil, "netmaker: list groups", true)
	if err != nil {
		return err
	}
	var groups []apiGroup
	if err := decodeResponse(b, &groups); err != nil {
		return connector.Retryable(fmt.Errorf("netmaker: list groups: %w", err))
	}
	t.mu.Lock()
	t.setGroupsLocked(groups)
	t.mu.Unlock()
	return nil
}

// rmw reads the whole user, lets change edit it, and PUTs it back when
// change reports a change. Every field the server returned is sent back:
// PUT replaces the user, and what it leaves out is lost (MFA, groups).
func (t *Target) rmw(ctx context.Context, act connector.Action, a *identity.Account, verb string, change func(map[string]json.RawMessage, apiUser) (bool, error)) error {
	name, err := t.gate(ctx, act, *a)
	if err != nil {
		return err
	}
	subject := fmt.Sprintf("netmaker: %s %q", verb, name)
	doc, cur, err := t.getUser(ctx, name, subject)
	if err != nil {
		return err
	}
	if cur.super() {
		return connector.Skip("%s: %q is Netmaker's super-admin, the application's owner: never changed", subject, name)
	}
	if act == connector.ActUpdate && cur.idp() {
		return connector.Skip("%s: %q signed in through the IdP (an SSO user): Netmaker refuses to rename IdP users", subject, name)
	}
	changed, err := change(doc, cur)
	if err != nil {
		return err
	}
	setRemote(a, name)
	if !changed {
		return nil
	}
	_, _, err = t.raw(ctx, http.MethodPut, userPath(name), nil, doc, subject, true)
	return err
}

// getUser reads one user (GET /api/v1/users?username=) as a document to
// send back with PUT and as parsed fields. user_group_ids, which this
// endpoint fills with whole group objects, is turned back into the id set
// PUT expects; the role object this endpoint adds is dropped.
func (t *Target) getUser(ctx context.Context, name, subject string) (map[string]json.RawMessage, apiUser, error) {
	b, _, err := t.raw(ctx, http.MethodGet, "/api/v1/users", url.Values{"username": {name}}, nil, subject, true)
	if connector.KindOf(err) == connector.KindNotFound {
		// "record not found" is also what Netmaker answers for a user it
		// lists but cannot read (its platform role is not on this server:
		// a paid-edition role on a community server). Such a user is not
		// gone (invariant 11): ask the list.
		listed, lerr := t.isListed(ctx, name)
		switch {
		case lerr != nil:
			return nil, apiUser{}, fmt.Errorf("%s: the read answered \"record not found\" and the list to tell a missing user from an unreadable one failed: %w", subject, lerr)
		case listed:
			return nil, apiUser{}, connector.Unreadable(fmt.Errorf("%s: Netmaker lists %q but cannot read it back (500 \"record not found\": its platform role is probably not one this server has, e.g. a paid-edition role on a community server); the account is not gone, and steps that need to read it wait until its role is fixed in Netmaker", subject, name))
		}
	}
	if err != nil {
		return nil, apiUser{}, err
	}
	var doc map[string]json.RawMessage
	if err := decodeResponse(b, &doc); err != nil {
		return nil, apiUser{}, connector.Retryable(fmt.Errorf("%s: unreadable user: %w", subject, err))
	}
	var u apiUser
	raw, _ := json.Marshal(doc)
	if err := json.Unmarshal(raw, &u); err != nil || u.Username == "" {
		return nil, apiUser{}, connector.Retryable(fmt.Errorf("%s: unreadable user", subject))
	}
	if u.Username != name {
		return nil, apiUser{}, connector.Permanent(fmt.Errorf("%s: asked for %q, the server answered with %q", subject, name, u.Username))
	}
	t.noteUser(u)
	set := map[string]struct{}{}
	for id := range u.UserGroups {
		set[id] = struct{}{}
	}
	doc["user_group_ids"] = mustJSON(set)
	delete(doc, "platform_role")
	delete(doc, "password")
	return doc, u, nil
}

// Delete implements connector.Deleter (DELETE /api/users/{u}). It reads the
// user first so an IdP-owned user is skipped rather than refused.
func (t *Target) Delete(ctx context.Context, a *identity.Account) error {
	name, err := t.gate(ctx, connector.ActDelete, *a)
	if err != nil {
		return err
	}
	subject := fmt.Sprintf("netmaker: delete %q", name)
	_, cur, err := t.getUser(ctx, name, subject)
	switch {
	case connector.CauseOf(err) == connector.CauseUnreadable:
		return connector.Impossible("%s: it cannot be read back, so dirsync cannot make sure it is neither an IdP (SSO) user nor the super-admin before deleting it: %w", subject, err)
	case err != nil:
		return err
	case cur.super():
		return connector.Skip("%s: %q is Netmaker's super-admin, the application's owner: never deleted", subject, name)
	case cur.idp():
		return connector.Impossible("%s: %q signed in through the IdP (an SSO user): Netmaker refuses to delete IdP users (\"cannot delete idp user\")", subject, name)
	}
	_, status, err := t.raw(ctx, http.MethodDelete, userPath(name), nil, nil, subject, true)
	if err != nil && status == http.StatusBadRequest && strings.Contains(strings.ToLower(err.Error()), "cannot delete idp user") {
		// It became an IdP user between the read and the delete.
		return connector.Impossible("%s: Netmaker refuses to delete IdP (SSO) users: %w", subject, err)
	}
	if err != nil {
		return err
	}
	t.log.Info("netmaker user deleted", zap.String("user", name))
	return nil
}

// Read implements connector.Reader (GET /api/v1/users?username=).
func (t *Target) Read(ctx context.Context, a identity.Account) (identity.Account, error) {
	name, why := t.remoteName(a)
	if why != "" {
		return identity.Account{}, connector.NotFound(fmt.Errorf("netmaker: read %q: %s", a.Username, why))
	}
	if err := t.discover(ctx, false); err != nil {
		return identity.Account{}, err
	}
	_, u, err := t.getUser(ctx, name, fmt.Sprintf("netmaker: read %q", name))
	if err != nil {
		return identity.Account{}, err
	}
	got := t.toAccount(u, a.Groups)
	got.Key = a.Key
	if a.Username != "" {
		got.Username = a.Username
	}
	if a.Email != "" {
		got.Email = a.Email
	}
	got.GivenName, got.FamilyName = a.GivenName, a.FamilyName
	return got, nil
}

// List implements connector.Lister.
func (t *Target) List(ctx context.Context) ([]identity.Account, error) {
	if err := t.discover(ctx, false); err != nil {
		return nil, err
	}
	users, err := t.listUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]identity.Account, 0, len(users))
	for _, u := range users {
		out = append(out, t.toAccount(u, nil))
	}
	return out, nil
}

// listUsers reads every user (v2 pages, or the legacy bare list) and
// notes the super-admin.
func (t *Target) listUsers(ctx context.Context) ([]apiUser, error) {
	t.mu.Lock()
	mode := t.listAPI
	t.mu.Unlock()
	var users []apiUser
	if mode != "legacy" {
		var err error
		var status int
		users, status, err = t.listV2(ctx)
		if err != nil && !(status == http.StatusNotFound && mode == "auto") {
			return nil, err
		}
		if err != nil {
			t.log.Info("netmaker: GET /api/v2/users is not there; listing with the legacy GET /api/users")
			t.mu.Lock()
			t.listAPI = "legacy"
			t.mu.Unlock()
			mode = "legacy"
		}
	}
	if mode == "legacy" {
		b, _, err := t.raw(ctx, http.MethodGet, "/api/users", nil, nil, "netmaker: list users", true)
		if err != nil {
			return nil, err
		}
		if err := decodeResponse(b, &users); err != nil {
			return nil, connector.Retryable(fmt.Errorf("netmaker: list users: %w", err))
		}
	}
	names := make(map[string]bool, len(users))
	for _, u := range users {
		t.noteUser(u)
		names[u.Username] = true
	}
	t.mu.Lock()
	t.listed = true
	t.names, t.listedAt = names, t.now()
	t.mu.Unlock()
	return users, nil
}

// isListed reports whether the server lists name, from a list read in the
// last minute or a new one: how a user Netmaker cannot read is told from
// a missing one, at most one list a minute however many reads fail.
func (t *Target) isListed(ctx context.Context, name string) (bool, error) {
	t.mu.Lock()
	names, at := t.names, t.listedAt
	t.mu.Unlock()
	if names == nil || t.now().Sub(at) > time.Minute {
		if _, err := t.listUsers(ctx); err != nil {
			return false, err
		}
		t.mu.Lock()
		names = t.names
		t.mu.Unlock()
	}
	return names[name], nil
}

func (t *Target) listV2(ctx context.Context) ([]apiUser, int, error) {
	var all []apiUser
	for page := 1; ; page++ {
		q := url.Values{"page": {strconv.Itoa(page)}, "per_page": {strconv.Itoa(t.s.PageSize)}}
		b, status, err := t.raw(ctx, http.MethodGet, "/api/v2/users", q, nil, "netmaker: list users (page "+strconv.Itoa(page)+")", true)
		if err != nil {
			return nil, status, err
		}
		var p struct {
			Data       []apiUser `json:"data"`
			Page       int       `json:"page"`
			TotalPages int       `json:"total_pages"`
			Total      int       `json:"total"`
		}
		if err := decodeResponse(b, &p); err != nil {
			return nil, status, connector.Retryable(fmt.Errorf("netmaker: list users (page %d): %w", page, err))
		}
		all = append(all, p.Data...)
		if len(p.Data) == 0 || page >= p.TotalPages {
			if p.Total > 0 && len(all) < p.Total {
				return nil, status, connector.Retryable(fmt.Errorf("netmaker: list users: got %d of %d users (the list changed while paging?)", len(all), p.Total))
			}
			return all, status, nil
		}
	}
}

// toAccount converts a Netmaker user; Groups are its managed groups only
// (plus extra, the groups the cache holds).
func (t *Target) toAccount(u apiUser, extra []string) identity.Account {
	a := identity.Account{Username: u.Username, DisplayName: u.DisplayName, Suspended: u.AccountDisabled,
		Role: u.PlatformRoleID, Exists: true, Remote: map[string]string{"username": u.Username}}
	if isEmail(u.Username) {
		a.Email = strings.ToLower(u.Username)
	}
	if u.ExternalIdentityProviderID != "" {
		a.Remote["idp"] = u.ExternalIdentityProviderID
	}
	if u.AuthType == "oauth" {
		a.Remote["auth_type"] = u.AuthType
	}
	t.mu.Lock()
	managed := map[string]bool{}
	for _, n := range t.managedNames(extra) {
		managed[n] = true
	}
	var groups []string
	for id := range u.UserGroups {
		if n, ok := t.groupByID[id]; ok && managed[n] {
			groups = append(groups, n)
		}
	}
	t.mu.Unlock()
	a.Groups = identity.SortedSet(groups)
	return a
}

// mustJSON encodes strings and id sets, which cannot fail.
func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}
