package identity

import "strings"

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

// Merge combines snapshots, listed by precedence (first wins), into one user
// list. Users with the same join value are merged: the first source's
// non-empty fields win, groups are united, attributes filled in from lower
// sources. A user without a join value is kept as is. A user inactive in any
// source that carries them is inactive: a disable anywhere must win.
func Merge(by JoinKey, snaps ...*Snapshot) []User {
	var out []User
	idx := make(map[string]int)
	for _, s := range snaps {
		if s == nil {
			continue
		}
		for _, u := range s.Users {
			u = Normalize(u)
			if u.Source == "" {
				u.Source = s.Source
			}
			jv := joinValue(u, by)
			if jv == "" {
				out = append(out, u)
				continue
			}
			i, ok := idx[jv]
			if !ok {
				idx[jv] = len(out)
				out = append(out, u)
				continue
			}
			out[i] = mergeInto(out[i], u)
		}
	}
	return out
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
	if hi.Expires == nil && lo.Expires != nil {
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
