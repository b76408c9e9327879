package allthenticate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"go.uber.org/zap"
)

// Create implements target.Creator, though Allthenticate cannot create
// users: a guest is promoted to a full user and made active, a full user
// is adopted (and made active), anyone else is a skip.
func (t *Target) Create(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("allthenticate: add %q", a.Email)
	if a.Email == "" {
		return target.Skip("%s: no email address: Allthenticate users are found by email", subject)
	}
	users, err := t.listUsers(ctx, false, subject+": list users")
	if err != nil {
		return err
	}
	if u, ok := match(users, *a); ok {
		setIDs(a, u)
		t.log.Info("allthenticate user already a member: adopted", zap.String("email", a.Email))
		return t.complete(ctx, a, subject)
	}
	guests, err := t.listUsers(ctx, true, subject+": list guests")
	if err != nil {
		return err
	}
	g, ok := match(guests, *a)
	if !ok {
		return target.Skip("%s: not a member of the Allthenticate organisation, and dirsync cannot add users: invite them in Allthenticate (they are adopted on a later full run)", subject)
	}
	setIDs(a, g)
	if _, _, err := t.call(ctx, http.MethodPost, "/promoteguest", []param{{"email_id", g.EmailID}}, subject+": promote guest", false); err != nil {
		return err
	}
	t.log.Info("allthenticate guest promoted to a full user", zap.String("email", a.Email))
	return t.complete(ctx, a, subject)
}

// complete makes a promoted or adopted user what the engine takes a
// created account to be: active, with the mapped lists.
func (t *Target) complete(ctx context.Context, a *identity.Account, subject string) error {
	if err := t.setSuspended(ctx, a, false, subject); err != nil {
		return err
	}
	if !t.mapped[AttrComputerUsernames] && !t.mapped[AttrSmartcards] {
		return nil
	}
	return t.sendLists(ctx, a, t.mapped[AttrComputerUsernames], t.mapped[AttrSmartcards], subject)
}

// Suspend implements target.Suspender (read, toggle if needed, verify).
func (t *Target) Suspend(ctx context.Context, a *identity.Account) error {
	return t.setSuspended(ctx, a, true, fmt.Sprintf("allthenticate: suspend %q", a.Email))
}

// Unsuspend implements target.Suspender (read, toggle if needed, verify).
func (t *Target) Unsuspend(ctx context.Context, a *identity.Account) error {
	return t.setSuspended(ctx, a, false, fmt.Sprintf("allthenticate: unsuspend %q", a.Email))
}

// setSuspended makes the user's suspension want, toggling at most once:
// under the user's lock it reads the status, toggles only when it differs,
// and reads again to verify.
func (t *Target) setSuspended(ctx context.Context, a *identity.Account, want bool, subject string) error {
	if why := t.toggleBroken(); why != "" {
		return target.Permanent(fmt.Errorf("%s: suspension toggles are disabled until dirsync restarts: %s", subject, why))
	}
	emailID, _, err := t.ids(ctx, a, subject)
	if err != nil {
		return err
	}
	mu := t.lockFor(emailID)
	mu.Lock()
	defer mu.Unlock()
	cur, err := t.find(ctx, *a, subject)
	if err != nil {
		return err
	}
	setIDs(a, cur)
	if t.suspended(cur) == want {
		t.log.Debug("allthenticate suspension already as wanted: no toggle", zap.String("email", a.Email), zap.Bool("suspended", want))
		return nil
	}
	if _, _, err := t.call(ctx, http.MethodPost, "/togglesuspension", []param{{"email_id", cur.EmailID}}, subject+": toggle", false); err != nil {
		return err
	}
	got, err := t.find(ctx, *a, subject+": verify")
	if err != nil {
		return target.Uncertain(fmt.Errorf("%s: toggled, but the check that followed failed (the next attempt reads first): %w", subject, err))
	}
	if t.suspended(got) != want {
		why := fmt.Sprintf("after a successful toggle of %q, %s still reads %q (suspended_value %q): suspension_field or suspended_value do not match this server",
			a.Email, t.s.SuspensionField, got.field(t.s.SuspensionField), t.s.SuspendedValue)
		t.breakToggles(why)
		return target.Permanent(fmt.Errorf("%s: %s", subject, why))
	}
	return nil
}

