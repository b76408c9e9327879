// Package ldapdir is the demo's embedded LDAP directory: an in-process,
// loopback-only server (built on github.com/jimlambrt/gldap) that answers
// like OpenLDAP with the ppolicy and memberof overlays, seeded with a small
// company (see DemoSeed), and mutated by the demo to show how fast a
// disable reaches every application.
//
// What it serves: simple binds (the configured bind DN, or anonymous), and
// searches with base, one, sub and subordinate scopes, a real filter
// evaluator (and, or, not, equality, presence, substrings, >=, <=, ~= with
// OpenLDAP's matching rules for the attributes used; extensible match is
// refused with inappropriateMatching), attribute selection ("*", "+",
// "1.1", names), the Simple Paged Results control (RFC 2696), size limits
// and a root DSE that a client in auto flavour detects as OpenLDAP. Writes
// over LDAP are refused (unwillingToPerform): the demo changes the
// directory through Dir's methods, which bump modifyTimestamp and entryCSN
// as slapd would. Neither RFC 4533 (syncrepl) nor StartTLS is offered
// (the syncrepl control, being critical, is refused with
// unavailableCriticalExtension): clients poll modifyTimestamp. A size
// limit (the client's or Options.SizeLimit) counts the entries of all the
// pages of a paged search.
//
// How dirsync's ldap source reads it (ldapsrc.Settings, or the YAML keys):
//
//	urls:          [Dir.URL()]
//	flavour:       openldap (auto detects the same)
//	bind_dn:       Dir.BindDN()
//	bind_password: Dir.BindPassword()
//	incremental:   {mode: modify_timestamp, poll_interval: 1s}
//
// The base DNs default to the naming context; people and groups are found
// with ldapsrc's OpenLDAP defaults.
//
// The seeded people, and the special cases the demo relies on:
//
//	DisabledUser    victor.hale   locked (pwdAccountLockedTime: 000001010000Z)
//	ExpiringUser    ines.moreau   contractor, shadowExpire 7 days after the seed's clock
//	MustChangeUser  omar.haddad   new hire, pwdReset: TRUE
//	AdminUser       grace.okafor  it-admins, hence netmaker-admins (nested)
//	DemoLeaver      sam.rivera    active engineer the demo disables
//
// Groups (groupOfNames under ou=groups): staff ⊃ {engineering, sales,
// it-admins}; printing ⊃ staff; vpn-users ⊃ {engineering, it-admins};
// netmaker-admins ⊃ it-admins; contractors. Users carry direct memberOf
// values only, as slapd's memberof overlay writes them.
package ldapdir

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
	"go.uber.org/zap"
)

// Well-known names of the demo directory.
const (
	// BaseDN is the naming context of the seeded directory.
	BaseDN = "dc=demo,dc=test"
	// PeopleDN holds the people (inetOrgPerson, posixAccount, shadowAccount).
	PeopleDN = "ou=people," + BaseDN
	// GroupsDN holds the groups (groupOfNames).
	GroupsDN = "ou=groups," + BaseDN
	// DefaultBindDN is the administrator Start accepts when Options.BindDN is empty.
	DefaultBindDN = "cn=admin," + BaseDN
	// MailDomain is the domain of every seeded mail address.
	MailDomain = "demo.test"
	// LockedTime is the pwdAccountLockedTime value that locks an account
	// until an administrator unlocks it (ppolicy).
	LockedTime = "000001010000Z"
)

// Options configure Start. The zero value serves DemoSeed(time.Now()) on
// 127.0.0.1 with a random admin password.
type Options struct {
	// Addr is the TCP address to listen on (default "127.0.0.1:0": a free
	// loopback port; see Dir.URL).
	Addr string
	// BindDN is the administrator's DN (default DefaultBindDN). It is not
	// an entry of the directory, like slapd's rootdn.
	BindDN string
	// BindPassword is the administrator's password; empty: a random one
	// (see Dir.BindPassword).
	BindPassword config.Secret
	// Entries seed the directory (default DemoSeed(Now())). Parents are
	// added before children whatever the order; the top entry's DN is the
	// naming context.
	Entries []Entry
	// Now is the clock for timestamps (default time.Now).
	Now func() time.Time
	// Logger receives the server's errors (default: none).
	Logger *zap.Logger
	// SizeLimit caps how many entries one search returns in all its pages
	// (0: no limit). A search past it ends with sizeLimitExceeded, as a
	// slapd "limits" directive would make it.
	SizeLimit int
	// AllowAnonymous lets anonymous clients search the entries; otherwise
	// they may read only the root DSE.
	AllowAnonymous bool
}

// Dir is a running directory. Its methods are safe for concurrent use.
type Dir struct {
	bindDN   string
	bindNDN  string
	password config.Secret
	now      func() time.Time
	log      *zap.Logger
	limit    int
	anon     bool
	schema   map[string]attrInfo
	nonce    []byte // mixed into paging cookies: a cookie from another server fails

	mu       sync.RWMutex
	suffix   string // normalised naming context
	suffixDN string // as given
	entries  []*entry
	byDN     map[string]*entry
	children map[string]int
	seq      uint64
	csn      uint64

	connMu sync.Mutex
	bound  map[int]string // gldap connection id → normalised bind DN ("" anonymous)
	// Connections made to gldap and connections it has finished with:
	// Close waits until they match before stopping it (gldap's Stop must
	// not run while it accepts a connection).
	dialed, ended int
	ended1        chan struct{} // a connection ended

	srv   *gldap.Server
	runc  chan error
	front *front
	url   string

	closeOnce sync.Once
	closeErr  error
}

