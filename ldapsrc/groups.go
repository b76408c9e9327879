package ldapsrc

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/ldapsrc/internal/wire"
	"github.com/go-ldap/ldap/v3"
)

// adRangeWindow is how many values of a multi-valued attribute are asked
// for at once on Active Directory (its default MaxValRange is 1500).
const adRangeWindow = 1500

// groupRec is one group as read, before membership is resolved.
type groupRec struct {
	dn     string // normalized
	rawDN  string // as returned, kept for range retrieval and in_chain
	key    string
	name   string
	users  []int32  // direct user members (indexes into reader.users)
	others []string // member DNs (users, nested groups, or out of scope)
	uids   []string // posixGroup memberUid values
	rid    uint32   // AD: the RID of objectSid (for primaryGroupID)
	next   int      // AD: next range start (0: complete)
}

// groupAttrs lists what a group search asks for.
func (r *reader) groupAttrs(memberRange int) []string {
	attrs := []string{r.src.s.Groups.NameAttribute, r.p.m.Key}
	if r.p.flavour == FlavourActiveDirectory {
		return append(attrs, rangeAttr("member", memberRange), "objectSid")
	}
	return append(attrs, "member", "uniqueMember", "memberUid")
}

func rangeAttr(name string, low int) string {
	return fmt.Sprintf("%s;range=%d-%d", name, low, low+adRangeWindow-1)
}

// parseRange reads "member;range=LOW-HIGH" and returns HIGH+1, or 0 when
// HIGH is "*" (the last window). ok is false for other attribute names.
func parseRange(name []byte, attr string) (next int, ok bool) {
	prefix := attr + ";range="
	if len(name) <= len(prefix) || !strings.EqualFold(string(name[:len(prefix)]), prefix) {
		return 0, false
	}
	_, high, found := bytes.Cut(name[len(prefix):], []byte("-"))
	if !found {
		return 0, false
	}
	if string(high) == "*" {
		return 0, true
	}
	h, err := strconv.Atoi(string(high))
	if err != nil {
		return 0, false
	}
	return h + 1, true
}

// addMembers keeps member DNs, normalized, for resolve (users are still
// being read).
func (r *reader) addMembers(g *groupRec, vals [][]byte, buf []byte, unique bool) []byte {
	for _, v := range vals {
		if unique {
			v = stripUniqueID(v)
		}
		buf = appendNormDN(buf[:0], v)
		g.others = append(g.others, string(buf))
	}
	return buf
}

// readGroups reads every group and its direct members.
func (r *reader) readGroups(ctx context.Context, c *wire.Conn) error {
	ad := r.p.flavour == FlavourActiveDirectory
	nameAttr := r.src.s.Groups.NameAttribute
	var buf []byte
	onEntry := func(g *groupRec) func(e *wire.Entry) error {
		return func(e *wire.Entry) error {
			if g == nil {
				g = &groupRec{}
				buf = appendNormDN(buf[:0], e.DN)
				g.dn = string(buf)
				g.rawDN = string(e.DN)
				g.name = string(e.First(nameAttr))
				if k := e.First(r.p.m.Key); k != nil {
					g.key = formatKey(k, ad)
				}
				if g.key == "" {
					return fmt.Errorf("group %q has no key attribute %q", e.DN, r.p.m.Key)
				}
				if sid := e.First("objectSid"); sid != nil {
					g.rid, _ = sidRID(sid)
				}
				r.groups = append(r.groups, g)
				defer func() { g = nil }()
			}
			g.next = 0
			for i := range e.Attrs {
				a := &e.Attrs[i]
				switch {
				case equalFoldBytes(a.Name, "member"):
					buf = r.addMembers(g, a.Vals, buf, false)
				case equalFoldBytes(a.Name, "uniqueMember"):
					buf = r.addMembers(g, a.Vals, buf, true)
				case equalFoldBytes(a.Name, "memberUid"):
					for _, v := range a.Vals {
						g.uids = append(g.uids, string(v))
					}
				default:
					if next, ok := parseRange(a.Name, "member"); ok {
						buf = r.addMembers(g, a.Vals, buf, false)
						g.next = next
					}
				}
			}
			return nil
		}
	}
	req := wire.SearchRequest{BaseDN: r.p.groupBase, Scope: wire.Scope(r.p.groupScope), Filter: r.p.groupFilter, Attributes: r.groupAttrs(0)}
	if err := r.paged(ctx, c, "groups", req, r.src.s.Groups.PageSize, onEntry(nil)); err != nil {
		return err
	}
	// Active Directory range retrieval: fetch the rest of big groups.
	for _, g := range r.groups {
		for g.next > 0 {
			low := g.next
			req := wire.SearchRequest{BaseDN: g.rawDN, Scope: wire.ScopeBase, Filter: "(objectClass=*)", Attributes: []string{rangeAttr("member", low)}}
			seen := false
			h := onEntry(g)
			_, err := c.Search(ctx, &req, wire.Handlers{Entry: func(e *wire.Entry) error { seen = true; return h(e) }, Reference: r.references()})
			if err != nil {
				return fmt.Errorf("groups: members of %q from %d: %w", g.rawDN, low, err)
			}
			if !seen {
				return fmt.Errorf("groups: members of %q from %d: the group disappeared during the read", g.rawDN, low)
			}
			if g.next != 0 && g.next <= low {
				return fmt.Errorf("groups: members of %q: range retrieval did not advance past %d", g.rawDN, low)
			}
		}
	}
	return nil
}

