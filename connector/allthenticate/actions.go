package allthenticate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// Create implements connector.Creator, though Allthenticate cannot create
// users: a guest is promoted to a full user and made active, a full user
// is adopted (and made active), anyone else is a skip.
func (t *Target) Create(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("allthenticate: add %q", a.Email)
	if a.Email == "" {
		return connector.Skip("%s: no email address: Allthenticate users are found by email", subject)
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
		return connector.Skip("%s: not a member of the Allthenticate organisation, and dirsync cannot add users: invite them in Allthenticate (they are adopted on a later full run)", subject)
	}
	setIDs(a, g)
	if err := t.promote(ctx, g, subject); err != nil {
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

// Suspend implements connector.Suspender (read, toggle if needed, verify).
func (t *Target) Suspend(ctx context.Context, a *identity.Account) error {
	return t.setSuspended(ctx, a, true, fmt.Sprintf("allthenticate: suspend %q", a.Email))
}

// Unsuspend implements connector.Suspender (read, toggle if needed, verify).
func (t *Target) Unsuspend(ctx context.Context, a *identity.Account) error {
	return t.setSuspended(ctx, a, false, fmt.Sprintf("allthenticate: unsuspend %q", a.Email))
}

// setSuspended makes the user's suspension want, toggling at most once:
// under the user's lock it reads the status, toggles only when it differs
// and can be told, and reads again to verify. While the field that shows a
// suspension is not known, every toggle is serialised and teaches it.
func (t *Target) setSuspended(ctx context.Context, a *identity.Account, want bool, subject string) error {
	emailID, _, err := t.ids(ctx, a, subject)
	if err != nil {
		return err
	}
	mu := t.lockFor(emailID)
	mu.Lock()
	defer mu.Unlock()
	k, err := t.knowledge(ctx)
	if err != nil {
		return err
	}
	if k.field() == "" || k.Probe != nil || (k.Configured != "" && k.From == "") {
		// Learning (or checking the configured field): one toggle at a
		// time, and what it shows is kept.
		t.learnMu.Lock()
		defer t.learnMu.Unlock()
		if k, err = t.knowledge(ctx); err != nil {
			return err
		}
	}
	if k.Broken != "" {
		return connector.Permanent(fmt.Errorf("%s: suspension toggles are refused: %s", subject, k.Broken))
	}
	var cur apiUser
	if k.Probe != nil {
		// A toggle made while learning lost its answer: its user's reading
		// now says whether it landed and what it changed.
		users, err := t.listAll(ctx, subject)
		if err != nil {
			return err
		}
		if k, err = t.settle(ctx, k, users); err != nil {
			return err
		}
		if k.Broken != "" {
			return connector.Permanent(fmt.Errorf("%s: suspension toggles are refused: %s", subject, k.Broken))
		}
		var ok bool
		if cur, ok = match(users, *a); !ok {
			return connector.NotFound(fmt.Errorf("%s: %q is not a user of the Allthenticate organisation", subject, a.Email))
		}
	} else if cur, err = t.find(ctx, *a, subject); err != nil {
		return err
	}
	setIDs(a, cur)
	is, known := t.status(k, cur)
	if !known {
		return connector.Skip("%s: %s, and which of them shows a suspension is not known yet (the document does not say; it is learnt from the first toggle of a user whom neither shows suspended, or set suspension_field): not toggling, since a wrong guess turns a suspension into a re-activation",
			subject, t.describe(cur))
	}
	if is == want {
		t.log.Debug("allthenticate suspension already as wanted: no toggle", zap.String("email", a.Email), zap.Bool("suspended", want))
		return nil
	}
	learning := k.field() == "" || (k.Configured != "" && k.From == "")
	if learning {
		// Keep the reading before the toggle: if its answer is lost, the
		// next attempt (in any process) learns from it.
		k.Probe = &probe{EmailID: cur.EmailID, Email: cur.Email, Before: t.reading(cur)}
		if err := t.keep(ctx, k); err != nil {
			return err
		}
	}
	if _, _, err := t.call(ctx, http.MethodPost, "/togglesuspension", []param{{"email_id", cur.EmailID}}, subject+": toggle", false); err != nil {
		return err
	}
	got, err := t.find(ctx, *a, subject+": verify")
	if err != nil {
		return connector.Uncertain(fmt.Errorf("%s: toggled, but the check that followed failed (the next attempt reads first): %w", subject, err))
	}
	if learning {
		k = t.learn(k, fmt.Sprintf("%q", a.Email), t.reading(cur), t.reading(got))
		if k.Broken == "" && k.Configured != "" {
			k.From = fmt.Sprintf("a toggle of %q changed %s as configured", a.Email, k.Configured)
		}
		if err := t.keep(ctx, k); err != nil {
			return err
		}
		if k.Broken != "" {
			return connector.Permanent(fmt.Errorf("%s: %s", subject, k.Broken))
		}
		connector.Note(ctx, "learnt from this toggle that %s shows a suspension", k.field())
	}
	if now, _ := t.status(k, got); now != want {
		k.Broken = fmt.Sprintf("after a successful toggle of %q, %s: suspension_field %q or suspended_value %q do not match this server",
			a.Email, t.describe(got), k.field(), t.s.SuspendedValue)
		if err := t.keep(ctx, k); err != nil {
			return err
		}
		return connector.Permanent(fmt.Errorf("%s: %s", subject, k.Broken))
	}
	return nil
}

// promote makes the guest g a full user through /promoteguest, whose
// email_id parameter is described as the user_id. Until the server has
// shown which id it reads, it sends the id that names no other guest under
// the other reading, checks who was promoted, and keeps what it learnt.
func (t *Target) promote(ctx context.Context, g apiUser, subject string) error {
	k, err := t.promoteReading(ctx)
	if err != nil {
		return err
	}
	send := func(id int) error {
		_, _, err := t.call(ctx, http.MethodPost, "/promoteguest", []param{{"email_id", id}}, subject+": promote guest", false)
		return err
	}
	switch k.Reads {
	case "email_id":
		return send(g.EmailID)
	case "user_id":
		return send(g.UserID)
	}
	if g.EmailID == g.UserID {
		return send(g.EmailID) // both readings name g
	}
	guests, err := t.listUsers(ctx, true, subject+": list guests")
	if err != nil {
		return err
	}
	other := func(byUserID bool, id int) (apiUser, bool) {
		for _, u := range guests {
			if u.EmailID == g.EmailID {
				continue
			}
			if (byUserID && u.UserID == id) || (!byUserID && u.EmailID == id) {
				return u, true
			}
		}
		return apiUser{}, false
	}
	reading, id, alt, altID := "email_id", g.EmailID, "user_id", g.UserID
	if o, clash := other(true, g.EmailID); clash {
		// Sent as an email_id, a server reading user_ids would promote o.
		if o2, clash2 := other(false, g.UserID); clash2 {
			return connector.Skip("%s: /promoteguest's email_id is described as the user_id, and which one the server reads is not known yet; sending email_id %d would promote %q if it reads user ids, sending user_id %d would promote %q if it reads email ids: not promoting anyone (it is learnt from a guest whose ids name no one else)",
				subject, g.EmailID, o.Email, g.UserID, o2.Email)
		}
		reading, id, alt, altID = "user_id", g.UserID, "email_id", g.EmailID
	}
	serr := send(id)
	if serr != nil && connector.KindOf(serr) != connector.KindPermanent && connector.KindOf(serr) != connector.KindNotFound {
		return serr
	}
	after, err := t.listUsers(ctx, true, subject+": verify promotion")
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(after, func(u apiUser) bool { return u.EmailID == g.EmailID }) {
		// g was promoted: the server reads the id sent.
		return t.keepPromote(ctx, promoteKnowledge{Reads: reading, From: fmt.Sprintf("sending %s %d promoted %q", reading, id, g.Email)})
	}
	// g is still a guest: the server reads the other id (the one sent
	// named no guest under that reading, so no one else was promoted).
	if err := t.keepPromote(ctx, promoteKnowledge{Reads: alt, From: fmt.Sprintf("sending %s %d did not promote %q (%v)", reading, id, g.Email, serr)}); err != nil {
		return err
	}
	return send(altID)
}

// SetRole implements connector.RoleSetter: POST /modifyrank.
func (t *Target) SetRole(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("allthenticate: set rank of %q", a.Email)
	r, ok := rank(a.Role)
	if !ok {
		return connector.Skip("%s: %q is not an Allthenticate rank (REGULAR, ADMIN, SUPER)", subject, a.Role)
	}
	if r == RankSuper && !t.s.AllowSuper {
		return connector.Skip("%s: granting SUPER needs allow_super: true in the target's config", subject)
	}
	cur := apiUser{EmailID: remoteInt(*a, RemoteEmailID), UserID: remoteInt(*a, RemoteUserID), guest: a.Remote[RemoteTag] == TagGuest}
	if cur.EmailID == 0 || cur.UserID == 0 || cur.guest {
		var err error
		if cur, err = t.find(ctx, *a, subject); err != nil {
			return err
		}
		setIDs(a, cur)
	}
	if cur.guest && a.Suspended {
		// Promoting raises what the account is; a suspended person gets
		// nothing more.
		return connector.Skip("%s: a guest has no rank, and a suspended guest is not promoted to a full user to get one", subject)
	}
	if cur.guest {
		// A guest has no rank: the rules give this person one, so they
		// become a full user first.
		if err := t.promote(ctx, cur, subject); err != nil {
			return err
		}
		a.Remote[RemoteTag] = "" // emptied: the engine merges Remote
		t.log.Info("allthenticate guest promoted to a full user", zap.String("email", a.Email))
	}
	_, _, err := t.call(ctx, http.MethodPost, "/modifyrank", []param{{"admin_user_id", cur.UserID}, {"rank", r}}, subject, true)
	return err
}

// Update implements connector.Updater: it replaces the computer usernames
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
		return connector.Skip("%s: %v", subject, err)
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

// Delete implements connector.Deleter: DELETE /user removes the user from the
// organisation.
func (t *Target) Delete(ctx context.Context, a *identity.Account) error {
	subject := fmt.Sprintf("allthenticate: delete %q", a.Email)
	emailID, _, err := t.ids(ctx, a, subject)
	if err != nil {
		return err
	}
	// DELETE /user also deletes the policies assigned only to this user:
	// name them in the decision. A failed read does not hold the removal.
	policies, perr := t.policies(ctx, emailID, subject)
	_, _, err = t.call(ctx, http.MethodDelete, "/user", []param{{"email_id", emailID}}, subject, true)
	if err != nil {
		return err
	}
	switch {
	case perr != nil:
		connector.Note(ctx, "DELETE /user also deletes the policies assigned only to this user; they could not be read first: %v", perr)
	case len(policies) == 0:
		connector.Note(ctx, "the user had no policies (DELETE /user deletes the policies assigned only to the user)")
	default:
		connector.Note(ctx, "DELETE /user also deleted those of the user's policies assigned to no one else; the user's policies were: %s", strings.Join(policies, ", "))
	}
	return nil
}

// policies reads the names of the user's policies (GET /user).
func (t *Target) policies(ctx context.Context, emailID int, subject string) ([]string, error) {
	b, _, err := t.call(ctx, http.MethodGet, "/user", []param{{"email_id", emailID}}, subject+": read policies", true)
	if err != nil {
		return nil, err
	}
	var detail struct {
		Policies []json.RawMessage `json:"policies"`
	}
	if err := json.Unmarshal(b, &detail); err != nil {
		return nil, fmt.Errorf("%s: decode policies: %w", subject, err)
	}
	var out []string
	for _, p := range detail.Policies {
		// The document shows [["test_policy"], ["asdf"]]; a plain string
		// is taken too.
		var one string
		var many []string
		switch {
		case json.Unmarshal(p, &one) == nil:
			out = append(out, one)
		case json.Unmarshal(p, &many) == nil:
			out = append(out, many...)
		}
	}
	return out, nil
}

// List implements connector.Lister: the organisation's full users and its
// guests (GET /multipleusers?user_tag=GUEST); a guest's Remote["tag"] is
// GUEST.
func (t *Target) List(ctx context.Context) ([]identity.Account, error) {
	users, err := t.listAll(ctx, "allthenticate: list")
	if err != nil {
		return nil, err
	}
	k, err := t.knowledge(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]identity.Account, 0, len(users))
	for _, u := range users {
		out = append(out, t.accountOf(k, u))
	}
	return out, nil
}

// Read implements connector.Reader: the user's entry (a full user or a
// guest) and (GET /user) its computer usernames and smartcards.
func (t *Target) Read(ctx context.Context, a identity.Account) (identity.Account, error) {
	subject := fmt.Sprintf("allthenticate: read %q", a.Email)
	u, err := t.find(ctx, a, subject)
	if err != nil {
		return identity.Account{}, err
	}
	k, err := t.knowledge(ctx)
	if err != nil {
		return identity.Account{}, err
	}
	got := t.accountOf(k, u)
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
		return identity.Account{}, connector.Retryable(fmt.Errorf("%s: decode: %w", subject, err))
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