// Start seeds a directory and serves it until Close.
func Start(opts Options) (*Dir, error) {
	d := &Dir{
		bindDN: opts.BindDN, password: opts.BindPassword, now: opts.Now, log: opts.Logger,
		limit: opts.SizeLimit, anon: opts.AllowAnonymous, schema: knownAttrs(),
		byDN: map[string]*entry{}, children: map[string]int{}, bound: map[int]string{}, ended1: make(chan struct{}, 1),
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = zap.NewNop()
	}
	if d.bindDN == "" {
		d.bindDN = DefaultBindDN
	}
	var err error
	if d.bindNDN, err = normDN(d.bindDN); err != nil || d.bindNDN == "" {
		return nil, fmt.Errorf("ldapdir: bind DN: invalid DN %q", d.bindDN)
	}
	if d.password.IsZero() {
		d.password = config.NewSecret(randomHex(16))
	}
	d.nonce = []byte(randomHex(8))
	if opts.SizeLimit < 0 {
		return nil, fmt.Errorf("ldapdir: size limit %d: must be >= 0", opts.SizeLimit)
	}
	entries := opts.Entries
	if entries == nil {
		entries = DemoSeed(d.now())
	}
	if err := d.load(entries); err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ldapdir: listen on %s: %w", addr, err)
	}
	backend, err := d.startServer()
	if err != nil {
		ln.Close()
		return nil, err
	}
	d.front = newFront(ln, backend, d.log, d.noteDial)
	d.url = "ldap://" + ln.Addr().String()
	d.log.Info("ldapdir: serving", zap.String("url", d.url), zap.String("base_dn", d.suffixDN),
		zap.Int("entries", len(d.entries)))
	return d, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// startServer runs gldap on a private loopback port, which the front
// listener forwards to. gldap cannot report the port it listens on, so a
// free one is chosen and the listen confirmed: by gldap's first accepted
// connection closing, or by Run's error when the port was taken meanwhile.
func (d *Dir) startServer() (string, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		probe := make(chan struct{}, 1)
		srv, err := gldap.NewServer(
			gldap.WithLogger(hclog.New(&hclog.LoggerOptions{Name: "gldap", Level: hclog.Error, Output: zapWriter{d.log}})),
			gldap.WithOnClose(func(id int) {
				d.connMu.Lock()
				delete(d.bound, id)
				d.ended++
				d.connMu.Unlock()
				for _, ch := range []chan struct{}{probe, d.ended1} {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
			}))
		if err != nil {
			return "", fmt.Errorf("ldapdir: new server: %w", err)
		}
		if err := srv.Router(d.router()); err != nil {
			return "", fmt.Errorf("ldapdir: router: %w", err)
		}
		port, err := freePort()
		if err != nil {
			return "", err
		}
		addr := net.JoinHostPort("127.0.0.1", port)
		runc := make(chan error, 1)
		go func() { runc <- srv.Run(addr) }()
		for !srv.Ready() {
			select {
			case err := <-runc:
				return "", fmt.Errorf("ldapdir: serve: %w", err)
			case <-time.After(time.Millisecond):
			}
		}
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			c.Close()
		}
		select {
		case err := <-runc:
			lastErr = err // the port was taken between freePort and Run
			continue
		case <-probe:
			d.srv, d.runc = srv, runc
			d.noteDial()
			return addr, nil
		case <-time.After(10 * time.Second):
			_ = srv.Stop()
			return "", errors.New("ldapdir: serve: the server did not accept a connection in 10s")
		}
	}
	return "", fmt.Errorf("ldapdir: serve: %w", lastErr)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("ldapdir: find a free port: %w", err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port, nil
}

// zapWriter turns gldap's log lines into zap warnings.
type zapWriter struct{ log *zap.Logger }

func (w zapWriter) Write(p []byte) (int, error) {
	w.log.Warn("ldapdir: gldap: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// URL is the directory's address, e.g. ldap://127.0.0.1:38913.
func (d *Dir) URL() string { return d.url }

// Addr is the host:port the directory listens on.
func (d *Dir) Addr() string { return strings.TrimPrefix(d.url, "ldap://") }

// BindDN is the administrator's DN.
func (d *Dir) BindDN() string { return d.bindDN }

// BindPassword is the administrator's password. Hand it to a client's
// configuration; never log its Value.
func (d *Dir) BindPassword() config.Secret { return d.password }

// NamingContext is the DN of the directory's top entry (BaseDN with the
// demo seed).
func (d *Dir) NamingContext() string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.suffixDN
}

// noteDial counts a connection made to gldap.
func (d *Dir) noteDial() {
	d.connMu.Lock()
	d.dialed++
	d.connMu.Unlock()
}

// drained waits until gldap has ended every connection made to it (all
// are closed on our side by then), or gives up after a while.
func (d *Dir) drained() {
	giveUp := time.After(10 * time.Second)
	for {
		d.connMu.Lock()
		done := d.ended >= d.dialed
		d.connMu.Unlock()
		if done {
			return
		}
		select {
		case <-d.ended1:
		case <-giveUp:
			d.log.Warn("ldapdir: stopping with connections the server has not ended")
			return
		}
	}
}

// Close stops serving: open client connections are closed and Close
// waits for the server's goroutines to end. Later calls return the
// first call's result.
func (d *Dir) Close() error {
	d.closeOnce.Do(func() {
		d.front.close()
		d.drained()
		if err := d.srv.Stop(); err != nil {
			d.closeErr = fmt.Errorf("ldapdir: stop: %w", err)
			return
		}
		if err := <-d.runc; err != nil {
			d.closeErr = fmt.Errorf("ldapdir: serve: %w", err)
		}
	})
	return d.closeErr
}

// checkPassword compares in constant time.
func (d *Dir) checkPassword(p string) bool {
	return subtle.ConstantTimeCompare([]byte(p), []byte(d.password.Value())) == 1
}