func equalFoldBytes(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

// resolve turns direct memberships into transitive ones and fills
// User.Groups and the snapshot's groups.
func (r *reader) resolve(ctx context.Context, c *wire.Conn) error {
	byDN := make(map[string]int32, len(r.groups))
	for i, g := range r.groups {
		byDN[g.dn] = int32(i)
	}
	// Edges to nested groups; memberUid to users by username.
	subs := make([][]int32, len(r.groups))
	var byName map[string]int32
	for i, g := range r.groups {
		for _, d := range g.others {
			if u, ok := r.byDN[d]; ok {
				g.users = append(g.users, u)
			} else if j, ok := byDN[d]; ok && int(j) != i {
				subs[i] = append(subs[i], j)
			}
		}
		g.others = nil
		if len(g.uids) > 0 {
			if byName == nil {
				byName = make(map[string]int32, len(r.users))
				for k, u := range r.users {
					byName[u.Username] = int32(k)
				}
			}
			for _, uid := range g.uids {
				if k, ok := byName[uid]; ok {
					g.users = append(g.users, k)
				}
			}
			g.uids = nil
		}
	}
	// AD primary groups (primaryGroupID is not in the group's member list).
	if len(r.pgids) == len(r.users) {
		byRID := map[uint32]int32{}
		for i, g := range r.groups {
			if g.rid != 0 {
				byRID[g.rid] = int32(i)
			}
		}
		for k, rid := range r.pgids {
			if gi, ok := byRID[rid]; ok && rid != 0 {
				r.groups[gi].users = append(r.groups[gi].users, int32(k))
			}
		}
	}
	members := make([][]int32, len(r.groups))
	switch r.src.s.Groups.Nested {
	case nestedInChain:
		keys := make(map[string]int32, len(r.users))
		for i, u := range r.users {
			keys[u.Key] = int32(i)
		}
		for i, g := range r.groups {
			ms, err := r.inChain(ctx, c, g, keys)
			if err != nil {
				return err
			}
			members[i] = ms
		}
	case nestedNone:
		for i, g := range r.groups {
			members[i] = dedupe(g.users, len(r.users))
		}
	default:
		// Client side: the users of every group reachable through nested
		// groups. The visited marks make cycles harmless.
		visited := make([]int32, len(r.groups))
		mark := make([]int32, len(r.users))
		var stack []int32
		for i := range r.groups {
			stamp := int32(i + 1)
			stack = append(stack[:0], int32(i))
			visited[i] = stamp
			var ms []int32
			for len(stack) > 0 {
				g := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				for _, u := range r.groups[g].users {
					if mark[u] != stamp {
						mark[u] = stamp
						ms = append(ms, u)
					}
				}
				for _, sg := range subs[g] {
					if visited[sg] != stamp {
						visited[sg] = stamp
						stack = append(stack, sg)
					}
				}
			}
			members[i] = ms
		}
	}
	r.snapGroups = make([]identity.Group, len(r.groups))
	counts := make([]int32, len(r.users))
	for _, ms := range members {
		for _, u := range ms {
			counts[u]++
		}
	}
	for i := range r.users {
		if counts[i] > 0 {
			r.users[i].Groups = make([]string, 0, counts[i])
		}
	}
	for i, g := range r.groups {
		keys := make([]string, len(members[i]))
		for j, u := range members[i] {
			keys[j] = r.users[u].Key
			r.users[u].Groups = append(r.users[u].Groups, g.name)
		}
		r.snapGroups[i] = identity.Group{Key: g.key, Name: g.name, Members: keys}
	}
	for i := range r.users {
		r.users[i].Groups = identity.SortedSet(r.users[i].Groups)
	}
	return nil
}

func dedupe(in []int32, n int) []int32 {
	seen := make(map[int32]struct{}, len(in))
	out := in[:0:0]
	for _, v := range in {
		if _, ok := seen[v]; !ok {
			seen[v] = struct{}{}
			out = append(out, v)
		}
	}
	_ = n
	return out
}

// inChain asks Active Directory for a group's transitive user members.
func (r *reader) inChain(ctx context.Context, c *wire.Conn, g *groupRec, keys map[string]int32) ([]int32, error) {
	filter := "(&" + r.p.userFilter + "(memberOf:" + oidInChain + ":=" + ldap.EscapeFilter(g.rawDN) + "))"
	req := wire.SearchRequest{BaseDN: r.p.userBase, Scope: wire.Scope(r.p.userScope), Filter: filter, Attributes: []string{r.p.m.Key}}
	var out []int32
	err := r.paged(ctx, c, "groups", req, r.src.s.PageSize, func(e *wire.Entry) error {
		k := e.First(r.p.m.Key)
		if k == nil {
			return nil
		}
		if i, ok := keys[formatKey(k, true)]; ok {
			out = append(out, i)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("members of %q (in chain): %w", g.rawDN, err)
	}
	return out, nil
}
