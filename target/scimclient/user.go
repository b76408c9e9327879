package scimclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/target"
	"go.uber.org/zap"
)

// op is one PATCH operation. The same list is applied locally to a fetched
// resource when the provider needs PUT.
type op struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

// patchBody is a PatchOp message.
type patchBody struct {
	Schemas    []string `json:"schemas"`
	Operations []op     `json:"Operations"`
}

func subjectOf(action string, a *identity.Account) string {
	who := a.Username
	if who == "" {
		who = a.Key
	}
	return fmt.Sprintf("scimclient: %s %q", action, who)
}

// matchValue is the value users are looked up by.
func (t *Target) matchValue(a identity.Account) string {
	if t.s.MatchBy == "externalId" {
		return a.Key
	}
	return a.Username
}

// findUser looks a user up by the match attribute; ok is false when none.
func (t *Target) findUser(ctx context.Context, subject string, a identity.Account) (map[string]any, bool, error) {
	v := t.matchValue(a)
	if v == "" {
		return nil, false, nil
	}
	return t.findOne(ctx, subject, "/Users", t.s.MatchBy, v)
}

// findOne returns the first resource whose attr equals value.
func (t *Target) findOne(ctx context.Context, subject, path, attr, value string) (map[string]any, bool, error) {
	if err := t.discover(ctx); err != nil {
		return nil, false, err
	}
	q := url.Values{"filter": {eqFilter(attr, value)}}
	if path == "/Groups" {
		q.Set("excludedAttributes", "members")
	}
	var lr listResponse
	if _, err := t.send(ctx, subject, req{method: http.MethodGet, path: path, query: q}, &lr); err != nil {
		return nil, false, err
	}
	for _, raw := range lr.Resources {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, false, target.Permanent(t.wrap(subject, fmt.Errorf("decode resource: %w", err)))
		}
		// Some providers ignore filters they do not support: check.
		if attrEquals(m, attr, value) {
			return m, true, nil
		}
	}
	return nil, false, nil
}

func attrEquals(m map[string]any, attr, value string) bool {
	v := str(get(m, attr))
	if attr == "externalId" || attr == "id" {
		return v == value
	}
	return strings.EqualFold(v, value)
}

// userID returns the account's SCIM id, from Remote or by lookup (then
// stored in a.Remote). A missing user is a NotFound error.
func (t *Target) userID(ctx context.Context, subject string, a *identity.Account) (string, error) {
	if id := a.Remote["id"]; id != "" {
		return id, nil
	}
	m, ok, err := t.findUser(ctx, subject, *a)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", target.NotFound(fmt.Errorf("%s: no such user (%s %q)", t.secrets.Scrub(subject), t.s.MatchBy, t.matchValue(*a)))
	}
	setRemote(a, str(get(m, "id")))
	return a.Remote["id"], nil
}

// inheritRemote fills a.Remote["id"] from the cached account, or, when the
// cache has no id either, by looking the user up under its previous match
// value (a rename changes the userName dirsync would look for).
func (t *Target) inheritRemote(ctx context.Context, subject string, before identity.Account, a *identity.Account) error {
	if a.Remote["id"] != "" {
		return nil
	}
	if id := before.Remote["id"]; id != "" {
		setRemote(a, id)
		return nil
	}
	if t.matchValue(before) == "" || t.matchValue(before) == t.matchValue(*a) {
		return nil
	}
	m, ok, err := t.findUser(ctx, subject, before)
	if err != nil || !ok {
		return err
	}
	setRemote(a, str(get(m, "id")))
	return nil
}

func setRemote(a *identity.Account, id string) {
	if a.Remote == nil {
		a.Remote = map[string]string{}
	}
	a.Remote["id"] = id
}

// onUser runs fn with the account's id; when a cached id turns out stale
// (404), it looks the user up once more and retries with the new id.
func (t *Target) onUser(ctx context.Context, subject string, a *identity.Account, fn func(id string) error) error {
	if err := t.discover(ctx); err != nil {
		return err
	}
	cached := a.Remote["id"] != ""
	id, err := t.userID(ctx, subject, a)
	if err != nil {
		return err
	}
	err = fn(id)
	if !cached || statusOf(err) != http.StatusNotFound {
		return err
	}
	m, ok, ferr := t.findUser(ctx, subject, *a)
	if ferr != nil {
		return ferr
	}
	if !ok || str(get(m, "id")) == id {
		return err
	}
	nid := str(get(m, "id"))
	t.log.Info("scim user id changed; using the one found by lookup", zap.String("user", a.Username), zap.String("id", nid))
	setRemote(a, nid)
	return fn(nid)
}

