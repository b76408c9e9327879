// Package wire is a small LDAPv3 client for reading directories fast: dial
// (ldap://, ldaps://, StartTLS), simple bind, and searches whose entries are
// decoded straight from the received bytes into a reused Entry, without a
// BER tree per message. It does one operation at a time per connection.
package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Scope of a search.
type Scope int

// Search scopes (RFC 4511).
const (
	ScopeBase Scope = 0
	ScopeOne  Scope = 1
	ScopeSub  Scope = 2
)

// readBuffer is the size of the read buffer: big reads mean fewer system
// calls per entry.
const readBuffer = 256 << 10

// MaxMessage bounds one received LDAP message (a group with 100,000 members
// is about 6 MB).
const MaxMessage = 256 << 20

// Result codes the callers look at.
const (
	ResultSuccess             = 0
	ResultTimeLimitExceeded   = 3
	ResultSizeLimitExceeded   = 4
	ResultReferral            = 10
	ResultAdminLimit          = 11
	ResultUnavailableCritical = 12
	ResultNoSuchObject        = 32
	ResultInvalidCreds        = 49
	ResultUnwillingToPerfom   = 53
	ResultSyncRefresh         = 4096 // e-syncRefreshRequired (RFC 4533)
)

// Control is a request or response control. In a response delivered to a
// handler, Value aliases the receive buffer: copy it to keep it.
type Control struct {
	OID      string
	Critical bool
	Value    []byte // nil when the control has no value
}

// Attr is one attribute of an entry. Name and Vals alias the receive buffer.
type Attr struct {
	Name []byte
	Vals [][]byte
}

// Entry is one SearchResultEntry, valid only during the handler call.
type Entry struct {
	DN       []byte
	Attrs    []Attr
	Controls []Control
	vals     [][]byte
	spans    []int
}

// Get returns the values of the attribute named name (ASCII case-insensitive,
// options such as ";binary" must match), or nil.
func (e *Entry) Get(name string) [][]byte {
	for i := range e.Attrs {
		if equalFold(e.Attrs[i].Name, name) {
			return e.Attrs[i].Vals
		}
	}
	return nil
}

