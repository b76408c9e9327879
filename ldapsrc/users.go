package ldapsrc

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/ldapsrc/internal/wire"
)

// Fields of a user entry a mapper reads, besides the extra attributes.
const (
	fKey = iota
	fUsername
	fEmail
	fGiven
	fFamily
	fDisplay
	fUAC            // AD userAccountControl
	fLockoutTime    // AD lockoutTime
	fAccountExpires // AD accountExpires
	fPwdLastSet     // AD pwdLastSet
	fPrimaryGroup   // AD primaryGroupID
	fLockedTime     // OpenLDAP ppolicy pwdAccountLockedTime
	fShadowExpire   // shadowExpire (days since 1970)
	fPwdReset       // OpenLDAP ppolicy pwdReset
	fIsDeleted      // AD isDeleted (incremental)
	fChanged        // AD whenChanged, else modifyTimestamp: when the entry last changed
	numFields
)

// Facts quoted in decisions.
const (
	factUACDisabled   = "userAccountControl ACCOUNTDISABLE set"
	factUACEnabled    = "userAccountControl ACCOUNTDISABLE not set"
	factLockedOut     = "lockoutTime set (locked out)"
	factPPLocked      = "pwdAccountLockedTime set"
	factPPUnlocked    = "pwdAccountLockedTime not set"
	factPwdLastSet0   = "pwdLastSet=0"
	factPwdResetTrue  = "pwdReset: TRUE"
	uacAccountDisable = 0x2
)

// mapper turns user entries into identity.Users. One per goroutine: it
// reuses its scratch space.
type mapper struct {
	source  string
	ad      bool
	lockout bool
	slots   map[string]int // lower-cased attribute name → slot
	fields  [numFields]int // field → slot (-1: not read)
	extra   []string       // extra attribute names, as configured
	extraAt []int          // their slots
	attrs   []string       // what the search asks for
	nslots  int
	vals    [][][]byte // slot → values of the current entry
	lower   []byte
	facts   map[factSet]map[string]string
}

func newMapper(source string, p profile, extra []string, lockout bool) *mapper {
	m := &mapper{source: source, ad: p.flavour == FlavourActiveDirectory, lockout: lockout, slots: map[string]int{},
		facts: map[factSet]map[string]string{}}
	slot := func(name string) int {
		if name == "" {
			return -1
		}
		k := strings.ToLower(name)
		if i, ok := m.slots[k]; ok {
			return i
		}
		m.slots[k] = m.nslots
		m.attrs = append(m.attrs, name)
		m.nslots++
		return m.nslots - 1
	}
	names := [numFields]string{fKey: p.m.Key, fUsername: p.m.Username, fEmail: p.m.Email, fGiven: p.m.GivenName,
		fFamily: p.m.FamilyName, fDisplay: p.m.DisplayName}
	if m.ad {
		names[fUAC], names[fLockoutTime], names[fAccountExpires], names[fPwdLastSet], names[fPrimaryGroup] =
			"userAccountControl", "lockoutTime", "accountExpires", "pwdLastSet", "primaryGroupID"
	} else {
		names[fLockedTime], names[fShadowExpire], names[fPwdReset] = "pwdAccountLockedTime", "shadowExpire", "pwdReset"
	}
	names[fChanged] = "modifyTimestamp"
	if m.ad {
		names[fChanged] = "whenChanged"
	}
	for f, n := range names {
		m.fields[f] = slot(n)
	}
	for _, e := range extra {
		m.extra = append(m.extra, e)
		m.extraAt = append(m.extraAt, slot(e))
	}
	m.vals = make([][][]byte, m.nslots)
	return m
}

// load indexes the entry's attributes by slot.
func (m *mapper) load(e *wire.Entry) {
	for i := range m.vals {
		m.vals[i] = nil
	}
	for i := range e.Attrs {
		a := &e.Attrs[i]
		m.lower = appendLower(m.lower[:0], a.Name)
		if s, ok := m.slots[string(m.lower)]; ok {
			m.vals[s] = a.Vals
		}
	}
}

