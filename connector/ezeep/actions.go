package ezeep

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// roleList reads ezeep's roles, an array (["admin"]) on read; a plain
// string is accepted too.
type roleList []string

func (r *roleList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*r = roleList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*r = many
	return nil
}

type apiInvitation struct {
	ID               string `json:"id"`
	Email            string `json:"email"`
	ExpireDate       string `json:"expire_date"`
	DeliveryStatus   string `json:"delivery_status"`
	InvitationStatus string `json:"invitation_status"`
}

type apiUser struct {
	ID          string          `json:"id"`
	Email       string          `json:"email"`
	FirstName   string          `json:"first_name"`
	LastName    string          `json:"last_name"`
	DisplayName string          `json:"display_name"`
	Invitations []apiInvitation `json:"user_invitations"`
	Roles       roleList        `json:"roles"`
	IsVerified  bool            `json:"is_verified"`
}

type apiPrinting struct {
	ID     string `json:"id"`
	Groups []struct {
		GroupID string `json:"group_id"`
	} `json:"groups"`
}

func (p apiPrinting) ids() []string {
	out := make([]string, 0, len(p.Groups))
	for _, g := range p.Groups {
		if g.GroupID != "" {
			out = append(out, g.GroupID)
		}
	}
	return identity.SortedSet(out)
}

type groupRef struct {
	GroupID string `json:"group_id"`
}

func (u apiUser) role() string {
	for _, r := range u.Roles {
		if strings.EqualFold(r, RoleAdmin) {
			return RoleAdmin
		}
	}
	if len(u.Roles) > 0 {
		return strings.ToLower(u.Roles[0])
	}
	return RoleUser
}

// pending returns the user's last invitation when the user has not signed
// up yet and it was not accepted.
func (u apiUser) pending() (apiInvitation, bool) {
	if u.IsVerified || len(u.Invitations) == 0 {
		return apiInvitation{}, false
	}
	inv := u.Invitations[len(u.Invitations)-1]
	if strings.EqualFold(inv.InvitationStatus, "ACCEPTED") {
		return apiInvitation{}, false
	}
	return inv, true
}

func setRemote(a *identity.Account, k, v string) {
	if a.Remote == nil {
		a.Remote = map[string]string{}
	}
	a.Remote[k] = v
}

func (t *Target) accountOf(u apiUser) identity.Account {
	a := identity.Account{Email: u.Email, GivenName: u.FirstName, FamilyName: u.LastName, DisplayName: u.DisplayName,
		Role: u.role(), Exists: true, Remote: map[string]string{RemoteUUID: u.ID}}
	if a.DisplayName == "" {
		a.DisplayName = strings.TrimSpace(u.FirstName + " " + u.LastName)
	}
	if inv, ok := u.pending(); ok {
		a.Remote[RemoteInvitation] = inv.ID
	}
	return a
}

func (t *Target) userURL(id string) string {
	return t.account.String() + "/v1/users/" + url.PathEscape(id) + "/"
}

func (t *Target) printingUserURL(id string) string {
	return t.printing.String() + "/users/" + url.PathEscape(id) + "/"
}

func (t *Target) invitationsURL() string { return t.account.String() + "/v1/userinvitations/" }

// lookupPageSize is per_page when looking for one user: ezeep lists the
// newest first, and the user looked up is most often a fresh invitee.
const lookupPageSize = 20