// modify applies ops to a user: one PATCH, or GET + local apply + PUT.
func (t *Target) modify(ctx context.Context, subject, path string, ops []op) error {
	if len(ops) == 0 {
		return nil
	}
	if t.usePatch() {
		_, err := t.send(ctx, subject, req{method: http.MethodPatch, path: path, body: patchBody{Schemas: []string{schemaPatchOp}, Operations: ops}}, nil)
		if err == nil || !t.patchUnsupported(err) {
			return err
		}
	}
	var cur map[string]any
	if _, err := t.send(ctx, subject, req{method: http.MethodGet, path: path}, &cur); err != nil {
		return err
	}
	for _, o := range ops {
		applyLocal(cur, o)
	}
	for _, k := range []string{"meta", "groups"} {
		delete(cur, keyOf(cur, k))
	}
	_, err := t.send(ctx, subject, req{method: http.MethodPut, path: path, body: cur}, nil)
	return err
}

// applyLocal applies one op (of the forms this package generates: attr,
// attr.sub, urn:...:attr[.sub], members[value eq "x"]) to a resource.
func applyLocal(res map[string]any, o op) {
	container := res
	p := o.Path
	if strings.HasPrefix(strings.ToLower(p), "urn:") {
		i := strings.LastIndex(p, ":")
		schema := p[:i]
		p = p[i+1:]
		k := keyOf(res, schema)
		c := obj(res[k])
		if c == nil {
			if o.Op == "remove" {
				return
			}
			c = map[string]any{}
			res[k] = c
			addSchema(res, schema)
		}
		container = c
	}
	if name, val, ok := memberFilter(p); ok {
		k := keyOf(container, name)
		var kept []any
		for _, e := range arr(container[k]) {
			if str(get(obj(e), "value")) == val {
				continue
			}
			kept = append(kept, e)
		}
		container[k] = append([]any{}, kept...)
		return
	}
	if first, rest, ok := strings.Cut(p, "."); ok {
		k := keyOf(container, first)
		c := obj(container[k])
		if c == nil {
			if o.Op == "remove" {
				return
			}
			c = map[string]any{}
			container[k] = c
		}
		container, p = c, rest
	}
	k := keyOf(container, p)
	switch o.Op {
	case "remove":
		delete(container, k)
	case "add":
		if cur, ok := container[k].([]any); ok {
			for _, v := range arr(o.Value) {
				vv := str(get(obj(v), "value"))
				if !slices.ContainsFunc(cur, func(e any) bool { return str(get(obj(e), "value")) == vv }) {
					cur = append(cur, v)
				}
			}
			container[k] = cur
			return
		}
		container[k] = o.Value
	default:
		container[k] = o.Value
	}
}

// memberFilter parses `name[value eq "x"]`.
func memberFilter(p string) (name, value string, ok bool) {
	name, rest, ok := strings.Cut(p, `[value eq `)
	if !ok || !strings.HasSuffix(rest, "]") {
		return "", "", false
	}
	if err := json.Unmarshal([]byte(strings.TrimSuffix(rest, "]")), &value); err != nil {
		return "", "", false
	}
	return name, value, true
}

func addSchema(res map[string]any, schema string) {
	k := keyOf(res, "schemas")
	list := arr(res[k])
	for _, s := range list {
		if strings.EqualFold(str(s), schema) {
			return
		}
	}
	res[k] = append(list, schema)
}

// --- building resources ---

// profileOps returns the operations that turn before's profile into a's.
// With all, every managed attribute is written (adoption, or a diff that
// found nothing although the engine saw a change).
func (t *Target) profileOps(ctx context.Context, before, a identity.Account, all bool) []op {
	var ops []op
	set := func(path, old, cur string, value any) {
		switch {
		case cur == "" && old != "" && !all:
			ops = append(ops, op{Op: "remove", Path: path})
		case cur == "":
		case all || cur != old:
			ops = append(ops, op{Op: "replace", Path: path, Value: value})
		}
	}
	set("userName", before.Username, a.Username, a.Username)
	set("name.givenName", before.GivenName, a.GivenName, a.GivenName)
	set("name.familyName", before.FamilyName, a.FamilyName, a.FamilyName)
	set("displayName", before.DisplayName, a.DisplayName, a.DisplayName)
	set("emails", before.Email, a.Email, emailsValue(a.Email))
	for _, path := range t.paths {
		name := t.attrs[path]
		old, cur := before.Attributes[name], a.Attributes[name]
		var value any = cur
		if t.isManager(path) && cur != "" && (all || cur != old) {
			mid := t.managerID(ctx, cur)
			if mid == "" {
				continue
			}
			value = map[string]any{"value": mid}
		}
		set(path, old, cur, value)
	}
	return ops
}

