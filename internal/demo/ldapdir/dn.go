package ldapdir

import (
	"crypto/sha1" //nolint:gosec // a name-based UUID (RFC 9562 version 5), not a security use
	"fmt"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// normDN returns the normalised form of a DN used for comparisons:
// attribute types and values lower-cased, insignificant spaces removed,
// the attributes of a multi-valued RDN sorted. "" is the root DSE.
func normDN(dn string) (string, error) {
	if strings.TrimSpace(dn) == "" {
		return "", nil
	}
	d, err := parseDN(dn)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	for i, rdn := range d.RDNs {
		if i > 0 {
			sb.WriteByte(',')
		}
		parts := make([]string, 0, len(rdn.Attributes))
		for _, a := range rdn.Attributes {
			parts = append(parts, strings.ToLower(strings.TrimSpace(a.Type))+"="+escapeDNValue(foldString(a.Value)))
		}
		sort.Strings(parts)
		sb.WriteString(strings.Join(parts, "+"))
	}
	return sb.String(), nil
}

// mustNormDN is normDN for DNs this package builds itself.
func mustNormDN(dn string) string {
	n, err := normDN(dn)
	if err != nil {
		panic(err)
	}
	return n
}

// escapeDNValue escapes the characters that are special in a DN value.
func escapeDNValue(v string) string {
	if !strings.ContainsAny(v, `,+"\<>;=#`) {
		return v
	}
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case ',', '+', '"', '\\', '<', '>', ';', '=':
			sb.WriteByte('\\')
		case '#':
			if i == 0 {
				sb.WriteByte('\\')
			}
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// parentDN returns the normalised parent of a normalised DN ("" for a
// top-level entry).
func parentDN(ndn string) string {
	for i := 0; i < len(ndn); i++ {
		switch ndn[i] {
		case '\\':
			i++
		case ',':
			return ndn[i+1:]
		}
	}
	return ""
}

// under reports whether the normalised DN ndn is base or below it.
func under(ndn, base string) bool {
	if base == "" {
		return true
	}
	for p := ndn; p != ""; p = parentDN(p) {
		if p == base {
			return true
		}
	}
	return false
}

// uuidNamespace is the namespace of the name-based entryUUIDs (the RFC
// 9562 namespace for X.500 DNs).
const uuidNamespace = "\x6b\xa7\xb8\x14\x9d\xad\x11\xd1\x80\xb4\x00\xc0\x4f\xd4\x30\xc8"

// nameUUID is the version 5 UUID of a normalised DN: stable across runs,
// so a demo restarted over its old state finds the same keys.
func nameUUID(ndn string) string {
	h := sha1.New() //nolint:gosec // see import
	h.Write([]byte(uuidNamespace))
	h.Write([]byte(ndn))
	s := h.Sum(nil)
	s[6] = s[6]&0x0f | 0x50
	s[8] = s[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}

// parseDN parses a DN, with the error naming it.
func parseDN(dn string) (*ldap.DN, error) {
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return nil, fmt.Errorf("invalid DN %q: %w", dn, err)
	}
	return d, nil
}