// SetRole implements target.RoleSetter: POST /modifyrank.
func (t *Target) SetRole(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("allthenticate: set rank of %q", a.Email)
	r, ok := rank(a.Role)
	if !ok {
		return target.Skip("%s: %q is not an Allthenticate rank (REGULAR, ADMIN, SUPER)", subject, a.Role)
	}
	if r == RankSuper && !t.s.AllowSuper {
		return target.Skip("%s: granting SUPER needs allow_super: true in the target's config", subject)
	}
	cur := apiUser{EmailID: remoteInt(*a, RemoteEmailID), UserID: remoteInt(*a, RemoteUserID), guest: a.Remote[RemoteTag] == TagGuest}
	if cur.EmailID == 0 || cur.UserID == 0 || cur.guest {
		var err error
		if cur, err = t.find(ctx, *a, subject); err != nil {
			return err
		}
		setIDs(a, cur)
	}
	if cur.guest {
		// A guest has no rank: the rules give this person one, so they
		// become a full user first.
		if _, _, err := t.call(ctx, http.MethodPost, "/promoteguest", []param{{"email_id", cur.EmailID}}, subject+": promote guest", false); err != nil {
			return err
		}
		delete(a.Remote, RemoteTag)
		t.log.Info("allthenticate guest promoted to a full user", zap.String("email", a.Email))
	}
	_, _, err := t.call(ctx, http.MethodPost, "/modifyrank", []param{{"admin_user_id", cur.UserID}, {"rank", r}}, subject, true)
	return err
}

// Update implements target.Updater: it replaces the computer usernames
// and the smartcards when their attributes changed. Names and email cannot
// be changed through the API; they are kept in the cache only.
func (t *Target) Update(ctx context.Context, before identity.Account, a *identity.Account) error {
	subject := fmt.Sprintf("allthenticate: update %q", a.Email)
	cuChanged := attrChanged(before, *a, AttrComputerUsernames)
	scChanged := attrChanged(before, *a, AttrSmartcards)
	if !cuChanged && !scChanged {
		t.log.Debug("allthenticate: names and email are not sent (no API for them)", zap.String("email", a.Email))
		return nil
	}
	if _, _, err := t.ids(ctx, a, subject, before.Email); err != nil {
		return err
	}
	return t.sendLists(ctx, a, cuChanged, scChanged, subject)
}

// sendLists replaces the computer usernames and/or the smartcards with
// a's (whole lists; an absent attribute clears the list).
func (t *Target) sendLists(ctx context.Context, a *identity.Account, cu, sc bool, subject string) error {
	cards, err := parseSmartcards(a.Attributes[AttrSmartcards])
	if err != nil {
		return target.Skip("%s: %v", subject, err)
	}
	emailID, _, err := t.ids(ctx, a, subject)
	if err != nil {
		return err
	}
	if cu {
		names := []map[string]string{}
		for _, n := range splitList(a.Attributes[AttrComputerUsernames]) {
			names = append(names, map[string]string{"computer_username": n})
		}
		b, _ := json.Marshal(names)
		if _, _, err := t.call(ctx, http.MethodPost, "/modifyallusernames", []param{{"email_id", emailID}, {"computer_usernames", string(b)}}, subject+": computer usernames", true); err != nil {
			return err
		}
	}
	if sc {
		b, _ := json.Marshal(cards)
		ps := []param{{"email_id", emailID}, {"smartcards", string(b)}}
		if t.s.AllowDuplicateSmartcards {
			ps = append(ps, param{"allow_duplicates", true})
		}
		if _, _, err := t.call(ctx, http.MethodPost, "/modifysmartcard", ps, subject+": smartcards", true); err != nil {
			return err
		}
	}
	return nil
}

