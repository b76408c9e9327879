package identity

import (
	"maps"
	"slices"
	"sort"
	"strings"
)

// JoinKey picks the value users from different sources are matched on.
type JoinKey string

// Supported join keys.
const (
	JoinEmail    JoinKey = "email"
	JoinUsername JoinKey = "username"
	JoinKeyField JoinKey = "key"
)

// joinValue returns the case-folded join value of u, or "" when u lacks it.
func joinValue(u User, by JoinKey) string {
	switch by {
	case JoinUsername:
		return strings.ToLower(u.Username)
	case JoinKeyField:
		return u.Key
	default:
		if u.Email != "" {
			return strings.ToLower(u.Email)
		}
		return ""
	}
}

// RecordID names one record of one source in the link table: "source:key".
func RecordID(source, key string) string { return source + ":" + key }

// Conflict is a record that would join a person who already has a record of
// the same source (two records of one source sharing a join value), or whose
// join value matches several people. It is never merged: the record is left
// out of the run, and the engine reports it.
type Conflict struct {
	Record string // RecordID of the record left out
	With   []string
	Value  string // the shared join value
	// Names are the usernames of Record and of With's records, by RecordID.
	Names map[string]string
}

// Linked is the outcome of linking: the merged people, the links (existing
// and new) and the conflicts.
type Linked struct {
	// Users are the merged people; each User.Key is the person id.
	Users []User
	// Links is the link table after the call: every record linked before
	// and every record placed now (RecordID → person id). It may be the
	// map that was passed in: do not modify it.
	Links map[string]string
	// New are the links this call added (to be stored).
	New       map[string]string
	Conflicts []Conflict
}

// Link places every record of the snapshots (listed by precedence, first
// wins) into a person, using and extending the link table links
// (RecordID → person id):
//   - a record already linked stays with its person whatever its join value
//     now says: a person keeps one identity;
//   - an unlinked record joins the one person whose records share its join
//     value, unless that person already has a record of the same source (a
//     conflict: never a merge);
//   - otherwise it starts a new person whose id is its own key (or
//     "source:key" when that id is taken), assigned once.
//
// Each person's fields are merged as Merge does. Link is a pure function.
func Link(by JoinKey, links map[string]string, snaps ...*Snapshot) Linked {
	return LinkWith(by, links, nil, snaps...)
}

// LinkWith is Link with ghosts: linked records that the snapshots no longer
// carry but the previous read did (a record that moved from one source to
// another between two reads). A ghost makes no person, but its join value
// still leads to its person, so the record of another source that replaces
// it joins that person instead of starting a new one. A new record never
// joins a person who had a record of its own source that is gone: it is
// another object of that directory (a successor given the leaver's email).
func LinkWith(by JoinKey, links map[string]string, ghosts []User, snaps ...*Snapshot) Linked {
	type rec struct {
		u    User
		id   string
		prec int
	}
	out := Linked{New: map[string]string{}}
	placed := make(map[string]bool, len(links))
	taken := make(map[string]bool, len(links))
	for _, p := range links {
		taken[p] = true
	}
	n := 0
	for _, s := range snaps {
		if s != nil {
			n += len(s.Users)
		}
	}
	recs := make([]rec, 0, n)
	for i, s := range snaps {
		if s == nil {
			continue
		}
		for _, u := range s.Users {
			u = Normalize(u)
			if u.Source == "" {
				u.Source = s.Source
			}
			recs = append(recs, rec{u: u, id: RecordID(u.Source, u.Key), prec: i})
		}
	}
	members := make(map[string][]int, len(recs))
	byValue := make(map[string]string, len(recs)) // join value → person id
	multi := map[string][]string{}                // join values shared by several people
	var order []string
	place := func(i int, pid string) {
		r := &recs[i]
		if _, ok := members[pid]; !ok {
			order = append(order, pid)
		}
		members[pid] = append(members[pid], i)
		placed[r.id] = true
		jv := joinValue(r.u, by)
		if jv == "" {
			return
		}
		switch cur, ok := byValue[jv]; {
		case !ok:
			byValue[jv] = pid
		case cur != pid:
			ps := multi[jv]
			if len(ps) == 0 {
				ps = []string{cur}
			}
			if !slices.Contains(ps, pid) {
				ps = append(ps, pid)
			}
			multi[jv] = ps
		}
	}
	for i := range recs {
		if pid, ok := links[recs[i].id]; ok {
			place(i, pid)
		}
	}
	for _, g := range ghosts {
		g = Normalize(g)
		pid, ok := links[RecordID(g.Source, g.Key)]
		if !ok || placed[RecordID(g.Source, g.Key)] {
			continue
		}
		if jv := joinValue(g, by); jv != "" {
			if _, taken := byValue[jv]; !taken {
				byValue[jv] = pid
			}
		}
	}
	// hadSource tells whether a person has a linked record of a source that
	// the reads no longer carry (built on first use: new records are rare).
	var gone map[string]bool
	hadSource := func(pid, source string) bool {
		if gone == nil {
			gone = map[string]bool{}
			for id, p := range links {
				if i := strings.IndexByte(id, ':'); i > 0 && !placed[id] {
					gone[p+"\x00"+id[:i]] = true
				}
			}
		}
		return gone[pid+"\x00"+source]
	}
	byImmutable := immutableLinks(links, len(recs), func(i int) (User, string) { return recs[i].u, recs[i].id })
	for i := range recs {
		r := &recs[i]
		if _, ok := links[r.id]; ok {
			continue
		}
		if pid := immutablePerson(r.u, byImmutable); pid != "" && !slices.ContainsFunc(members[pid], func(m int) bool { return recs[m].u.Source == r.u.Source }) {
			// The record carries the immutable id of a linked record (its
			// externalId is an objectGUID the link table knows): the same
			// person, whatever the email says.
			place(i, pid)
			out.New[r.id] = pid
			continue
		}
		jv := joinValue(r.u, by)
		if pid, ok := byValue[jv]; jv != "" && ok && len(multi[jv]) <= 1 && hadSource(pid, r.u.Source) {
			// The person had a record of this source that is gone: a new
			// record there is another object of that directory (a
			// successor given the leaver's email), not the same person. It
			// starts a person of its own (invariant 9).
			jv = ""
		}
		if pid, ok := byValue[jv]; jv != "" && ok {
			if ps := multi[jv]; len(ps) > 1 {
				out.Conflicts = append(out.Conflicts, Conflict{Record: r.id, With: slices.Sorted(slices.Values(ps)), Value: jv,
					Names: map[string]string{r.id: r.u.Username}})
				continue
			}
			var same []string
			names := map[string]string{r.id: r.u.Username}
			for _, m := range members[pid] {
				if recs[m].u.Source == r.u.Source {
					same = append(same, recs[m].id)
					names[recs[m].id] = recs[m].u.Username
				}
			}
			if len(same) > 0 {
				out.Conflicts = append(out.Conflicts, Conflict{Record: r.id, With: same, Value: jv, Names: names})
				continue
			}
			place(i, pid)
			out.New[r.id] = pid
			continue
		}
		pid := r.u.Key
		if taken[pid] || members[pid] != nil {
			pid = r.id
		}
		taken[pid] = true
		place(i, pid)
		out.New[r.id] = pid
	}
	// The link table after this call: the one given, plus what it added
	// (the given map itself when nothing was added: no copy of a large
	// table on every run).
	out.Links = links
	if len(out.New) > 0 || links == nil {
		out.Links = make(map[string]string, len(links)+len(out.New))
		maps.Copy(out.Links, links)
		maps.Copy(out.Links, out.New)
	}
	sort.Strings(order)
	out.Users = make([]User, 0, len(order))
	for _, pid := range order {
		ms := members[pid]
		if len(ms) > 1 {
			sort.SliceStable(ms, func(i, j int) bool { return recs[ms[i]].prec < recs[ms[j]].prec })
		}
		u := recs[ms[0]].u
		for _, m := range ms[1:] {
			u = mergeInto(u, recs[m].u)
		}
		u.Key = pid
		out.Users = append(out.Users, u)
	}
	return out
}

