package wire

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

// SearchRequest is one LDAP search.
type SearchRequest struct {
	BaseDN     string
	Scope      Scope
	Filter     string // RFC 4515; values inside must already be escaped
	Attributes []string
	SizeLimit  int
	TimeLimit  int // seconds, enforced by the server
	Controls   []Control
	// Persist leaves the read deadline off: the search runs until the
	// server ends it or ctx is cancelled (syncrepl refreshAndPersist).
	Persist bool
}

// Handlers receive a search's results as they arrive. Nil handlers ignore
// their kind of result. An error returned by a handler abandons the search
// and is returned by Search.
type Handlers struct {
	// Entry is called for each SearchResultEntry; e is reused afterwards.
	Entry func(e *Entry) error
	// Reference is called for each SearchResultReference (continuation
	// references). Without a handler, a reference fails the search: a
	// reader that ignores referrals silently would return partial results.
	Reference func(urls []string) error
	// Intermediate is called for IntermediateResponse messages (RFC 4533
	// syncInfo); value aliases the receive buffer.
	Intermediate func(oid string, value []byte) error
}

// Done is the end of a search: its controls (values copied).
type Done struct {
	Controls []Control
}

// Control returns the control with that OID, or nil.
func (d *Done) Control(oid string) *Control {
	for i := range d.Controls {
		if d.Controls[i].OID == oid {
			return &d.Controls[i]
		}
	}
	return nil
}

// ErrReference is returned for a continuation reference nobody handles.
type ErrReference struct{ URLs []string }

func (e *ErrReference) Error() string {
	return fmt.Sprintf("search: the server returned a referral to %v, which is not followed", e.URLs)
}

// Search runs one search and streams its results to h. It returns when the
// server sends SearchResultDone, a handler fails, the connection fails, or
// ctx ends. A non-success result code is a *ResultError.
func (c *Conn) Search(ctx context.Context, req *SearchRequest, h Handlers) (*Done, error) {
	op, err := encodeSearch(req)
	if err != nil {
		return nil, err
	}
	id := c.nextID()
	if err := c.send(ctx, id, op, req.Controls); err != nil {
		return nil, err
	}
	disarm := c.deadline(ctx, req.Persist)
	defer disarm()
	for {
		mid, op, content, controls, err := c.readMessage()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if mid != int64(id) {
			if mid == 0 {
				return nil, c.unsolicited(op, content)
			}
			continue // a late answer to an abandoned operation
		}
		switch op {
		case appSearchEntry:
			if h.Entry == nil {
				continue
			}
			e := &c.entry
			if err := e.parse(content, controls); err != nil {
				return nil, c.malformed(req, err)
			}
			if err := h.Entry(e); err != nil {
				c.abandon(id)
				return nil, err
			}
		case appSearchReference:
			var urls []string
			b := content
			for len(b) > 0 {
				var u []byte
				if u, b, err = expect(b, tagOctetString, "reference"); err != nil {
					return nil, c.malformed(req, err)
				}
				urls = append(urls, string(u))
			}
			if h.Reference == nil {
				c.abandon(id)
				return nil, &ErrReference{URLs: urls}
			}
			if err := h.Reference(urls); err != nil {
				c.abandon(id)
				return nil, err
			}
		case appIntermediate:
			if h.Intermediate == nil {
				continue
			}
			var oid string
			var value []byte
			b := content
			for len(b) > 0 {
				tag, v, r, err := tlv(b)
				if err != nil {
					return nil, c.malformed(req, err)
				}
				b = r
				switch tag {
				case 0x80:
					oid = string(v)
				case 0x81:
					value = v
				}
			}
			if err := h.Intermediate(oid, value); err != nil {
				c.abandon(id)
				return nil, err
			}
		case appSearchDone:
			d := &Done{}
			if controls != nil {
				cs, err := parseControls(nil, controls)
				if err != nil {
					return nil, c.malformed(req, err)
				}
				for _, ct := range cs {
					if ct.Value != nil {
						ct.Value = append([]byte{}, ct.Value...)
					}
					d.Controls = append(d.Controls, ct)
				}
			}
			err := parseResult("search "+req.BaseDN, content)
			var re *ResultError
			if err != nil && !errors.As(err, &re) {
				return nil, c.malformed(req, err)
			}
			return d, err
		default:
			return nil, c.malformed(req, fmt.Errorf("unexpected response tag %#x", op))
		}
	}
}

// malformed marks the connection broken after a message it cannot read:
// the server does not speak LDAP as we understand it, and a redial is the
// only way on.
func (c *Conn) malformed(req *SearchRequest, err error) error {
	c.broken = err
	return &NetError{Op: "search " + req.BaseDN, Err: err}
}

// parse decodes a SearchResultEntry's content into e, reusing its slices.
func (e *Entry) parse(b, controls []byte) error {
	dn, rest, err := expect(b, tagOctetString, "entry dn")
	if err != nil {
		return err
	}
	e.DN = dn
	attrs, _, err := expect(rest, tagSequence, "entry attributes")
	if err != nil {
		return err
	}
	e.Attrs = e.Attrs[:0]
	e.vals = e.vals[:0]
	e.spans = e.spans[:0]
	for len(attrs) > 0 {
		var pa []byte
		if pa, attrs, err = expect(attrs, tagSequence, "attribute"); err != nil {
			return err
		}
		name, vs, err := expect(pa, tagOctetString, "attribute type")
		if err != nil {
			return err
		}
		setContent, _, err := expect(vs, tagSet, "attribute values")
		if err != nil {
			return err
		}
		start := len(e.vals)
		for len(setContent) > 0 {
			var v []byte
			if v, setContent, err = expect(setContent, tagOctetString, "attribute value"); err != nil {
				return err
			}
			e.vals = append(e.vals, v)
		}
		e.Attrs = append(e.Attrs, Attr{Name: name})
		e.spans = append(e.spans, start, len(e.vals))
	}
	for i := range e.Attrs {
		s, t := e.spans[2*i], e.spans[2*i+1]
		e.Attrs[i].Vals = e.vals[s:t:t]
	}
	e.Controls = e.Controls[:0]
	if controls != nil {
		if e.Controls, err = parseControls(e.Controls, controls); err != nil {
			return err
		}
	}
	return nil
}

// encodeSearch builds a SearchRequest protocol op.
func encodeSearch(req *SearchRequest) ([]byte, error) {
	filter := req.Filter
	if filter == "" {
		filter = "(objectClass=*)"
	}
	fp, err := ldap.CompileFilter(filter)
	if err != nil {
		return nil, fmt.Errorf("search filter %q: %w", filter, err)
	}
	var attrs [][]byte
	for _, a := range req.Attributes {
		attrs = append(attrs, berString(tagOctetString, a))
	}
	return tlvBytes(appSearchRequest,
		berString(tagOctetString, req.BaseDN),
		berInt(tagEnumerated, int64(req.Scope)),
		berInt(tagEnumerated, 0), // never dereference aliases
		berInt(tagInteger, int64(req.SizeLimit)),
		berInt(tagInteger, int64(req.TimeLimit)),
		berBool(false),
		fp.Bytes(),
		tlvBytes(tagSequence, attrs...),
	), nil
}
