package filesrc

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// aliases are the usual names of each field, normalised, in order of
// preference. The first one present in the file is used.
var aliases = map[string][]string{
	"key":                  {"id", "employee_id", "employee_number", "employeeid", "employeenumber", "key"},
	"username":             {"username", "user_name", "login", "samaccountname"},
	"email":                {"email", "mail", "email_address", "emailaddress", "work_email"},
	"given_name":           {"given_name", "first_name", "firstname", "givenname"},
	"family_name":          {"family_name", "last_name", "lastname", "surname", "familyname"},
	"display_name":         {"display_name", "displayname", "full_name", "fullname", "name"},
	"active":               {"active", "enabled"},
	"status":               {"status", "employment_status", "employee_status"},
	"expires":              {"expires", "end_date", "enddate", "termination_date", "expiry", "expiry_date", "expiration_date", "valid_until"},
	"must_change_password": {"must_change_password", "mustchangepassword"},
	"groups":               {"groups", "memberof", "member_of"},
}

// columns is which column of the file holds each field ("" for none).
type columns map[string]string

// resolve picks the column of every field, honouring the settings'
// overrides; an override naming a column the file lacks is an error.
func (s *Source) resolve(f *file) (columns, error) {
	over := map[string]string{
		"key":                  s.s.Key,
		"username":             s.s.Fields.Username,
		"email":                s.s.Fields.Email,
		"given_name":           s.s.Fields.GivenName,
		"family_name":          s.s.Fields.FamilyName,
		"display_name":         s.s.Fields.DisplayName,
		"active":               s.s.Fields.Active,
		"status":               s.s.Fields.Status,
		"expires":              s.s.Fields.Expires,
		"must_change_password": s.s.Fields.MustChangePassword,
		"groups":               s.s.Fields.Groups,
	}
	setting := func(field string) string {
		if field == "key" {
			return "key"
		}
		return "fields." + field
	}
	what := "column"
	if s.s.Format == FormatJSON {
		what = "field"
	}
	cols := columns{}
	var missing []string
	for _, field := range slices.Sorted(maps.Keys(aliases)) {
		if o := strings.TrimSpace(over[field]); o == "-" {
			continue // explicitly none
		} else if o != "" {
			if _, ok := f.cols[norm(o)]; !ok {
				missing = append(missing, fmt.Sprintf("%s: %s %q is not in the file (it has %s)", setting(field), what, o, list(f.cols)))
				continue
			}
			cols[field] = norm(o)
			continue
		}
		for _, a := range aliases[field] {
			if _, ok := f.cols[a]; ok {
				cols[field] = a
				break
			}
		}
	}
	for i, a := range s.s.Attributes {
		if _, ok := f.cols[norm(a)]; !ok {
			missing = append(missing, fmt.Sprintf("attributes[%d]: %s %q is not in the file (it has %s)", i, what, a, list(f.cols)))
		}
	}
	if cols["key"] == "" && s.s.Key == "" {
		missing = append(missing, fmt.Sprintf("key: no key %s found (looked for %s; set key)", what, strings.Join(aliases["key"], ", ")))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: %s", f.path, strings.Join(missing, "; "))
	}
	return cols, nil
}

func list(cols map[string]string) string {
	names := make([]string, 0, len(cols))
	for _, v := range cols {
		names = append(names, fmt.Sprintf("%q", v))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "no columns"
	}
	return strings.Join(names, ", ")
}