func appendLower(dst, b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

func (m *mapper) first(f int) []byte {
	s := m.fields[f]
	if s < 0 || len(m.vals[s]) == 0 {
		return nil
	}
	return m.vals[s][0]
}

func (m *mapper) str(f int) string {
	b := m.first(f)
	if b == nil {
		return ""
	}
	return string(b)
}

// key formats the key attribute: objectGUID as a GUID string, binary
// values as hex, text as is.
func (m *mapper) key() string {
	b := m.first(fKey)
	if b == nil {
		return ""
	}
	return formatKey(m.vals[m.fields[fKey]][0], m.ad)
}

func formatKey(b []byte, ad bool) string {
	if ad && len(b) == 16 {
		return formatGUID(b)
	}
	if !utf8.Valid(b) {
		return hex.EncodeToString(b)
	}
	return string(b)
}

// formatGUID renders a Microsoft GUID (the first three fields are little
// endian): 00112233-4455-6677-8899-aabbccddeeff.
func formatGUID(b []byte) string {
	var g [16]byte
	g[0], g[1], g[2], g[3] = b[3], b[2], b[1], b[0]
	g[4], g[5] = b[5], b[4]
	g[6], g[7] = b[7], b[6]
	copy(g[8:], b[8:])
	var out [36]byte
	hex.Encode(out[0:8], g[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], g[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], g[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], g[8:10])
	out[23] = '-'
	hex.Encode(out[24:], g[10:])
	return string(out[:])
}

// guidBytes is the inverse of formatGUID.
func guidBytes(s string) ([]byte, error) {
	h := strings.ReplaceAll(s, "-", "")
	g, err := hex.DecodeString(h)
	if err != nil || len(g) != 16 {
		return nil, fmt.Errorf("invalid GUID %q", s)
	}
	return []byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]}, nil
}

// formatUUID renders the 16 raw bytes of an RFC 4533 syncUUID.
func formatUUID(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// formatSID renders a binary security identifier: S-1-5-21-....
func formatSID(b []byte) (string, bool) {
	if len(b) < 8 || int(b[1])*4+8 != len(b) {
		return "", false
	}
	var auth uint64
	for _, c := range b[2:8] {
		auth = auth<<8 | uint64(c)
	}
	s := "S-" + strconv.Itoa(int(b[0])) + "-" + strconv.FormatUint(auth, 10)
	for i := 0; i < int(b[1]); i++ {
		s += "-" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[8+4*i:])), 10)
	}
	return s, true
}

// sidRID is the last sub-authority of a binary SID (a group's RID).
func sidRID(b []byte) (uint32, bool) {
	if len(b) < 12 || int(b[1])*4+8 != len(b) {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[len(b)-4:]), true
}

// fileTime converts a Windows FILETIME (100 ns ticks since 1601) to a time.
func fileTime(v int64) time.Time {
	const epochDiff = 116444736000000000 // 1601 → 1970 in ticks
	return time.Unix(0, 0).UTC().Add(time.Duration(v-epochDiff) * 100)
}

// atoi parses a decimal integer without allocating.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

func dateFact(attr string, t time.Time) string {
	if t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return attr + " " + t.Format("2006-01-02")
	}
	return attr + " " + t.Format(time.RFC3339)
}

// user maps the loaded entry. It fails when the entry has no key.
func (m *mapper) user(e *wire.Entry) (identity.User, error) {
	m.load(e)
	u := identity.User{Source: m.source, Active: true}
	u.Key = m.key()
	if u.Key == "" {
		return u, fmt.Errorf("entry %q has no key attribute %q (is it readable by the bind DN?)", e.DN, m.attrs[m.fields[fKey]])
	}
	u.Username = m.str(fUsername)
	if b := m.first(fEmail); b != nil {
		m.lower = appendLower(m.lower[:0], b)
		u.Email = string(m.lower)
	}
	u.GivenName = m.str(fGiven)
	u.FamilyName = m.str(fFamily)
	u.DisplayName = m.str(fDisplay)
	if u.DisplayName == "" && (u.GivenName != "" || u.FamilyName != "") {
		u.DisplayName = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
	}
	var fs factSet
	if m.ad {
		m.adStatus(&u, &fs)
	} else {
		m.openLDAPStatus(&u, &fs)
	}
	u.Facts = m.factsMap(fs)
	if t, ok := generalizedTime(m.first(fChanged)); ok {
		u.Changed, u.ChangedFrom = t, m.attrs[m.fields[fChanged]]
	}
	if len(m.extra) > 0 {
		u.Attributes = make(map[string]string, len(m.extra))
		for i, name := range m.extra {
			vs := m.vals[m.extraAt[i]]
			if len(vs) == 0 {
				continue
			}
			u.Attributes[name] = joinValues(name, vs)
		}
	}
	return u, nil
}