// immutableLinks returns, for the immutable ids that unlinked records
// carry, the person whose linked record has that id as its key (one pass
// over the link table, and only when some new record carries one). An id
// two people's records share leads nowhere.
func immutableLinks(links map[string]string, n int, at func(int) (User, string)) map[string]string {
	want := map[string]string{}
	for i := range n {
		u, id := at(i)
		if _, linked := links[id]; linked {
			continue
		}
		for _, v := range u.ImmutableIDs() {
			want[v] = ""
		}
	}
	if len(want) == 0 {
		return nil
	}
	for rec, pid := range links {
		i := strings.IndexByte(rec, ':')
		if i < 0 {
			continue
		}
		switch cur, ok := want[rec[i+1:]]; {
		case !ok:
		case cur == "":
			want[rec[i+1:]] = pid
		case cur != pid:
			want[rec[i+1:]] = "\x00" // ambiguous
		}
	}
	return want
}

// immutablePerson returns the person one of u's immutable ids leads to, or "".
func immutablePerson(u User, by map[string]string) string {
	for _, v := range u.ImmutableIDs() {
		if pid := by[v]; pid != "" && pid != "\x00" {
			return pid
		}
	}
	return ""
}

// Merge combines snapshots, listed by precedence (first wins), into one user
// list without a link table: users with the same join value are merged (the
// first source's key and non-empty fields win). The engine uses Link; Merge
// is kept for tools that have no state.
func Merge(by JoinKey, snaps ...*Snapshot) []User {
	return Link(by, nil, snaps...).Users
}

func mergeInto(hi, lo User) User {
	fill := func(dst *string, src string) {
		if *dst == "" {
			*dst = src
		}
	}
	fill(&hi.Username, lo.Username)
	fill(&hi.Email, lo.Email)
	fill(&hi.GivenName, lo.GivenName)
	fill(&hi.FamilyName, lo.FamilyName)
	fill(&hi.DisplayName, lo.DisplayName)
	// The earliest expiry any source gives wins: access ends at the first
	// date any authority sets.
	if lo.Expires != nil && (hi.Expires == nil || lo.Expires.Before(*hi.Expires)) {
		t := *lo.Expires
		hi.Expires = &t
		hi.Facts = setFact(hi.Facts, FactExpires, lo.Source+": "+lo.Facts[FactExpires])
	}
	if hi.Active && !lo.Active {
		hi.Active = false
		hi.Facts = setFact(hi.Facts, FactActive, lo.Source+": "+lo.Facts[FactActive])
	}
	if !hi.MustChangePassword && lo.MustChangePassword {
		hi.MustChangePassword = true
		hi.Facts = setFact(hi.Facts, FactMustChangePassword, lo.Source+": "+lo.Facts[FactMustChangePassword])
	}
	hi.Groups = SortedSet(append(append([]string(nil), hi.Groups...), lo.Groups...))
	for k, v := range lo.Attributes {
		if hi.Attributes == nil {
			hi.Attributes = map[string]string{}
		}
		if _, ok := hi.Attributes[k]; !ok {
			hi.Attributes[k] = v
		}
	}
	return hi
}

func setFact(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = strings.TrimSuffix(v, ": ")
	return out
}