// build turns parsed records into users and groups, resolving nested groups.
func (s *Source) build(f *file) ([]identity.User, []identity.Group, error) {
	cols, err := s.resolve(f)
	if err != nil {
		return nil, nil, err
	}
	var errs errList
	users := make([]identity.User, 0, len(f.users))
	from := make([]int, 0, len(f.users)) // users[i] is f.users[from[i]]
	byKey := map[string]int{}
	byName := map[string]int{}
	byEmail := map[string]int{}
	for ri, rec := range f.users {
		u, ok := s.user(f, rec, cols, &errs)
		if !ok {
			continue
		}
		dup := false
		if i, ok := byKey[u.Key]; ok {
			errs.add(rec.where(), s.nameOf(f, cols, "key"), "duplicate key %q (also at %s)", u.Key, f.users[from[i]].where())
			dup = true
		}
		// Two people with one email would be merged into one by the
		// engine's join (and a disable of one would disable both).
		email := strings.ToLower(u.Email)
		if i, ok := byEmail[email]; ok && email != "" && !dup {
			errs.add(rec.where(), s.nameOf(f, cols, "email"), "duplicate email %q (also at %s)", u.Email, f.users[from[i]].where())
			dup = true
		}
		name := strings.ToLower(u.Username)
		if i, ok := byName[name]; ok && !dup {
			errs.add(rec.where(), s.nameOf(f, cols, "username"), "duplicate username %q (also at %s)", u.Username, f.users[from[i]].where())
			dup = true
		}
		if dup {
			continue
		}
		byKey[u.Key] = len(users)
		byName[name] = len(users)
		if email != "" {
			byEmail[email] = len(users)
		}
		users = append(users, u)
		from = append(from, ri)
	}
	if err := errs.err(); err != nil {
		return nil, nil, err
	}
	groups, err := s.groups(f, users, byKey, byName)
	if err != nil {
		return nil, nil, err
	}
	for i := range users {
		users[i] = identity.Normalize(users[i])
	}
	return users, groups, nil
}

func (s *Source) nameOf(f *file, cols columns, field string) string {
	if n := cols[field]; n != "" {
		return f.cols[n]
	}
	return field
}

// user builds one user; problems go to errs.
func (s *Source) user(f *file, rec record, cols columns, errs *errList) (identity.User, bool) {
	ok := true
	str := func(field string) string {
		n := cols[field]
		if n == "" {
			return ""
		}
		switch v := rec.get(n).(type) {
		case nil:
			return ""
		case string:
			return strings.TrimSpace(v)
		case kind:
			errs.add(rec.where(), s.nameOf(f, cols, field), "must be a string, not %s", v)
		default:
			errs.add(rec.where(), s.nameOf(f, cols, field), "must be a string, not %s", describe(v))
		}
		ok = false
		return ""
	}
	u := identity.User{Source: s.name, Active: true}
	u.Key = str("key")
	if u.Key == "" && ok {
		errs.add(rec.where(), s.nameOf(f, cols, "key"), "the key is empty")
		ok = false
	}
	u.Username = str("username")
	u.Email = str("email")
	u.GivenName = str("given_name")
	u.FamilyName = str("family_name")
	u.DisplayName = str("display_name")
	if u.Username == "" {
		u.Username = u.Email
	}
	if u.Username == "" && ok {
		errs.add(rec.where(), s.nameOf(f, cols, "username"), "has neither a username nor an email")
		ok = false
	}
	var facts map[string]string
	setFact := func(k, v string) {
		if facts == nil {
			facts = make(map[string]string, 3)
		}
		facts[k] = v
	}
	for _, field := range []string{"active", "status"} {
		raw := str(field)
		if cols[field] == "" || !ok {
			continue
		}
		if raw == "" {
			if f.csv {
				errs.add(rec.where(), s.nameOf(f, cols, field), "is empty (want one of %s)", s.allowed())
				ok = false
			}
			continue // JSON: absent or null means active
		}
		active, known := s.active[strings.ToLower(raw)]
		if !known {
			errs.add(rec.where(), s.nameOf(f, cols, field), "unknown value %q (want one of %s)", raw, s.allowed())
			ok = false
			continue
		}
		fact := s.nameOf(f, cols, field) + "=" + raw
		if !active {
			u.Active = false
			setFact(identity.FactActive, fact)
		} else if _, set := facts[identity.FactActive]; !set {
			setFact(identity.FactActive, fact)
		}
	}
	if raw := str("expires"); raw != "" {
		t, err := s.parseDate(raw)
		if err != nil {
			errs.add(rec.where(), s.nameOf(f, cols, "expires"), "%v", err)
			ok = false
		} else {
			u.Expires = &t
			setFact(identity.FactExpires, s.nameOf(f, cols, "expires")+"="+raw)
		}
	}
	if raw := str("must_change_password"); raw != "" {
		b, known := parseBool(raw)
		if !known {
			errs.add(rec.where(), s.nameOf(f, cols, "must_change_password"), "unknown value %q (want true or false)", raw)
			ok = false
		} else if b {
			u.MustChangePassword = true
			setFact(identity.FactMustChangePassword, s.nameOf(f, cols, "must_change_password")+"="+raw)
		}
	}
	if n := cols["groups"]; n != "" {
		switch v := rec.get(n).(type) {
		case nil:
		case string:
			u.Groups = splitList(v, s.s.GroupsSeparator)
		case []string:
			for _, g := range v {
				if g = strings.TrimSpace(g); g != "" {
					u.Groups = append(u.Groups, g)
				}
			}
		default:
			errs.add(rec.where(), s.nameOf(f, cols, "groups"), "must be a list of group names, not %s", describe(v))
			ok = false
		}
	}
	var attrs map[string]string
	setAttr := func(k, v string) {
		if attrs == nil {
			attrs = make(map[string]string, len(s.s.Attributes))
		}
		attrs[k] = v
	}
	if v := rec.get("attributes"); v != nil && !f.csv {
		switch m := v.(type) {
		case map[string]string:
			for k, x := range m {
				setAttr(k, x)
			}
		default:
			errs.add(rec.where(), rec.attrName, "must be an object of strings, not %s", describe(v))
			ok = false
		}
	}
	for _, a := range s.s.Attributes {
		switch v := rec.get(norm(a)).(type) {
		case nil:
		case string:
			if v = strings.TrimSpace(v); v != "" {
				setAttr(a, v)
			}
		case []string:
			setAttr(a, strings.Join(v, s.s.GroupsSeparator))
		default:
			errs.add(rec.where(), a, "must be a string, not %s", describe(v))
			ok = false
		}
	}
	u.Attributes = attrs
	u.Facts = facts
	return u, ok
}