// First returns the first value of name, or nil.
func (e *Entry) First(name string) []byte {
	v := e.Get(name)
	if len(v) == 0 {
		return nil
	}
	return v[0]
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// ResultError is a non-success LDAPResult.
type ResultError struct {
	Op        string // "bind", "search", "starttls"
	Code      int
	Matched   string
	Message   string
	Referrals []string
}

func (e *ResultError) Error() string {
	name := ldap.LDAPResultCodeMap[uint16(e.Code)]
	if name == "" {
		name = "unknown"
	}
	s := fmt.Sprintf("%s: result %d (%s)", e.Op, e.Code, name)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if len(e.Referrals) > 0 {
		s += " (referral to " + strings.Join(e.Referrals, ", ") + ")"
	}
	return s
}

// IsCode reports whether err is a ResultError with that code.
func IsCode(err error, code int) bool {
	var re *ResultError
	return errors.As(err, &re) && re.Code == code
}

// NetError is a transport failure (dial, TLS, read, write, closed
// connection). The connection is unusable after one.
type NetError struct {
	Op  string
	Err error
}

func (e *NetError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *NetError) Unwrap() error { return e.Err }

// IsNetwork reports whether err is a transport failure worth a redial.
func IsNetwork(err error) bool {
	var ne *NetError
	return errors.As(err, &ne)
}

// DialOptions configure Dial.
type DialOptions struct {
	// TLS is used for ldaps:// and StartTLS. ServerName defaults to the
	// URL's host.
	TLS *tls.Config
	// StartTLS upgrades an ldap:// connection before anything else is sent.
	StartTLS bool
	// Timeout bounds connecting, the TLS handshake and StartTLS.
	Timeout time.Duration
}

// Conn is one LDAP connection. It is not safe for concurrent use.
type Conn struct {
	nc      net.Conn
	r       *bufio.Reader
	msgID   int32
	buf     []byte
	entry   Entry
	broken  error
	Timeout time.Duration // per operation (one search page); 0 means none
	Host    string        // the URL's host:port
	TLS     bool          // whether the connection is encrypted
}

// Dial connects to an ldap:// or ldaps:// URL.
func Dial(ctx context.Context, rawURL string, o DialOptions) (*Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse url %q: %w", rawURL, err)
	}
	host := u.Host
	port := u.Port()
	var implicitTLS bool
	switch strings.ToLower(u.Scheme) {
	case "ldap":
		if port == "" {
			host = net.JoinHostPort(u.Hostname(), "389")
		}
	case "ldaps":
		implicitTLS = true
		if port == "" {
			host = net.JoinHostPort(u.Hostname(), "636")
		}
	default:
		return nil, fmt.Errorf("url %q: scheme must be ldap or ldaps", rawURL)
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	tcfg := o.TLS
	if tcfg == nil {
		tcfg = &tls.Config{}
	}
	if tcfg.ServerName == "" {
		tcfg = tcfg.Clone()
		tcfg.ServerName = u.Hostname()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, &NetError{Op: "dial " + host, Err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := &Conn{nc: nc, Host: host}
	if implicitTLS {
		if err := c.handshake(ctx, tcfg); err != nil {
			nc.Close()
			return nil, err
		}
	} else {
		c.r = bufio.NewReaderSize(nc, readBuffer)
		if o.StartTLS {
			if err := c.startTLS(ctx, tcfg); err != nil {
				nc.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *Conn) handshake(ctx context.Context, cfg *tls.Config) error {
	tc := tls.Client(c.nc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return &NetError{Op: "tls handshake with " + c.Host, Err: err}
	}
	c.nc = tc
	c.r = bufio.NewReaderSize(tc, readBuffer)
	c.TLS = true
	return nil
}

const oidStartTLS = "1.3.6.1.4.1.1466.20037"

func (c *Conn) startTLS(ctx context.Context, cfg *tls.Config) error {
	id := c.nextID()
	req := tlvBytes(appExtendedRequest, berString(0x80, oidStartTLS))
	if err := c.send(ctx, id, req, nil); err != nil {
		return err
	}
	op, content, _, err := c.readResponse(ctx, id)
	if err != nil {
		return err
	}
	if op != appExtendedResponse {
		return fmt.Errorf("starttls: unexpected response tag %#x", op)
	}
	if err := parseResult("starttls", content); err != nil {
		return err
	}
	return c.handshake(ctx, cfg)
}

// Bind does a simple bind. An empty dn and password bind anonymously. The
// password never appears in an error.
func (c *Conn) Bind(ctx context.Context, dn, password string) error {
	id := c.nextID()
	req := tlvBytes(appBindRequest, berInt(tagInteger, 3), berString(tagOctetString, dn), berString(0x80, password))
	if err := c.send(ctx, id, req, nil); err != nil {
		return err
	}
	op, content, _, err := c.readResponse(ctx, id)
	if err != nil {
		return err
	}
	if op != appBindResponse {
		return fmt.Errorf("bind: unexpected response tag %#x", op)
	}
	return parseResult("bind", content)
}

// Close sends an unbind and closes the connection.
func (c *Conn) Close() error {
	if c.broken == nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		msg := tlvBytes(tagSequence, berInt(tagInteger, int64(c.nextID())), []byte{appUnbindRequest, 0})
		_, _ = c.nc.Write(msg)
	}
	c.broken = errors.New("connection closed")
	return c.nc.Close()
}

// Abandon asks the server to stop operation id (best effort).
func (c *Conn) abandon(id int32) {
	msg := tlvBytes(tagSequence, berInt(tagInteger, int64(c.nextID())), berInt(appAbandonRequest, int64(id)))
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.nc.Write(msg)
}

func (c *Conn) nextID() int32 {
	c.msgID++
	if c.msgID <= 0 {
		c.msgID = 1
	}
	return c.msgID
}

func encodeControls(cs []Control) []byte {
	if len(cs) == 0 {
		return nil
	}
	var parts [][]byte
	for _, ct := range cs {
		p := [][]byte{berString(tagOctetString, ct.OID)}
		if ct.Critical {
			p = append(p, berBool(true))
		}
		if ct.Value != nil {
			p = append(p, tlvBytes(tagOctetString, ct.Value))
		}
		parts = append(parts, tlvBytes(tagSequence, p...))
	}
	return tlvBytes(ctxControls, parts...)
}

func (c *Conn) send(ctx context.Context, id int32, op []byte, controls []Control) error {
	if c.broken != nil {
		return &NetError{Op: "send to " + c.Host, Err: c.broken}
	}
	parts := [][]byte{berInt(tagInteger, int64(id)), op}
	if cb := encodeControls(controls); cb != nil {
		parts = append(parts, cb)
	}
	msg := tlvBytes(tagSequence, parts...)
	dl := time.Time{}
	if c.Timeout > 0 {
		dl = time.Now().Add(c.Timeout)
	}
	if d, ok := ctx.Deadline(); ok && (dl.IsZero() || d.Before(dl)) {
		dl = d
	}
	_ = c.nc.SetWriteDeadline(dl)
	if _, err := c.nc.Write(msg); err != nil {
		c.broken = err
		return &NetError{Op: "send to " + c.Host, Err: err}
	}
	return nil
}

// readMessage reads one LDAPMessage into c.buf and splits it.
func (c *Conn) readMessage() (id int64, op byte, content, controls []byte, err error) {
	if c.broken != nil {
		return 0, 0, nil, nil, &NetError{Op: "read from " + c.Host, Err: c.broken}
	}
	fail := func(e error) (int64, byte, []byte, []byte, error) {
		if e == io.EOF {
			e = io.ErrUnexpectedEOF
		}
		c.broken = e
		return 0, 0, nil, nil, &NetError{Op: "read from " + c.Host, Err: e}
	}
	var hdr [6]byte
	if _, err := io.ReadFull(c.r, hdr[:2]); err != nil {
		if err == io.EOF {
			err = errors.New("connection closed by server")
		}
		return fail(err)
	}
	if hdr[0] != tagSequence {
		return fail(fmt.Errorf("malformed message: tag %#x", hdr[0]))
	}
	n := 0
	if hdr[1]&0x80 != 0 {
		n = int(hdr[1] & 0x7f)
		if n == 0 || n > 4 {
			return fail(fmt.Errorf("malformed message: length of %d bytes", n))
		}
		if _, err := io.ReadFull(c.r, hdr[2:2+n]); err != nil {
			return fail(err)
		}
	}
	l, _, err := readLength(hdr[1], hdr[2:2+n])
	if err != nil {
		return fail(fmt.Errorf("malformed message: %w", err))
	}
	if err := c.readBody(l); err != nil {
		return fail(err)
	}
	idb, rest, err := expect(c.buf, tagInteger, "message id")
	if err != nil {
		return fail(err)
	}
	if id, err = parseInt(idb); err != nil {
		return fail(err)
	}
	if id < 0 || id > maxMessageID {
		return fail(fmt.Errorf("malformed message: message id %d out of range", id))
	}
	op, content, rest, err = tlv(rest)
	if err != nil {
		return fail(err)
	}
	if len(rest) > 0 {
		tag, cb, _, err := tlv(rest)
		if err != nil {
			return fail(err)
		}
		if tag == ctxControls {
			controls = cb
		}
	}
	return id, op, content, controls, nil
}

// maxMessageID is the largest LDAP MessageID (RFC 4511: 0..2^31-1).
const maxMessageID = 1<<31 - 1

// readBody reads l bytes into c.buf. The buffer grows with the bytes that
// actually arrive, never ahead of them: a length header alone cannot make
// us allocate MaxMessage bytes.
func (c *Conn) readBody(l int) error {
	if cap(c.buf) >= l {
		c.buf = c.buf[:l]
		_, err := io.ReadFull(c.r, c.buf)
		return err
	}
	c.buf = c.buf[:0]
	for len(c.buf) < l {
		chunk := min(l-len(c.buf), max(len(c.buf), readBuffer))
		if cap(c.buf)-len(c.buf) < chunk {
			c.buf = append(c.buf[:cap(c.buf)], make([]byte, chunk)...)[:len(c.buf)]
		}
		start := len(c.buf)
		c.buf = c.buf[:start+chunk]
		if _, err := io.ReadFull(c.r, c.buf[start:]); err != nil {
			return err
		}
	}
	return nil
}

// deadline arms the read deadline for one operation and makes ctx
// cancellation interrupt a blocked read. The returned func disarms it.
func (c *Conn) deadline(ctx context.Context, persist bool) func() {
	dl := time.Time{}
	if c.Timeout > 0 && !persist {
		dl = time.Now().Add(c.Timeout)
	}
	if d, ok := ctx.Deadline(); ok && (dl.IsZero() || d.Before(dl)) {
		dl = d
	}
	_ = c.nc.SetReadDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

// readResponse reads until a message for id arrives, skipping stale ones.
func (c *Conn) readResponse(ctx context.Context, id int32) (op byte, content, controls []byte, err error) {
	done := c.deadline(ctx, false)
	defer done()
	for {
		mid, op, content, controls, err := c.readMessage()
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, nil, ctx.Err()
			}
			return 0, nil, nil, err
		}
		if mid == int64(id) {
			return op, content, controls, nil
		}
		if mid == 0 {
			return 0, nil, nil, c.unsolicited(op, content)
		}
	}
}

// unsolicited handles a message with id 0: a notice of disconnection.
func (c *Conn) unsolicited(op byte, content []byte) error {
	err := parseResult("notice of disconnection", content)
	if err == nil {
		err = errors.New("unsolicited notification")
	}
	c.broken = err
	return &NetError{Op: "server " + c.Host, Err: err}
}

// parseResult decodes an LDAPResult; nil for success.
func parseResult(op string, b []byte) error {
	codeB, rest, err := expect(b, tagEnumerated, "result code")
	if err != nil {
		return err
	}
	code, err := parseInt(codeB)
	if err != nil {
		return err
	}
	matched, rest, err := expect(rest, tagOctetString, "matched dn")
	if err != nil {
		return err
	}
	msg, rest, err := expect(rest, tagOctetString, "diagnostic message")
	if err != nil {
		return err
	}
	var refs []string
	if len(rest) > 0 {
		tag, rb, _, err := tlv(rest)
		if err == nil && tag == 0xa3 {
			for len(rb) > 0 {
				var u []byte
				if u, rb, err = expect(rb, tagOctetString, "referral"); err != nil {
					break
				}
				refs = append(refs, string(u))
			}
		}
	}
	if code == ResultSuccess {
		return nil
	}
	return &ResultError{Op: op, Code: int(code), Matched: string(matched), Message: string(msg), Referrals: refs}
}

// parseControls decodes a Controls sequence into dst (values alias b).
func parseControls(dst []Control, b []byte) ([]Control, error) {
	for len(b) > 0 {
		cb, rest, err := expect(b, tagSequence, "control")
		if err != nil {
			return dst, err
		}
		b = rest
		oid, cb, err := expect(cb, tagOctetString, "control type")
		if err != nil {
			return dst, err
		}
		ct := Control{OID: string(oid)}
		for len(cb) > 0 {
			tag, v, r, err := tlv(cb)
			if err != nil {
				return dst, err
			}
			cb = r
			switch tag {
			case tagBoolean:
				ct.Critical = len(v) == 1 && v[0] != 0
			case tagOctetString:
				ct.Value = v
				if ct.Value == nil {
					ct.Value = []byte{}
				}
			}
		}
		dst = append(dst, ct)
	}
	return dst, nil
}