func emailsValue(email string) []any {
	return []any{map[string]any{"value": email, "type": "work", "primary": true}}
}

func (t *Target) isManager(path string) bool {
	return strings.EqualFold(path, SchemaEnterprise+":manager")
}

// managerID resolves a manager's userName to their SCIM id; "" when not
// found (the manager attribute is then left unset).
func (t *Target) managerID(ctx context.Context, userName string) string {
	m, ok, err := t.findOne(ctx, "scimclient: find manager", "/Users", "userName", userName)
	if err != nil || !ok {
		t.log.Warn("manager not found in the provider; manager left unset", zap.String("manager", userName), zap.Error(err))
		return ""
	}
	return str(get(m, "id"))
}

// userSchemas lists the schemas of a user resource we write.
func (t *Target) userSchemas(withEnterprise bool) []string {
	s := []string{SchemaUser}
	if withEnterprise {
		s = append(s, SchemaEnterprise)
	}
	for _, x := range t.s.UserSchemaExtensions {
		if !slices.ContainsFunc(s, func(y string) bool { return strings.EqualFold(x, y) }) {
			s = append(s, x)
		}
	}
	return s
}

// newUser builds the POST body for a.
func (t *Target) newUser(ctx context.Context, a identity.Account) map[string]any {
	res := map[string]any{"userName": a.Username, "active": true}
	if a.Key != "" {
		res["externalId"] = a.Key
	}
	name := map[string]any{}
	if a.GivenName != "" {
		name["givenName"] = a.GivenName
	}
	if a.FamilyName != "" {
		name["familyName"] = a.FamilyName
	}
	if len(name) > 0 {
		res["name"] = name
	}
	if a.DisplayName != "" {
		res["displayName"] = a.DisplayName
	}
	if a.Email != "" {
		res["emails"] = emailsValue(a.Email)
	}
	for _, o := range t.profileOps(ctx, identity.Account{}, a, false) {
		if strings.HasPrefix(strings.ToLower(o.Path), "urn:") {
			applyLocal(res, o)
		}
	}
	_, ent := res[SchemaEnterprise]
	schemas := t.userSchemas(ent)
	for k := range res {
		if strings.HasPrefix(strings.ToLower(k), "urn:") && !slices.ContainsFunc(schemas, func(y string) bool { return strings.EqualFold(k, y) }) {
			schemas = append(schemas, k)
		}
	}
	anySchemas := make([]any, len(schemas))
	for i, s := range schemas {
		anySchemas[i] = s
	}
	res["schemas"] = anySchemas
	return res
}

// --- actions ---

// Create implements target.Creator. An existing user with the same match
// value (found before creating, or reported by a 409) is adopted: its id is
// stored in a.Remote["id"] and its profile set to a's, active.
func (t *Target) Create(ctx context.Context, a *identity.Account) error {
	subject := subjectOf("create", a)
	if err := t.discover(ctx); err != nil {
		return err
	}
	existing, ok, err := t.findUser(ctx, subject, *a)
	if err != nil {
		return err
	}
	if ok {
		return t.adopt(ctx, subject, a, existing, "found by "+t.s.MatchBy)
	}
	var created map[string]any
	_, err = t.send(ctx, subject, req{method: http.MethodPost, path: "/Users", body: t.newUser(ctx, *a)}, &created)
	if statusOf(err) == http.StatusConflict {
		existing, ok, ferr := t.findUser(ctx, subject, *a)
		if ferr != nil {
			return ferr
		}
		if !ok && t.s.MatchBy != "userName" {
			existing, ok, ferr = t.findOne(ctx, subject, "/Users", "userName", a.Username)
			if ferr != nil {
				return ferr
			}
		}
		if !ok {
			return err // a conflict on another attribute: permanent
		}
		return t.adopt(ctx, subject, a, existing, "create answered 409")
	}
	if err != nil {
		return err
	}
	id := str(get(created, "id"))
	if id == "" {
		m, ok, ferr := t.findUser(ctx, subject, *a)
		if ferr != nil || !ok {
			return target.Uncertain(fmt.Errorf("%s: the provider returned no id and the user cannot be found", subject))
		}
		id = str(get(m, "id"))
	}
	setRemote(a, id)
	return nil
}