func describe(v any) string {
	switch x := v.(type) {
	case kind:
		return string(x)
	case []string:
		return "a list"
	case map[string]string:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func (s *Source) allowed() string {
	return strings.Join(s.s.ActiveValues, ", ") + " (active) or " + strings.Join(s.s.InactiveValues, ", ") + " (inactive)"
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "y", "1":
		return true, true
	case "false", "no", "n", "0", "":
		return false, true
	}
	return false, false
}

func splitList(s, sep string) []string {
	var out []string
	for _, p := range strings.Split(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseDate reads an expiry date with the configured layout (in the
// configured zone) or as RFC 3339.
func (s *Source) parseDate(raw string) (time.Time, error) {
	if t, err := time.ParseInLocation(s.s.DateFormat, raw, s.loc); err == nil {
		if s.s.ExpiresAt == EndOfDay && !hasClock(s.s.DateFormat) {
			t = t.AddDate(0, 0, 1).Add(-time.Second)
		}
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, raw); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("cannot read %q as a date (date_format %q, or RFC 3339)", raw, s.s.DateFormat)
}

// hasClock reports whether a Go layout holds a time of day.
func hasClock(layout string) bool {
	return strings.Contains(layout, "15") || strings.Contains(layout, "03") || strings.Contains(layout, "3:") || strings.Contains(layout, "Z07") || strings.Contains(layout, "-07")
}

// groups resolves group membership: direct groups from the users' groups
// field and the groups list's members, then every group that (transitively)
// contains those. It sets u.Groups and returns every group with its members
// by user key.
func (s *Source) groups(f *file, users []identity.User, byKey, byName map[string]int) ([]identity.Group, error) {
	byEmail := map[string]int{}
	for i, u := range users {
		if u.Email != "" {
			byEmail[strings.ToLower(u.Email)] = i
		}
	}
	var errs errList
	var unknown []string             // "group: member" not found among the users
	defined := map[string]string{}   // group name → where defined
	parents := map[string][]string{} // group → groups it is nested in
	known := map[string]bool{}
	for _, rec := range f.groups {
		name, ok := rec.get("name").(string)
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			errs.add(rec.where(), "name", "is required (a string)")
			continue
		}
		if prev, dup := defined[name]; dup {
			errs.add(rec.where(), "name", "duplicate group %q (also at %s)", name, prev)
			continue
		}
		defined[name] = rec.where()
		known[name] = true
		members, err := strList(rec.get("members"))
		if err != "" {
			errs.add(rec.where(), "members", "%s", err)
		}
		for _, m := range members {
			i, found := byKey[m]
			if !found {
				i, found = byName[strings.ToLower(m)]
			}
			if !found {
				i, found = byEmail[strings.ToLower(m)]
			}
			if !found {
				unknown = append(unknown, name+": "+m)
				continue
			}
			users[i].Groups = append(users[i].Groups, name)
		}
		nested, err := strList(rec.get("groups"))
		if err != "" {
			errs.add(rec.where(), "groups", "%s", err)
		}
		for _, child := range nested {
			parents[child] = append(parents[child], name)
			known[child] = true
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	if len(unknown) > 0 {
		s.log.Warn("filesrc: group members that are not users in the file are ignored",
			zap.String("source", s.name), zap.String("file", f.path), zap.Int("count", len(unknown)),
			zap.Strings("members", unknown[:min(len(unknown), 20)]))
	}
	if cyc := findCycle(parents); cyc != nil {
		s.log.Warn("filesrc: nested groups form a cycle; every group in it has the same members",
			zap.String("source", s.name), zap.String("file", f.path), zap.Strings("cycle", cyc))
	}
	members := map[string][]string{}
	anc := map[string][]string{} // group → itself and every group containing it
	for i := range users {
		var all []string
		for _, g := range users[i].Groups {
			a, ok := anc[g]
			if !ok {
				a = closure([]string{g}, parents)
				anc[g] = a
			}
			all = append(all, a...)
		}
		all = identity.SortedSet(all)
		users[i].Groups = all
		for _, g := range all {
			members[g] = append(members[g], users[i].Key)
			known[g] = true
		}
	}
	out := make([]identity.Group, 0, len(known))
	for _, name := range slices.Sorted(maps.Keys(known)) {
		m := members[name]
		sort.Strings(m)
		out = append(out, identity.Group{Key: name, Name: name, Members: m})
	}
	return out, nil
}

func strList(v any) ([]string, string) {
	switch x := v.(type) {
	case nil:
		return nil, ""
	case []string:
		var out []string
		for _, s := range x {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out, ""
	}
	return nil, "must be an array of strings, not " + describe(v)
}

// closure returns direct plus every group reachable through parents,
// sorted; cycles are harmless (each group is visited once).
func closure(direct []string, parents map[string][]string) []string {
	seen := map[string]bool{}
	queue := append([]string(nil), direct...)
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		if seen[g] {
			continue
		}
		seen[g] = true
		queue = append(queue, parents[g]...)
	}
	return slices.Sorted(maps.Keys(seen))
}

// findCycle returns one cycle of the nesting graph (first group repeated at
// the end), or nil.
func findCycle(parents map[string][]string) []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(g string) bool
	visit = func(g string) bool {
		color[g] = grey
		stack = append(stack, g)
		ps := append([]string(nil), parents[g]...)
		sort.Strings(ps)
		for _, p := range ps {
			switch color[p] {
			case grey:
				i := slices.Index(stack, p)
				found = append(append([]string(nil), stack[i:]...), p)
				return true
			case white:
				if visit(p) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[g] = black
		return false
	}
	for _, g := range slices.Sorted(maps.Keys(parents)) {
		if color[g] == white && visit(g) {
			return found
		}
	}
	return nil
}
