package wire

import (
	"errors"
	"fmt"
)

// BER tags used by LDAP (RFC 4511). Only single-byte tags occur.
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagEnumerated  = 0x0a
	tagSequence    = 0x30
	tagSet         = 0x31

	appBindRequest      = 0x60
	appBindResponse     = 0x61
	appUnbindRequest    = 0x42
	appSearchRequest    = 0x63
	appSearchEntry      = 0x64
	appSearchDone       = 0x65
	appSearchReference  = 0x73
	appAbandonRequest   = 0x50
	appExtendedRequest  = 0x77
	appExtendedResponse = 0x78
	appIntermediate     = 0x79

	ctxControls = 0xa0 // [0] Controls in LDAPMessage
)

var errTruncated = errors.New("wire: malformed BER: truncated")

// maxLength bounds any BER length read from the wire: nothing LDAP sends
// us is bigger than one message.
const maxLength = MaxMessage

// readLength decodes a BER length whose first octet is first and whose
// long-form octets, if any, are the next first&0x7f bytes of more. It
// returns the length and how many bytes of more it used. Lengths are
// definite only (LDAP forbids the indefinite form), at most 4 octets long,
// and never above maxLength, so they cannot overflow or go negative.
func readLength(first byte, more []byte) (l, used int, err error) {
	if first&0x80 == 0 {
		return int(first), 0, nil
	}
	n := int(first & 0x7f)
	if n == 0 {
		return 0, 0, errors.New("wire: malformed BER: indefinite length")
	}
	if n > 4 {
		return 0, 0, fmt.Errorf("wire: malformed BER: length of %d bytes", n)
	}
	if len(more) < n {
		return 0, 0, errTruncated
	}
	var v uint64
	for _, c := range more[:n] {
		v = v<<8 | uint64(c)
	}
	if v > maxLength {
		return 0, 0, fmt.Errorf("wire: malformed BER: length %d exceeds the %d byte limit", v, maxLength)
	}
	return int(v), n, nil
}

// tlv splits the first element off b: its tag, its content and what follows.
func tlv(b []byte) (tag byte, content, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errTruncated
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, fmt.Errorf("wire: malformed BER: multi-byte tag %#x", tag)
	}
	l, n, err := readLength(b[1], b[2:])
	if err != nil {
		return 0, nil, nil, err
	}
	b = b[2+n:]
	if l > len(b) {
		return 0, nil, nil, errTruncated
	}
	return tag, b[:l:l], b[l:], nil
}

// expect is tlv that checks the tag.
func expect(b []byte, want byte, what string) (content, rest []byte, err error) {
	tag, content, rest, err := tlv(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if tag != want {
		return nil, nil, fmt.Errorf("wire: malformed BER: %s: tag %#x, want %#x", what, tag, want)
	}
	return content, rest, nil
}

// parseInt decodes a BER INTEGER or ENUMERATED content (two's complement).
func parseInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 8 {
		return 0, fmt.Errorf("wire: malformed BER: integer of %d bytes", len(b))
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return v, nil
}

func appendLength(b []byte, l int) []byte {
	switch {
	case l < 0x80:
		return append(b, byte(l))
	case l < 0x100:
		return append(b, 0x81, byte(l))
	case l < 0x10000:
		return append(b, 0x82, byte(l>>8), byte(l))
	case l < 0x1000000:
		return append(b, 0x83, byte(l>>16), byte(l>>8), byte(l))
	default:
		return append(b, 0x84, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
	}
}

// tlvBytes returns tag, length and the concatenated parts.
func tlvBytes(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n+6)
	b = append(b, tag)
	b = appendLength(b, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func berString(tag byte, s string) []byte { return tlvBytes(tag, []byte(s)) }

func berInt(tag byte, v int64) []byte {
	// minimal two's complement
	var buf [8]byte
	n := 8
	for i := 7; i >= 0; i-- {
		buf[i] = byte(v)
		v >>= 8
	}
	start := 0
	for start < n-1 {
		if (buf[start] == 0 && buf[start+1]&0x80 == 0) || (buf[start] == 0xff && buf[start+1]&0x80 != 0) {
			start++
			continue
		}
		break
	}
	return tlvBytes(tag, buf[start:])
}

func berBool(v bool) []byte {
	if v {
		return []byte{tagBoolean, 1, 0xff}
	}
	return []byte{tagBoolean, 1, 0}
}