func attrChanged(before, a identity.Account, k string) bool {
	bv, bok := before.Attributes[k]
	av, aok := a.Attributes[k]
	if !bok && !aok {
		return false
	}
	return strings.Join(splitList(bv), ",") != strings.Join(splitList(av), ",") || bok != aok
}

// splitList splits a comma-separated attribute, trimmed, without empty or
// repeated items.
func splitList(v string) []string {
	out := []string{}
	seen := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

type smartcard struct {
	Number string `json:"number"`
	Label  string `json:"label,omitempty"`
}

// parseSmartcards reads "number" or "label:number" items.
func parseSmartcards(v string) ([]smartcard, error) {
	out := []smartcard{}
	for _, item := range splitList(v) {
		c := smartcard{Number: item}
		if i := strings.LastIndex(item, ":"); i >= 0 {
			c.Label, c.Number = strings.TrimSpace(item[:i]), strings.TrimSpace(item[i+1:])
		}
		if _, err := strconv.ParseUint(c.Number, 10, 64); err != nil {
			return nil, fmt.Errorf("smartcard %q: the number must be an integer string (items are NUMBER or LABEL:NUMBER)", item)
		}
		out = append(out, c)
	}
	return out, nil
}

// Delete implements target.Deleter: DELETE /user removes the user from the
// organisation.
func (t *Target) Delete(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("allthenticate: delete %q", a.Email)
	emailID, _, err := t.ids(ctx, a, subject)
	if err != nil {
		return err
	}
	_, _, err = t.call(ctx, http.MethodDelete, "/user", []param{{"email_id", emailID}}, subject, true)
	return err
}

// List implements target.Lister: the organisation's full users and its
// guests (GET /multipleusers?user_tag=GUEST); a guest's Remote["tag"] is
// GUEST.
func (t *Target) List(ctx context.Context) ([]identity.Account, error) {
	users, err := t.listAll(ctx, "allthenticate: list")
	if err != nil {
		return nil, err
	}
	out := make([]identity.Account, 0, len(users))
	for _, u := range users {
		out = append(out, t.accountOf(u))
	}
	return out, nil
}

// Read implements target.Reader: the user's entry (a full user or a
// guest) and (GET /user) its computer usernames and smartcards.
func (t *Target) Read(ctx context.Context, a identity.Account) (identity.Account, error) {
	subject := fmt.Sprintf("allthenticate: read %q", a.Email)
	u, err := t.find(ctx, a, subject)
	if err != nil {
		return identity.Account{}, err
	}
	got := t.accountOf(u)
	got.Key = a.Key
	b, _, err := t.call(ctx, http.MethodGet, "/user", []param{{"email_id", u.EmailID}}, subject, true)
	if err != nil {
		return identity.Account{}, err
	}
	var detail struct {
		ComputerUsernames []string    `json:"computer_usernames"`
		Smartcards        []smartcard `json:"smartcards"`
	}
	if err := json.Unmarshal(b, &detail); err != nil {
		return identity.Account{}, target.Retryable(fmt.Errorf("%s: decode: %w", subject, err))
	}
	attrs := map[string]string{}
	if len(detail.ComputerUsernames) > 0 {
		attrs[AttrComputerUsernames] = strings.Join(detail.ComputerUsernames, ",")
	}
	if len(detail.Smartcards) > 0 {
		var items []string
		for _, c := range detail.Smartcards {
			if c.Label != "" {
				items = append(items, c.Label+":"+c.Number)
			} else {
				items = append(items, c.Number)
			}
		}
		attrs[AttrSmartcards] = strings.Join(items, ",")
	}
	if len(attrs) > 0 {
		got.Attributes = attrs
	}
	return got, nil
}
