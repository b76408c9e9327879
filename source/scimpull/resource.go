package scimpull

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
)

// schemaEnterprise is the enterprise User extension's URN.
const schemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// resource is the part of a SCIM User or Group the source maps.
type resource struct {
	ID         string
	ExternalID string
	Modified   time.Time
	// User
	UserName    string
	GivenName   string
	FamilyName  string
	DisplayName string
	// Active is nil when the provider does not send it.
	Active     *bool
	Email      string
	Attributes map[string]string
	// UserGroups are the read-only User.groups values (id → display).
	UserGroups map[string]string
	// Group
	Members []string
}

type wireRes struct {
	ID          string `json:"id"`
	ExternalID  string `json:"externalId"`
	UserName    string `json:"userName"`
	DisplayName string `json:"displayName"`
	Name        struct {
		GivenName  string `json:"givenName"`
		FamilyName string `json:"familyName"`
		Formatted  string `json:"formatted"`
	} `json:"name"`
	Active   json.RawMessage `json:"active"`
	Title    string          `json:"title"`
	UserType string          `json:"userType"`
	Emails   []struct {
		Value   string          `json:"value"`
		Type    string          `json:"type"`
		Primary json.RawMessage `json:"primary"`
	} `json:"emails"`
	Groups []struct {
		Value   string `json:"value"`
		Display string `json:"display"`
	} `json:"groups"`
	Members []struct {
		Value string `json:"value"`
	} `json:"members"`
	Meta struct {
		LastModified string `json:"lastModified"`
	} `json:"meta"`
	Enterprise *struct {
		EmployeeNumber string `json:"employeeNumber"`
		CostCenter     string `json:"costCenter"`
		Organization   string `json:"organization"`
		Division       string `json:"division"`
		Department     string `json:"department"`
		Manager        *struct {
			Value       string `json:"value"`
			DisplayName string `json:"displayName"`
		} `json:"manager"`
	} `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`
}

// parseResource decodes one resource of a list or read.
func parseResource(raw json.RawMessage) (resource, error) {
	var w wireRes
	if err := json.Unmarshal(raw, &w); err != nil {
		return resource{}, fmt.Errorf("resource is not SCIM JSON: %w", err)
	}
	if strings.TrimSpace(w.ID) == "" {
		return resource{}, fmt.Errorf("resource without an id")
	}
	r := resource{
		ID: w.ID, ExternalID: w.ExternalID, UserName: w.UserName, DisplayName: w.DisplayName,
		GivenName: w.Name.GivenName, FamilyName: w.Name.FamilyName,
	}
	if r.DisplayName == "" {
		r.DisplayName = w.Name.Formatted
	}
	if w.Meta.LastModified != "" {
		t, err := time.Parse(time.RFC3339Nano, w.Meta.LastModified)
		if err != nil {
			return resource{}, fmt.Errorf("%s: meta.lastModified %q: %w", w.ID, w.Meta.LastModified, err)
		}
		r.Modified = t
	}
	if len(w.Active) > 0 && string(w.Active) != "null" {
		a, err := parseBool(w.Active)
		if err != nil {
			return resource{}, fmt.Errorf("%s: active: %w", w.ID, err)
		}
		r.Active = &a
	}
	r.Email = pickEmail(w)
	attrs := map[string]string{}
	put := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" {
			attrs[k] = v
		}
	}
	put("externalId", w.ExternalID)
	put("title", w.Title)
	put("userType", w.UserType)
	if e := w.Enterprise; e != nil {
		put("employeeNumber", e.EmployeeNumber)
		put("costCenter", e.CostCenter)
		put("organization", e.Organization)
		put("division", e.Division)
		put("department", e.Department)
		if e.Manager != nil {
			put("manager", e.Manager.Value)
			put("managerDisplayName", e.Manager.DisplayName)
		}
	}
	if len(attrs) > 0 {
		r.Attributes = attrs
	}
	if len(w.Groups) > 0 {
		r.UserGroups = make(map[string]string, len(w.Groups))
		for _, g := range w.Groups {
			if g.Value != "" {
				r.UserGroups[g.Value] = g.Display
			}
		}
	}
	for _, m := range w.Members {
		if m.Value != "" {
			r.Members = append(r.Members, m.Value)
		}
	}
	return r, nil
}

// parseBool accepts JSON booleans and the strings Entra-style providers send.
func parseBool(raw json.RawMessage) (bool, error) {
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if v, err := strconv.ParseBool(strings.TrimSpace(s)); err == nil {
			return v, nil
		}
	}
	return false, fmt.Errorf("not a boolean: %s", raw)
}

