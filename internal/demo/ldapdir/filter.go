package ldapdir

import (
	"errors"
	"fmt"
	"strings"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// tri is a filter's three-valued result (RFC 4511 4.5.1.7).
type tri int8

const (
	undefined tri = iota - 1
	isFalse
	isTrue
)

// filter is a compiled search filter.
type filter struct {
	op   int // ldap.FilterAnd ... ldap.FilterApproxMatch
	kids []*filter
	attr string
	info attrInfo
	val  normValue
	ok   bool // the assertion value is valid for the attribute's syntax
	// substrings, folded
	initial string
	any     []string
	final   string
}

// errExtensible is returned for extensible-match filters.
var errExtensible = errors.New("extensible match filters are not supported")

// compileFilter parses an RFC 4515 filter string into a filter.
func (d *Dir) compileFilter(s string) (*filter, error) {
	p, err := ldap.CompileFilter(s)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", s, err)
	}
	return d.fromPacket(p)
}

func (d *Dir) fromPacket(p *ber.Packet) (*filter, error) {
	f := &filter{op: int(p.Tag)}
	switch f.op {
	case ldap.FilterAnd, ldap.FilterOr, ldap.FilterNot:
		for _, c := range p.Children {
			k, err := d.fromPacket(c)
			if err != nil {
				return nil, err
			}
			f.kids = append(f.kids, k)
		}
		if f.op == ldap.FilterNot && len(f.kids) != 1 {
			return nil, errors.New("a not filter has one operand")
		}
	case ldap.FilterPresent:
		f.attr = p.Data.String()
		f.info = d.info(f.attr)
	case ldap.FilterEqualityMatch, ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual, ldap.FilterApproxMatch:
		if len(p.Children) != 2 {
			return nil, errors.New("malformed attribute value assertion")
		}
		f.attr = p.Children[0].Data.String()
		f.info = d.info(f.attr)
		f.val, f.ok = normalize(f.info.syn, p.Children[1].Data.String())
	case ldap.FilterSubstrings:
		if len(p.Children) != 2 {
			return nil, errors.New("malformed substrings filter")
		}
		f.attr = p.Children[0].Data.String()
		f.info = d.info(f.attr)
		f.ok = f.info.syn == synString
		for _, c := range p.Children[1].Children {
			v := strings.ToLower(c.Data.String())
			switch c.Tag {
			case ldap.FilterSubstringsInitial:
				f.initial = v
			case ldap.FilterSubstringsAny:
				f.any = append(f.any, v)
			case ldap.FilterSubstringsFinal:
				f.final = v
			}
		}
	case ldap.FilterExtensibleMatch:
		return nil, errExtensible
	default:
		return nil, fmt.Errorf("unknown filter choice %d", p.Tag)
	}
	return f, nil
}

// match evaluates f against the attribute values get returns.
func (f *filter) match(get func(name string) []string) tri {
	switch f.op {
	case ldap.FilterAnd:
		r := isTrue
		for _, k := range f.kids {
			switch k.match(get) {
			case isFalse:
				return isFalse
			case undefined:
				r = undefined
			}
		}
		return r
	case ldap.FilterOr:
		r := isFalse
		for _, k := range f.kids {
			switch k.match(get) {
			case isTrue:
				return isTrue
			case undefined:
				r = undefined
			}
		}
		return r
	case ldap.FilterNot:
		switch f.kids[0].match(get) {
		case isTrue:
			return isFalse
		case isFalse:
			return isTrue
		}
		return undefined
	case ldap.FilterPresent:
		if strings.EqualFold(f.attr, "objectClass") || len(get(f.attr)) > 0 {
			return isTrue
		}
		return isFalse
	case ldap.FilterEqualityMatch, ldap.FilterApproxMatch:
		if !f.ok {
			return undefined
		}
		for _, v := range get(f.attr) {
			if n, ok := normalize(f.info.syn, v); ok && equal(f.info.syn, n, f.val) {
				return isTrue
			}
		}
		return isFalse
	case ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual:
		if !f.ok {
			return undefined
		}
		if _, ordered := compare(f.info.syn, f.val, f.val); !ordered {
			return undefined
		}
		for _, v := range get(f.attr) {
			n, ok := normalize(f.info.syn, v)
			if !ok {
				continue
			}
			c, _ := compare(f.info.syn, n, f.val)
			if (f.op == ldap.FilterGreaterOrEqual && c >= 0) || (f.op == ldap.FilterLessOrEqual && c <= 0) {
				return isTrue
			}
		}
		return isFalse
	case ldap.FilterSubstrings:
		if !f.ok {
			return undefined
		}
		for _, v := range get(f.attr) {
			if f.substrings(foldString(v)) {
				return isTrue
			}
		}
		return isFalse
	}
	return undefined
}

func (f *filter) substrings(v string) bool {
	if !strings.HasPrefix(v, f.initial) {
		return false
	}
	v = v[len(f.initial):]
	for _, a := range f.any {
		i := strings.Index(v, a)
		if i < 0 {
			return false
		}
		v = v[i+len(a):]
	}
	return strings.HasSuffix(v, f.final)
}