func (t *Target) adopt(ctx context.Context, subject string, a *identity.Account, existing map[string]any, why string) error {
	id := str(get(existing, "id"))
	if id == "" {
		return target.Permanent(fmt.Errorf("%s: the existing user has no id", subject))
	}
	t.log.Info("adopting existing scim user", zap.String("user", a.Username), zap.String("id", id), zap.String("why", why))
	setRemote(a, id)
	cur := t.toAccount(existing, nil, nil)
	ops := t.profileOps(ctx, cur, *a, true)
	if b, _ := get(existing, "active").(bool); !b {
		ops = append(ops, op{Op: "replace", Path: "active", Value: true})
	}
	return t.modify(ctx, subject, "/Users/"+url.PathEscape(id), ops)
}

// Update implements target.Updater: it writes the profile fields that
// differ between before and a (all of them when none seems to differ).
func (t *Target) Update(ctx context.Context, before identity.Account, a *identity.Account) error {
	subject := subjectOf("update", a)
	if err := t.inheritRemote(ctx, subject, before, a); err != nil {
		return err
	}
	return t.onUser(ctx, subject, a, func(id string) error {
		ops := t.profileOps(ctx, before, *a, false)
		if len(ops) == 0 {
			ops = t.profileOps(ctx, before, *a, true)
		}
		return t.modify(ctx, subject, "/Users/"+url.PathEscape(id), ops)
	})
}

// Suspend implements target.Suspender (active=false).
func (t *Target) Suspend(ctx context.Context, a *identity.Account) error {
	return t.setActive(ctx, "suspend", a, false)
}

// Unsuspend implements target.Suspender (active=true).
func (t *Target) Unsuspend(ctx context.Context, a *identity.Account) error {
	return t.setActive(ctx, "unsuspend", a, true)
}

func (t *Target) setActive(ctx context.Context, action string, a *identity.Account, active bool) error {
	subject := subjectOf(action, a)
	return t.onUser(ctx, subject, a, func(id string) error {
		return t.modify(ctx, subject, "/Users/"+url.PathEscape(id), []op{{Op: "replace", Path: "active", Value: active}})
	})
}

// setRole writes a.Role to the configured role attribute.
func (t *Target) setRole(ctx context.Context, a *identity.Account) error {
	subject := subjectOf("set role", a)
	return t.onUser(ctx, subject, a, func(id string) error {
		var o op
		switch {
		case a.Role == "":
			o = op{Op: "remove", Path: t.s.RoleAttribute}
		case strings.EqualFold(t.s.RoleAttribute, "roles"):
			o = op{Op: "replace", Path: t.s.RoleAttribute, Value: []any{map[string]any{"value": a.Role, "primary": true}}}
		default:
			o = op{Op: "replace", Path: t.s.RoleAttribute, Value: a.Role}
		}
		return t.modify(ctx, subject, "/Users/"+url.PathEscape(id), []op{o})
	})
}

// Delete implements target.Deleter.
func (t *Target) Delete(ctx context.Context, a *identity.Account) error {
	subject := subjectOf("delete", a)
	return t.onUser(ctx, subject, a, func(id string) error {
		_, err := t.send(ctx, subject, req{method: http.MethodDelete, path: "/Users/" + url.PathEscape(id)}, nil)
		return err
	})
}

// Read implements target.Reader: by Remote["id"], else by the match
// attribute.
func (t *Target) Read(ctx context.Context, a identity.Account) (identity.Account, error) {
	subject := subjectOf("read", &a)
	if err := t.discover(ctx); err != nil {
		return identity.Account{}, err
	}
	var res map[string]any
	if id := a.Remote["id"]; id != "" {
		_, err := t.send(ctx, subject, req{method: http.MethodGet, path: "/Users/" + url.PathEscape(id)}, &res)
		if err != nil && statusOf(err) != http.StatusNotFound {
			return identity.Account{}, err
		}
	}
	if res == nil {
		m, ok, err := t.findUser(ctx, subject, a)
		if err != nil {
			return identity.Account{}, err
		}
		if !ok {
			return identity.Account{}, target.NotFound(fmt.Errorf("%s: no such user", subject))
		}
		res = m
	}
	var groups []string
	if *t.s.ManageGroups {
		var err error
		if groups, err = t.userGroups(ctx, subject, res); err != nil {
			return identity.Account{}, err
		}
	}
	var managers map[string]string
	if mid := str(lookupPath(res, SchemaEnterprise+":manager.value")); mid != "" {
		managers = t.managerNames(ctx, subject, mid)
	}
	out := t.toAccount(res, groups, managers)
	if out.Key == "" {
		out.Key = a.Key
	}
	return out, nil
}