// pickEmail chooses the primary email, else the work one, else the first.
func pickEmail(w wireRes) string {
	best, rank := "", 0
	for _, e := range w.Emails {
		r := 1
		if strings.EqualFold(e.Type, "work") {
			r = 2
		}
		if len(e.Primary) > 0 {
			if p, err := parseBool(e.Primary); err == nil && p {
				r = 3
			}
		}
		if e.Value != "" && r > rank {
			best, rank = e.Value, r
		}
	}
	return best
}

// index is what the source last read: users and groups by id.
type index struct {
	users  map[string]resource
	groups map[string]resource
}

func newIndex() *index {
	return &index{users: map[string]resource{}, groups: map[string]resource{}}
}

func (x *index) putUser(r resource)  { x.users[r.ID] = r }
func (x *index) putGroup(r resource) { x.groups[r.ID] = r }

// clone copies the maps (resources are values; their slices are not
// changed after parsing).
func (x *index) clone() *index {
	c := &index{users: make(map[string]resource, len(x.users)), groups: make(map[string]resource, len(x.groups))}
	for k, v := range x.users {
		c.users[k] = v
	}
	for k, v := range x.groups {
		c.groups[k] = v
	}
	return c
}

// memberships resolves every group's members transitively (a member whose
// value is a group's id is a nested group) and returns user id → sorted
// group names, and group id → sorted user ids.
func (x *index) memberships() (map[string][]string, map[string][]string) {
	groupUsers := make(map[string][]string, len(x.groups))
	var resolve func(id string, seen map[string]bool) []string
	resolve = func(id string, seen map[string]bool) []string {
		if m, ok := groupUsers[id]; ok {
			return m
		}
		seen[id] = true
		set := map[string]struct{}{}
		for _, m := range x.groups[id].Members {
			if _, isGroup := x.groups[m]; isGroup {
				if seen[m] {
					continue // a cycle: its members are reached already
				}
				for _, u := range resolve(m, seen) {
					set[u] = struct{}{}
				}
				continue
			}
			if _, isUser := x.users[m]; isUser {
				set[m] = struct{}{}
			}
		}
		out := make([]string, 0, len(set))
		for u := range set {
			out = append(out, u)
		}
		slices.Sort(out)
		groupUsers[id] = out
		return out
	}
	userGroups := map[string][]string{}
	for id, g := range x.groups {
		for _, u := range resolve(id, map[string]bool{}) {
			userGroups[u] = append(userGroups[u], groupName(g))
		}
	}
	return userGroups, groupUsers
}

// userGroupNames are the names of a user's User.groups (display, else id).
func userGroupNames(u resource) []string {
	var out []string
	for gid, d := range u.UserGroups {
		out = append(out, cmp.Or(d, gid))
	}
	return out
}

func groupName(g resource) string {
	if g.DisplayName != "" {
		return g.DisplayName
	}
	return g.ID
}

// snapshot maps the index to the canonical model.
func (x *index) snapshot(src, mode string) ([]identity.User, []identity.Group) {
	var userGroups, groupUsers map[string][]string
	var groups []identity.Group
	switch mode {
	case GroupsMembers:
		userGroups, groupUsers = x.memberships()
		groups = make([]identity.Group, 0, len(x.groups))
		for id, g := range x.groups {
			groups = append(groups, identity.Group{Key: id, Name: groupName(g), Members: groupUsers[id]})
		}
	case GroupsUserGroups:
		userGroups = map[string][]string{}
		byID := map[string]*identity.Group{}
		for uid, u := range x.users {
			userGroups[uid] = userGroupNames(u)
			for gid := range u.UserGroups {
				g := byID[gid]
				if g == nil {
					g = &identity.Group{Key: gid, Name: cmp.Or(u.UserGroups[gid], gid)}
					byID[gid] = g
				}
				g.Members = append(g.Members, uid)
			}
		}
		for _, g := range byID {
			slices.Sort(g.Members)
			groups = append(groups, *g)
		}
	}
	slices.SortFunc(groups, func(a, b identity.Group) int { return strings.Compare(a.Key, b.Key) })
	users := make([]identity.User, 0, len(x.users))
	for id, r := range x.users {
		users = append(users, toUser(src, r, userGroups[id]))
	}
	slices.SortFunc(users, func(a, b identity.User) int { return strings.Compare(a.Key, b.Key) })
	return users, groups
}

// toUser maps one SCIM User. A user whose provider sends no `active` is
// active: the provider said nothing that takes access away.
func toUser(src string, r resource, groups []string) identity.User {
	u := identity.User{
		Key: r.ID, Source: src, Username: r.UserName, Email: r.Email,
		GivenName: r.GivenName, FamilyName: r.FamilyName, DisplayName: r.DisplayName,
		Active: true, Groups: groups, Attributes: r.Attributes,
	}
	if r.Active != nil {
		u.Active = *r.Active
		u.Facts = map[string]string{identity.FactActive: "SCIM active " + strconv.FormatBool(*r.Active)}
	}
	return identity.Normalize(u)
}
