package identity

import (
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
	// Links maps every placed record (RecordID) to its person id.
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
	type rec struct {
		u    User
		id   string
		prec int
	}
	out := Linked{Links: make(map[string]string, len(links)), New: map[string]string{}}
	taken := make(map[string]bool, len(links))
	for _, p := range links {
		taken[p] = true
	}
	var recs []rec
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
		out.Links[r.id] = pid
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
	for i := range recs {
		r := &recs[i]
		if _, ok := links[r.id]; ok {
			continue
		}
		jv := joinValue(r.u, by)
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
	sort.Strings(order)
	out.Users = make([]User, 0, len(order))
	for _, pid := range order {
		ms := members[pid]
		sort.SliceStable(ms, func(i, j int) bool { return recs[ms[i]].prec < recs[ms[j]].prec })
		u := recs[ms[0]].u
		for _, m := range ms[1:] {
			u = mergeInto(u, recs[m].u)
		}
		u.Key = pid
		out.Users = append(out.Users, u)
	}
	return out
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