// generalizedTime parses an LDAP GeneralizedTime in UTC
// ("20261208010203Z", AD's "20261208010203.0Z").
func generalizedTime(b []byte) (time.Time, bool) {
	if len(b) < 15 || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102150405", string(b[:14]))
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

func joinValues(name string, vs [][]byte) string {
	var sb strings.Builder
	for i, v := range vs {
		if i > 0 {
			sb.WriteByte(',')
		}
		switch {
		case strings.EqualFold(name, "objectGUID") && len(v) == 16:
			sb.WriteString(formatGUID(v))
		case strings.EqualFold(name, "objectSid"):
			if s, ok := formatSID(v); ok {
				sb.WriteString(s)
			} else {
				sb.WriteString(hex.EncodeToString(v))
			}
		case !utf8.Valid(v):
			sb.WriteString(hex.EncodeToString(v))
		default:
			sb.Write(v)
		}
	}
	return sb.String()
}

func (m *mapper) adStatus(u *identity.User, facts *factSet) {
	facts.active = factUACEnabled
	if v, ok := atoi(m.first(fUAC)); ok && v&uacAccountDisable != 0 {
		u.Active = false
		facts.active = factUACDisabled
	}
	if m.lockout && u.Active {
		if v, ok := atoi(m.first(fLockoutTime)); ok && v != 0 {
			u.Active = false
			facts.active = factLockedOut
		}
	}
	if v, ok := atoi(m.first(fAccountExpires)); ok && v != 0 && v != neverFileTime {
		t := fileTime(v)
		u.Expires = &t
		facts.expires = dateFact("accountExpires", t)
	}
	if v, ok := atoi(m.first(fPwdLastSet)); ok && v == 0 {
		u.MustChangePassword = true
		facts.mustChange = factPwdLastSet0
	}
}

func (m *mapper) openLDAPStatus(u *identity.User, facts *factSet) {
	facts.active = factPPUnlocked
	if m.first(fLockedTime) != nil {
		u.Active = false
		facts.active = factPPLocked
	}
	if v, ok := atoi(m.first(fShadowExpire)); ok && v >= 0 {
		t := time.Unix(v*86400, 0).UTC()
		u.Expires = &t
		facts.expires = "shadowExpire " + t.Format("2006-01-02")
	}
	if strings.EqualFold(string(m.first(fPwdReset)), "TRUE") {
		u.MustChangePassword = true
		facts.mustChange = factPwdResetTrue
	}
}

// factSet is the source facts behind a user's status fields.
type factSet struct{ active, expires, mustChange string }

// maxSharedFacts bounds the per-mapper cache of Facts maps.
const maxSharedFacts = 256

// factsMap returns the Facts map for fs. Users with the same facts share
// one map (most users have identical facts, and a map per user is a fifth
// of a pull's CPU time): Facts maps from this source are read-only.
func (m *mapper) factsMap(fs factSet) map[string]string {
	if f, ok := m.facts[fs]; ok {
		return f
	}
	f := make(map[string]string, 3)
	if fs.active != "" {
		f[identity.FactActive] = fs.active
	}
	if fs.expires != "" {
		f[identity.FactExpires] = fs.expires
	}
	if fs.mustChange != "" {
		f[identity.FactMustChangePassword] = fs.mustChange
	}
	if len(m.facts) < maxSharedFacts {
		m.facts[fs] = f
	}
	return f
}

// primaryGroup is the user's AD primaryGroupID (0 when absent).
func (m *mapper) primaryGroup() uint32 {
	v, ok := atoi(m.first(fPrimaryGroup))
	if !ok || v <= 0 {
		return 0
	}
	return uint32(v)
}