// managerNames returns {id: userName} for one manager id, or nil.
func (t *Target) managerNames(ctx context.Context, subject, id string) map[string]string {
	var m map[string]any
	if _, err := t.send(ctx, subject+": manager", req{method: http.MethodGet, path: "/Users/" + url.PathEscape(id)}, &m); err != nil {
		return nil
	}
	return map[string]string{id: str(get(m, "userName"))}
}

// List implements target.Lister: every user, paged, with group membership
// when groups are managed.
func (t *Target) List(ctx context.Context) ([]identity.Account, error) {
	const subject = "scimclient: list users"
	var users []map[string]any
	names := map[string]string{}
	err := t.list(ctx, subject, "/Users", nil, func(m map[string]any) error {
		users = append(users, m)
		names[str(get(m, "id"))] = str(get(m, "userName"))
		return nil
	})
	if err != nil {
		return nil, err
	}
	var member map[string][]string
	if *t.s.ManageGroups {
		if member, err = t.memberships(ctx, subject); err != nil {
			return nil, err
		}
	}
	out := make([]identity.Account, 0, len(users))
	for _, m := range users {
		out = append(out, t.toAccount(m, member[str(get(m, "id"))], names))
	}
	return out, nil
}

// toAccount converts a user resource. groups are the user's group names;
// managers maps user ids to userNames (for the manager attribute).
func (t *Target) toAccount(m map[string]any, groups []string, managers map[string]string) identity.Account {
	a := identity.Account{
		Username:    str(get(m, "userName")),
		DisplayName: str(get(m, "displayName")),
		Exists:      true,
		Remote:      map[string]string{"id": str(get(m, "id"))},
		Groups:      identity.SortedSet(groups),
	}
	if t.s.MatchBy == "externalId" {
		a.Key = str(get(m, "externalId"))
	}
	name := obj(get(m, "name"))
	a.GivenName, a.FamilyName = str(get(name, "givenName")), str(get(name, "familyName"))
	a.Email = primaryValue(arr(get(m, "emails")), "work")
	if act, ok := get(m, "active").(bool); ok {
		a.Suspended = !act
	} else if s, ok := get(m, "active").(string); ok { // "False" from lenient providers
		a.Suspended = strings.EqualFold(s, "false")
	}
	if ra := t.s.RoleAttribute; ra != "" {
		if strings.EqualFold(ra, "roles") {
			a.Role = primaryValue(arr(get(m, ra)), "")
		} else {
			a.Role = str(lookupPath(m, ra))
		}
	}
	for _, path := range t.paths {
		v := lookupPath(m, path)
		s := str(v)
		if t.isManager(path) {
			id := str(get(obj(v), "value"))
			if s = managers[id]; s == "" {
				s = id
			}
		}
		if s != "" {
			if a.Attributes == nil {
				a.Attributes = map[string]string{}
			}
			a.Attributes[t.attrs[path]] = s
		}
	}
	return a
}

// lookupPath reads attr, attr.sub or urn:...:attr[.sub] from a resource.
func lookupPath(m map[string]any, p string) any {
	if strings.HasPrefix(strings.ToLower(p), "urn:") {
		i := strings.LastIndex(p, ":")
		m, p = obj(get(m, p[:i])), p[i+1:]
	}
	if first, rest, ok := strings.Cut(p, "."); ok {
		return get(obj(get(m, first)), rest)
	}
	return get(m, p)
}

// primaryValue picks the primary value of a multi-valued attribute, else
// the first of type typ, else the first.
func primaryValue(vals []any, typ string) string {
	var first, typed string
	for _, v := range vals {
		m := obj(v)
		val := str(get(m, "value"))
		if val == "" {
			continue
		}
		if p, _ := get(m, "primary").(bool); p {
			return val
		}
		if first == "" {
			first = val
		}
		if typed == "" && typ != "" && strings.EqualFold(str(get(m, "type")), typ) {
			typed = val
		}
	}
	if typed != "" {
		return typed
	}
	return first
}
