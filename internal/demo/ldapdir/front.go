package ldapdir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"go.uber.org/zap"
)

// maxMessage bounds one LDAP request read by the front (16 MiB).
const maxMessage = 16 << 20

// front is the listener clients reach. It forwards each connection to
// gldap on its private port, for three things gldap cannot do itself:
// report the port it listens on (so ":0" works without a race), close
// connections that clients keep open when the directory closes (gldap's
// Stop waits for them), and swallow Abandon requests (RFC 4511 4.11: no
// response), which gldap does not decode and answers by dropping the
// connection.
type front struct {
	ln      net.Listener
	backend string
	log     *zap.Logger
	dialed  func() // a connection to the backend was made

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newFront(ln net.Listener, backend string, log *zap.Logger, dialed func()) *front {
	f := &front{ln: ln, backend: backend, log: log, dialed: dialed, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f
}

func (f *front) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.log.Warn("ldapdir: accept", zap.Error(err))
			}
			return
		}
		b, err := net.Dial("tcp", f.backend)
		if err != nil {
			f.log.Warn("ldapdir: reach the server", zap.Error(err))
			c.Close()
			continue
		}
		f.dialed()
		if !f.track(c, b) {
			c.Close()
			b.Close()
			return
		}
		f.wg.Add(2)
		go func() {
			defer f.wg.Done()
			err := forwardRequests(b, c)
			if err != nil && !errors.Is(err, net.ErrClosed) {
				f.log.Debug("ldapdir: client connection", zap.Error(err))
			}
			// The client is gone or sent garbage: let gldap see the end.
			if tc, ok := b.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			} else {
				b.Close()
			}
		}()
		go func() {
			defer f.wg.Done()
			_, _ = io.Copy(c, b)
			c.Close()
			b.Close()
			f.untrack(c, b)
		}()
	}
}

func (f *front) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *front) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
	}
}

// close stops accepting, closes every connection and waits for the
// forwarding goroutines.
func (f *front) close() {
	f.mu.Lock()
	f.closed = true
	f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// forwardRequests copies LDAP messages from the client to the server,
// leaving out Abandon requests.
func forwardRequests(dst io.Writer, src io.Reader) error {
	r := bufio.NewReader(src)
	for {
		msg, err := readMessage(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if isAbandon(msg) {
			continue
		}
		if _, err := dst.Write(msg); err != nil {
			return err
		}
	}
}

// readMessage reads one BER-encoded LDAPMessage (a definite-length
// SEQUENCE).
func readMessage(r *bufio.Reader) ([]byte, error) {
	tag, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	if tag != 0x30 {
		return nil, fmt.Errorf("not an LDAP message (tag %#x)", tag)
	}
	msg := []byte{tag}
	l, err := r.ReadByte()
	if err != nil {
		return nil, unexpected(err)
	}
	msg = append(msg, l)
	n := int(l)
	if l&0x80 != 0 {
		k := int(l & 0x7f)
		if k == 0 || k > 4 {
			return nil, fmt.Errorf("unsupported BER length form %#x", l)
		}
		n = 0
		for i := 0; i < k; i++ {
			b, err := r.ReadByte()
			if err != nil {
				return nil, unexpected(err)
			}
			msg = append(msg, b)
			n = n<<8 | int(b)
		}
	}
	if n > maxMessage {
		return nil, fmt.Errorf("message of %d bytes is over the %d limit", n, maxMessage)
	}
	start := len(msg)
	msg = append(msg, make([]byte, n)...)
	if _, err := io.ReadFull(r, msg[start:]); err != nil {
		return nil, unexpected(err)
	}
	return msg, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isAbandon reports whether msg is an AbandonRequest: after the
// messageID INTEGER comes [APPLICATION 16] (0x50).
func isAbandon(msg []byte) bool {
	i := 1
	if msg[i]&0x80 != 0 {
		i += int(msg[i] & 0x7f)
	}
	i++ // now at the messageID
	if i+1 >= len(msg) || msg[i] != 0x02 {
		return false
	}
	i += 2 + int(msg[i+1])
	return i < len(msg) && msg[i] == 0x50
}