// findByEmail walks the user list until it finds email.
func (t *Target) findByEmail(ctx context.Context, email, subject string) (apiUser, error) {
	var found apiUser
	ok := false
	var seen adminCheck
	err := t.walk(ctx, t.account, "/v1/users/", min(lookupPageSize, t.s.PageSize), subject+": list users", func(raw json.RawMessage) (bool, error) {
		var u apiUser
		if err := json.Unmarshal(raw, &u); err != nil {
			return false, connector.Retryable(fmt.Errorf("%s: decode user: %w", subject, err))
		}
		seen.add(u)
		if strings.EqualFold(u.Email, email) && u.ID != "" {
			found, ok = u, true
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return apiUser{}, err
	}
	if !ok {
		if err := seen.check(subject); err != nil {
			return apiUser{}, err
		}
		return apiUser{}, connector.NotFound(fmt.Errorf("%s: no ezeep user has the email %q", subject, email))
	}
	return found, nil
}

// uuid returns the account's ezeep id from the cache, or looks it up by
// email (trying the emails given, then a.Email) and records it.
func (t *Target) uuid(ctx context.Context, a *identity.Account, subject string, emails ...string) (string, error) {
	if id := a.Remote[RemoteUUID]; id != "" {
		return id, nil
	}
	var lastErr error
	for _, e := range append(slices.Clone(emails), a.Email) {
		if e == "" {
			continue
		}
		u, err := t.findByEmail(ctx, e, subject)
		if err != nil {
			lastErr = err
			if connector.KindOf(err) == connector.KindNotFound {
				continue
			}
			return "", err
		}
		setRemote(a, RemoteUUID, u.ID)
		return u.ID, nil
	}
	if lastErr == nil {
		lastErr = connector.Skip("%s: no email address and no ezeep id: cannot find the user", subject)
	}
	return "", lastErr
}

func (t *Target) expireDate(a *identity.Account) time.Time {
	now := t.now()
	if a.Expires != nil && a.Expires.After(now) {
		return *a.Expires
	}
	return now.Add(t.s.InvitationValidity.D())
}

// Create implements connector.Creator: it invites the user (the invitation
// expires with the directory expiry, or after invitation_validity). When
// ezeep already has a user with that email, that user is adopted and a
// pending invitation resent.
func (t *Target) Create(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("ezeep: invite %q", a.Email)
	if why := t.Gate(connector.ActCreate, *a); why != "" {
		return connector.Skip("%s: %s", subject, why)
	}
	body := map[string]string{"email": a.Email, "expire_date": t.expireDate(a).UTC().Format("2006-01-02T15:04:05")}
	b, status, err := t.call(ctx, http.MethodPost, t.invitationsURL(), body, subject, false)
	switch {
	case err == nil:
		var inv apiInvitation
		if json.Unmarshal(b, &inv) == nil && inv.ID != "" {
			setRemote(a, RemoteInvitation, inv.ID)
		}
		u, ferr := t.findByEmail(ctx, a.Email, subject)
		if ferr != nil {
			// The invitation is sent; the uuid is looked up by the next
			// action that needs it.
			t.log.Debug("ezeep invitee not found yet", zap.String("email", a.Email), zap.Error(ferr))
			return nil
		}
		setRemote(a, RemoteUUID, u.ID)
		return nil
	case status == http.StatusBadRequest:
		u, ferr := t.findByEmail(ctx, a.Email, subject)
		if ferr != nil {
			if connector.KindOf(ferr) == connector.KindNotFound {
				return err
			}
			return ferr
		}
		return t.adopt(ctx, a, u, subject)
	default:
		return err
	}
}

// adopt takes an existing ezeep user for a and resends its invitation
// when it is still pending.
func (t *Target) adopt(ctx context.Context, a *identity.Account, u apiUser, subject string) error {
	setRemote(a, RemoteUUID, u.ID)
	inv, ok := u.pending()
	if !ok {
		t.log.Info("ezeep user already exists: adopted", zap.String("email", a.Email))
		return nil
	}
	setRemote(a, RemoteInvitation, inv.ID)
	if _, _, err := t.call(ctx, http.MethodPatch, t.account.String()+"/v1/userinvitations/"+url.PathEscape(inv.ID)+"/", nil, subject+": resend invitation", true); err != nil {
		return err
	}
	t.log.Info("ezeep user already invited: invitation resent", zap.String("email", a.Email), zap.String("status", inv.InvitationStatus))
	return nil
}

// SetExpiry implements connector.ExpirySetter. ezeep has no user expiry, only
// the invitation's: while the user has not accepted, the pending
// invitation's expire_date follows the directory expiry (PATCH
// /v1/userinvitations/<id>/, which ezeep treats as a resend); a cleared
// expiry gives it invitation_validity from now. For a user who accepted,
// and for an expiry already past (the engine suspends such a user), there
// is nothing to send.
func (t *Target) SetExpiry(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("ezeep: set invitation expiry of %q", a.Email)
	now := t.now()
	if a.Expires != nil && !a.Expires.After(now) {
		return nil
	}
	if a.Suspended {
		// Stripped, or an invitation withdrawn: the only expiry call
		// re-sends the invitation, which must not reach a leaver.
		connector.Note(ctx, "the account is suspended (stripped or invitation withdrawn): no invitation expiry is sent, since ezeep's call re-sends the invitation")
		return nil
	}
	id, err := t.uuid(ctx, a, subject)
	if err != nil {
		return err
	}
	b, _, err := t.call(ctx, http.MethodGet, t.userURL(id), nil, subject, true)
	if err != nil {
		return err
	}
	var u apiUser
	if err := json.Unmarshal(b, &u); err != nil {
		return connector.Retryable(fmt.Errorf("%s: decode: %w", subject, err))
	}
	inv, ok := u.pending()
	if !ok {
		t.log.Debug("ezeep user accepted the invitation: no expiry to set", zap.String("email", a.Email))
		return nil
	}
	setRemote(a, RemoteInvitation, inv.ID)
	exp := t.expireDate(a).UTC().Format("2006-01-02T15:04:05")
	_, _, err = t.call(ctx, http.MethodPatch, t.account.String()+"/v1/userinvitations/"+url.PathEscape(inv.ID)+"/", map[string]string{"expire_date": exp}, subject, true)
	return err
}

// Update implements connector.Updater: first name, last name and email.
func (t *Target) Update(ctx context.Context, before identity.Account, a *identity.Account) error {
	subject := fmt.Sprintf("ezeep: update %q", a.Email)
	id, err := t.uuid(ctx, a, subject, before.Email)
	if err != nil {
		return err
	}
	body := map[string]string{"first_name": a.GivenName, "last_name": a.FamilyName}
	if a.Email != "" {
		body["email"] = a.Email
	}
	_, _, err = t.call(ctx, http.MethodPatch, t.userURL(id), body, subject, true)
	return err
}

// SetRole implements connector.RoleSetter: admin or user.
func (t *Target) SetRole(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("ezeep: set role of %q", a.Email)
	role := strings.ToLower(a.Role)
	if role != RoleAdmin && role != RoleUser {
		return connector.Skip("%s: ezeep has only the roles admin and user: %q cannot be set", subject, a.Role)
	}
	return t.setRole(ctx, a, role, subject)
}

func (t *Target) setRole(ctx context.Context, a *identity.Account, role, subject string) error {
	id, err := t.uuid(ctx, a, subject)
	if err != nil {
		return err
	}
	_, _, err = t.call(ctx, http.MethodPatch, t.userURL(id), map[string]string{"roles": role}, subject, true)
	return err
}

// SetGroups implements connector.GroupSetter. The PATCH replaces the whole
// list, so it carries the desired groups plus the unmanaged groups the
// user has (from the cache, or read first when the cache does not know).
func (t *Target) SetGroups(ctx context.Context, before identity.Account, a *identity.Account) error {
	subject := fmt.Sprintf("ezeep: set groups of %q", a.Email)
	ids, missing := t.groupIDs(a.Groups)
	if len(missing) > 0 {
		return connector.Skip("%s: group(s) %s have no ezeep group id (add them to group_ids)", subject, strings.Join(missing, ", "))
	}
	id, err := t.uuid(ctx, a, subject)
	if err != nil {
		return err
	}
	return t.writeGroups(ctx, a, id, ids, subject, nil)
}

// knownGroups returns the complete group list the cache holds.
func knownGroups(a *identity.Account) ([]string, bool) {
	v, ok := a.Remote[RemoteGroups]
	if !ok {
		return nil, false
	}
	if v == "" {
		return []string{}, true
	}
	return strings.Split(v, ","), true
}

func (t *Target) readGroups(ctx context.Context, id, subject string) ([]string, error) {
	b, _, err := t.call(ctx, http.MethodGet, t.printingUserURL(id), nil, subject+": read groups", true)
	if err != nil {
		return nil, err
	}
	var p apiPrinting
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, connector.Retryable(fmt.Errorf("%s: decode groups: %w", subject, err))
	}
	return p.ids(), nil
}

// writeGroups sends the complete list: want plus the current groups
// dirsync does not manage.
func (t *Target) writeGroups(ctx context.Context, a *identity.Account, id string, want []string, subject string, extra map[string]any) error {
	current, known := knownGroups(a)
	if !known || *t.s.ReadGroupsFirst {
		var err error
		if current, err = t.readGroups(ctx, id, subject); err != nil {
			return err
		}
	}
	list := slices.Clone(want)
	for _, g := range current {
		if !t.managed[g] {
			list = append(list, g)
		}
	}
	return t.putGroups(ctx, a, id, identity.SortedSet(list), subject, extra)
}

// putGroups PATCHes the printing user's complete group list, with extra
// printing-user fields (features) when given.
func (t *Target) putGroups(ctx context.Context, a *identity.Account, id string, list []string, subject string, extra map[string]any) error {
	refs := make([]groupRef, 0, len(list))
	for _, g := range list {
		refs = append(refs, groupRef{GroupID: g})
	}
	body := map[string]any{"groups": refs}
	for k, v := range extra {
		body[k] = v
	}
	b, _, err := t.call(ctx, http.MethodPatch, t.printingUserURL(id), body, subject, true)
	if err != nil {
		return err
	}
	var p apiPrinting
	if json.Unmarshal(b, &p) == nil && p.ID != "" {
		list = p.ids()
	}
	setRemote(a, RemoteGroups, strings.Join(list, ","))
	return nil
}

// Suspend implements connector.Suspender: ezeep has no suspension. A
// pending invitee is deleted (which withdraws the invitation; checked);
// anyone else is set to role user, then loses every printing group and
// every printing feature.
func (s *Suspending) Suspend(ctx context.Context, a *identity.Account) error {
	t := s.Target
	subject := fmt.Sprintf("ezeep: suspend (strip groups, printing and role) %q", a.Email)
	id, err := t.uuid(ctx, a, subject)
	if err != nil {
		return err
	}
	b, _, err := t.call(ctx, http.MethodGet, t.userURL(id), nil, subject+": read", true)
	if err != nil {
		return err
	}
	var u apiUser
	if err := json.Unmarshal(b, &u); err != nil {
		return connector.Retryable(fmt.Errorf("%s: decode: %w", subject, err))
	}
	if inv, pending := u.pending(); pending {
		return t.withdraw(ctx, a, id, inv, subject)
	}
	// The role first: nothing the printing API answers can skip it.
	if _, _, err := t.call(ctx, http.MethodPatch, t.userURL(id), map[string]string{"roles": RoleUser}, subject+": role", true); err != nil {
		return err
	}
	body := map[string]any{"groups": []groupRef{}}
	for _, f := range printingFeatures {
		body[f] = false
	}
	pb, _, err := t.call(ctx, http.MethodPatch, t.printingUserURL(id), body, subject+": printing", true)
	switch {
	case connector.KindOf(err) == connector.KindNotFound:
		// The printing API does not know the user: no group, no printing
		// feature to take away.
		connector.Note(ctx, "role set to user; the printing API does not know the user (404): no printing groups or features to strip")
		setRemote(a, RemoteGroups, "")
		return nil
	case err != nil:
		return err
	}
	var p apiPrinting
	list := []string{}
	if json.Unmarshal(pb, &p) == nil && p.ID != "" {
		list = p.ids()
	}
	setRemote(a, RemoteGroups, strings.Join(list, ","))
	connector.Note(ctx, "role set to user; printing groups removed; %s turned off", strings.Join(printingFeatures, ", "))
	return nil
}

// withdraw deletes a pending invitee, which takes the invitation with it
// (the document has no call that withdraws an invitation; PATCH re-sends
// it), and checks that no open invitation is left for the email.
func (t *Target) withdraw(ctx context.Context, a *identity.Account, id string, inv apiInvitation, subject string) error {
	if _, _, err := t.call(ctx, http.MethodDelete, t.userURL(id), nil, subject+": withdraw invitation (delete the pending invitee)", true); err != nil && connector.KindOf(err) != connector.KindNotFound {
		return err
	}
	open := ""
	err := t.walk(ctx, t.account, "/v1/userinvitations/", t.s.PageSize, subject+": check invitations", func(raw json.RawMessage) (bool, error) {
		var i apiInvitation
		if json.Unmarshal(raw, &i) == nil && strings.EqualFold(i.Email, a.Email) && strings.EqualFold(i.InvitationStatus, "OPEN") {
			open = i.ID
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s: the pending invitee was deleted, but the invitations could not be checked: %w", subject, err)
	}
	if open != "" {
		return connector.Permanent(fmt.Errorf("%s: the pending invitee was deleted, but invitation %s is still open: withdraw it in ezeep's admin portal", subject, open))
	}
	connector.Note(ctx, "pending invitee (invitation %s, %s): withdrawn by deleting the unverified user; no open invitation is left", inv.ID, strings.ToLower(inv.InvitationStatus))
	return nil
}

// Unsuspend implements connector.Suspender: it re-sends the role and the
// managed groups of the account it is given (the cached, desired ones),
// and turns printing_features back on.
func (s *Suspending) Unsuspend(ctx context.Context, a *identity.Account) error {
	t := s.Target
	subject := fmt.Sprintf("ezeep: unsuspend (restore groups, printing and role) %q", a.Email)
	role := strings.ToLower(a.Role)
	if role != RoleAdmin {
		role = RoleUser
	}
	ids, missing := t.groupIDs(a.Groups)
	if len(missing) > 0 {
		t.log.Warn("ezeep groups without an id are not restored", zap.String("email", a.Email), zap.Strings("groups", missing))
	}
	id, err := t.uuid(ctx, a, subject)
	if err != nil {
		return err
	}
	if _, _, err := t.call(ctx, http.MethodPatch, t.userURL(id), map[string]string{"roles": role}, subject, true); err != nil {
		return err
	}
	features := map[string]any{}
	for _, f := range t.s.PrintingFeatures {
		features[f] = true
	}
	return t.writeGroups(ctx, a, id, ids, subject, features)
}

// Delete implements connector.Deleter.
func (t *Target) Delete(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("ezeep: delete %q", a.Email)
	id, err := t.uuid(ctx, a, subject)
	if err != nil {
		return err
	}
	_, _, err = t.call(ctx, http.MethodDelete, t.userURL(id), nil, subject, true)
	return err
}

// List implements connector.Lister: every user of the account API, with its
// managed groups from the printing API.
func (t *Target) List(ctx context.Context) ([]identity.Account, error) {
	subject := "ezeep: list users"
	var users []apiUser
	var seen adminCheck
	err := t.walk(ctx, t.account, "/v1/users/", t.s.PageSize, subject, func(raw json.RawMessage) (bool, error) {
		var u apiUser
		if err := json.Unmarshal(raw, &u); err != nil {
			return false, connector.Retryable(fmt.Errorf("%s: decode user: %w", subject, err))
		}
		seen.add(u)
		users = append(users, u)
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	if err := seen.check(subject); err != nil {
		return nil, err
	}
	groups := map[string][]string{}
	err = t.walk(ctx, t.printing, "/users/", t.s.PageSize, "ezeep: list printing users", func(raw json.RawMessage) (bool, error) {
		var p apiPrinting
		if err := json.Unmarshal(raw, &p); err != nil {
			return false, connector.Retryable(fmt.Errorf("ezeep: list printing users: decode: %w", err))
		}
		groups[p.ID] = p.ids()
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]identity.Account, 0, len(users))
	for _, u := range users {
		a := t.accountOf(u)
		if gs, ok := groups[u.ID]; ok {
			a.Groups = t.groupNames(gs)
			a.Remote[RemoteGroups] = strings.Join(gs, ",")
		}
		out = append(out, a)
	}
	return out, nil
}

// Read implements connector.Reader. Suspended is inferred: a user with role
// user and no group is stripped, unless that is also what the account
// normally looks like, in which case the cached flag is kept (the two
// states are the same in ezeep).
func (t *Target) Read(ctx context.Context, a identity.Account) (identity.Account, error) {
	subject := fmt.Sprintf("ezeep: read %q", a.Email)
	var u apiUser
	if id := a.Remote[RemoteUUID]; id != "" {
		b, _, err := t.call(ctx, http.MethodGet, t.userURL(id), nil, subject, true)
		switch {
		case err == nil:
			if err := json.Unmarshal(b, &u); err != nil {
				return identity.Account{}, connector.Retryable(fmt.Errorf("%s: decode: %w", subject, err))
			}
		case connector.KindOf(err) == connector.KindNotFound && a.Email != "":
			if u, err = t.findByEmail(ctx, a.Email, subject); err != nil {
				return identity.Account{}, err
			}
		default:
			return identity.Account{}, err
		}
	} else {
		if a.Email == "" {
			return identity.Account{}, connector.NotFound(fmt.Errorf("%s: no email address and no ezeep id", subject))
		}
		var err error
		if u, err = t.findByEmail(ctx, a.Email, subject); err != nil {
			return identity.Account{}, err
		}
	}
	got := t.accountOf(u)
	got.Key = a.Key
	gs, err := t.readGroups(ctx, u.ID, subject)
	switch {
	case connector.KindOf(err) == connector.KindNotFound:
		gs = []string{}
	case err != nil:
		return identity.Account{}, err
	}
	got.Groups = t.groupNames(gs)
	got.Remote[RemoteGroups] = strings.Join(gs, ",")
	stripped := got.Role == RoleUser && len(gs) == 0
	ids, _ := t.groupIDs(a.Groups)
	normallyStripped := (a.Role == "" || strings.EqualFold(a.Role, RoleUser)) && len(ids) == 0
	got.Suspended = stripped
	if normallyStripped {
		got.Suspended = a.Suspended
	}
	return got, nil
}

// adminCheck watches a user list for an admin: an organisation admin's
// credential lists every user, themself included, so a complete list of
// one user who is not an admin comes from an ordinary user's credential
// ("will only get his own information").
type adminCheck struct {
	n     int
	admin bool
	first string
}

func (c *adminCheck) add(u apiUser) {
	if c.n == 0 {
		c.first = u.Email
	}
	c.n++
	c.admin = c.admin || u.role() == RoleAdmin
}

func (c *adminCheck) check(subject string) error {
	// The admin sees themself and everyone else; an ordinary user sees
	// exactly one user, themself, who is not an admin.
	if c.admin || c.n != 1 {
		return nil
	}
	return connector.Permanent(fmt.Errorf("%s: the credential is not an organisation admin's: GET /v1/users/ lists %d user (%q), not an admin, and an ordinary user sees only themself; reconcile and adoption are refused (configure the OAuth client of an ezeep organisation admin)",
		subject, c.n, c.first))
}
