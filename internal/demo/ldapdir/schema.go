package ldapdir

import (
	"math/big"
	"strings"
	"time"
)

// syntax is how an attribute's values compare, after OpenLDAP's matching
// rules for the attributes the demo uses.
type syntax int

const (
	synString  syntax = iota // caseIgnoreMatch / caseIgnoreOrderingMatch (also UUIDs, booleans)
	synDN                    // distinguishedNameMatch, no ordering
	synNameUID               // uniqueMember: a DN with an optional #'bits'B suffix
	synInt                   // integerMatch / integerOrderingMatch
	synTime                  // generalizedTimeMatch / generalizedTimeOrderingMatch
	synOctet                 // octetStringMatch (userPassword): never matched by filters
)

// attrInfo is what the directory knows about one attribute type.
type attrInfo struct {
	name        string // canonical spelling, as returned
	syn         syntax
	operational bool // returned only for "+" or when asked by name
	computed    bool // derived by the directory; not settable
}

// knownAttrs describes the attribute types the directory treats
// specially; any other attribute is a case-insensitive user string.
// Keyed by lower-cased name. Read-only after construction.
func knownAttrs() map[string]attrInfo {
	m := map[string]attrInfo{}
	add := func(syn syntax, op, comp bool, names ...string) {
		for _, n := range names {
			m[strings.ToLower(n)] = attrInfo{name: n, syn: syn, operational: op, computed: comp}
		}
	}
	add(synString, false, false, "objectClass", "uid", "cn", "sn", "givenName", "displayName", "mail", "employeeNumber",
		"employeeType", "title", "departmentNumber", "ou", "o", "dc", "description", "telephoneNumber", "mobile", "homeDirectory",
		"loginShell", "gecos", "memberUid", "l", "preferredLanguage")
	add(synDN, false, false, "member", "owner", "manager", "seeAlso", "secretary")
	add(synNameUID, false, false, "uniqueMember")
	add(synInt, false, false, "uidNumber", "gidNumber", "shadowExpire", "shadowLastChange", "shadowMin", "shadowMax",
		"shadowWarning", "shadowInactive", "shadowFlag")
	add(synOctet, false, false, "userPassword")
	// Operational attributes an administrator may set (ppolicy).
	add(synTime, true, false, "pwdAccountLockedTime", "pwdChangedTime", "pwdFailureTime")
	add(synString, true, false, "pwdReset")
	add(synDN, true, false, "pwdPolicySubentry")
	// Operational attributes the directory maintains.
	add(synString, true, true, "entryUUID", "entryCSN", "structuralObjectClass", "hasSubordinates", "contextCSN",
		"supportedControl", "supportedExtension", "supportedFeatures", "supportedLDAPVersion", "supportedSASLMechanisms")
	add(synTime, true, true, "createTimestamp", "modifyTimestamp")
	add(synDN, true, true, "memberOf", "entryDN", "subschemaSubentry", "creatorsName", "modifiersName", "namingContexts")
	return m
}

// info returns what is known of attribute type name (any case).
func (d *Dir) info(name string) attrInfo {
	if ai, ok := d.schema[strings.ToLower(name)]; ok {
		return ai
	}
	return attrInfo{name: name, syn: synString}
}

// foldString is the caseIgnoreMatch form of a string: lower case,
// leading and trailing spaces removed, inner runs of spaces collapsed.
func foldString(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !strings.Contains(s, "  ") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// normValue is the comparable form of a value of syntax syn; ok is false
// when the value is not valid for the syntax (the match is Undefined).
type normValue struct {
	s string
	i *big.Int
	t time.Time
}

func normalize(syn syntax, v string) (normValue, bool) {
	switch syn {
	case synDN:
		n, err := normDN(v)
		return normValue{s: n}, err == nil
	case synNameUID:
		dn, uid, _ := strings.Cut(v, "#")
		n, err := normDN(dn)
		if uid != "" {
			n += "#" + uid
		}
		return normValue{s: n}, err == nil
	case synInt:
		i, ok := new(big.Int).SetString(strings.TrimSpace(v), 10)
		return normValue{i: i}, ok
	case synTime:
		t, err := parseGeneralizedTime(strings.TrimSpace(v))
		return normValue{t: t}, err == nil
	case synOctet:
		return normValue{s: v}, true
	}
	return normValue{s: foldString(v)}, true
}

// compare orders two normalised values; ok is false when the syntax has
// no ordering rule.
func compare(syn syntax, a, b normValue) (int, bool) {
	switch syn {
	case synInt:
		return a.i.Cmp(b.i), true
	case synTime:
		return a.t.Compare(b.t), true
	case synString:
		return strings.Compare(a.s, b.s), true
	}
	return 0, false
}

func equal(syn syntax, a, b normValue) bool {
	switch syn {
	case synInt:
		return a.i.Cmp(b.i) == 0
	case synTime:
		return a.t.Equal(b.t)
	}
	return a.s == b.s
}

// generalizedTime formats t as an LDAP GeneralizedTime (UTC, seconds).
func generalizedTime(t time.Time) string { return t.UTC().Format("20060102150405Z") }

// parseGeneralizedTime reads the GeneralizedTime forms OpenLDAP accepts:
// YYYYMMDDHH[MM[SS]][.fraction](Z|±HHMM).
func parseGeneralizedTime(s string) (time.Time, error) {
	for _, layout := range []string{"20060102150405Z0700", "20060102150405.999999999Z0700", "200601021504Z0700", "2006010215Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Parse("20060102150405.999999999Z0700", s)
}
