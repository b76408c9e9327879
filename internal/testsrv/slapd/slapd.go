// Package slapd starts throwaway OpenLDAP servers for tests and benchmarks:
// an mdb database with the memberof, ppolicy and syncprov overlays in a
// temporary folder, listening on a random loopback port, loaded offline with
// slapadd, and stopped when the test ends.
package slapd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testenv"
)

// Defaults of a throwaway directory.
const (
	DefaultSuffix = "dc=example,dc=test"
	AdminPassword = "admin-secret"
)

// Options shape a throwaway server. The zero value is a plain server with
// the base entries (suffix, ou=people, ou=groups, the default password
// policy) and nothing else.
type Options struct {
	// Suffix of the database; DefaultSuffix when empty.
	Suffix string
	// LDIF is loaded offline (slapadd) after the base entries, before start.
	// slapadd bypasses overlays: entries get no memberOf unless the LDIF has it.
	LDIF string
	// LDIFFile is a file of entries loaded after LDIF (big data sets).
	LDIFFile string
	// TLS creates a CA and a server certificate, enables StartTLS on the
	// plain port and opens an ldaps:// port too.
	TLS bool
	// SizeLimit is the global sizelimit directive ("unlimited" when empty).
	SizeLimit string
	// Limits are extra "limits" directives for the database, e.g.
	// `dn.exact="cn=reader,dc=example,dc=test" size=5`.
	Limits []string
	// Threads is slapd's worker thread count (slapd's default when 0).
	Threads int
}

// Config is what WriteConfig produced: the paths and names a server runs
// with.
type Config struct {
	Dir      string // the server's folder
	ConfFile string // slapd.conf
	Suffix   string
	AdminDN  string
	TLS      *TLSFiles // nil without Options.TLS
}

// PeopleDN is where fixtures put users.
func (c *Config) PeopleDN() string { return "ou=people," + c.Suffix }

// GroupsDN is where fixtures put groups.
func (c *Config) GroupsDN() string { return "ou=groups," + c.Suffix }

// WriteConfig writes slapd.conf and an empty database folder into dir,
// creates the TLS files when asked, and loads the base entries and
// opts.LDIF with slapadd. It needs slaptest and slapadd; no server runs.
func WriteConfig(dir string, opts Options) (*Config, error) {
	c := &Config{Dir: dir, Suffix: opts.Suffix}
	if c.Suffix == "" {
		c.Suffix = DefaultSuffix
	}
	c.AdminDN = "cn=admin," + c.Suffix
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		return nil, fmt.Errorf("slapd: %w", err)
	}
	if opts.TLS {
		f, err := WriteTLS(dir, "localhost", "127.0.0.1")
		if err != nil {
			return nil, fmt.Errorf("slapd: %w", err)
		}
		c.TLS = f
	}
	sizeLimit := opts.SizeLimit
	if sizeLimit == "" {
		sizeLimit = "unlimited"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
moduleload syncprov
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
sizelimit %[2]s
`, dir, sizeLimit)
	if opts.Threads > 0 {
		fmt.Fprintf(&b, "threads %d\n", opts.Threads)
	}
	if c.TLS != nil {
		fmt.Fprintf(&b, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n",
			c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile)
	}
	fmt.Fprintf(&b, `
database mdb
maxsize 4294967296
suffix "%[1]s"
rootdn "%[2]s"
rootpw %[3]s
directory %[4]s/db
index objectClass eq
index uid,cn,mail,memberUid eq
index member,uniqueMember,memberOf eq
index entryCSN,entryUUID eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
`, c.Suffix, c.AdminDN, AdminPassword, dir)
	for _, l := range opts.Limits {
		fmt.Fprintf(&b, "limits %s\n", l)
	}
	fmt.Fprintf(&b, `
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 1000

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE

overlay ppolicy
ppolicy_default "cn=default,ou=policies,%[1]s"
`, c.Suffix)
	c.ConfFile = filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(c.ConfFile, []byte(b.String()), 0o600); err != nil {
		return nil, fmt.Errorf("slapd: %w", err)
	}
	if out, err := exec.Command(binary("slaptest"), "-Q", "-u", "-f", c.ConfFile).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("slapd: slaptest: %w: %s", err, out)
	}
	ldif := BaseLDIF(c.Suffix) + "\n" + opts.LDIF + "\n"
	cmd := exec.Command(binary("slapadd"), "-q", "-w", "-f", c.ConfFile)
	cmd.Stdin = strings.NewReader(ldif)
	if opts.LDIFFile != "" {
		f, err := os.Open(opts.LDIFFile)
		if err != nil {
			return nil, fmt.Errorf("slapd: %w", err)
		}
		defer f.Close()
		cmd.Stdin = io.MultiReader(strings.NewReader(ldif), f)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("slapd: slapadd: %w: %s", err, out)
	}
	return c, nil
}

// BaseLDIF is the suffix entry, ou=people, ou=groups and the default
// password policy.
func BaseLDIF(suffix string) string {
	dc, _, _ := strings.Cut(strings.TrimPrefix(suffix, "dc="), ",")
	return fmt.Sprintf(`dn: %[1]s
objectClass: dcObject
objectClass: organization
dc: %[2]s
o: %[2]s

dn: ou=people,%[1]s
objectClass: organizationalUnit
ou: people

dn: ou=groups,%[1]s
objectClass: organizationalUnit
ou: groups

dn: ou=policies,%[1]s
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,%[1]s
objectClass: organizationalRole
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
`, suffix, dc)
}

// Server is a running throwaway slapd.
type Server struct {
	*Config
	URL      string // ldap://127.0.0.1:PORT
	LDAPSURL string // ldaps://127.0.0.1:PORT, with Options.TLS
	port     int
	tlsPort  int
	// mu guards cmd and done: Kill may come from another goroutine (a
	// test's fault proxy) while the test restarts the server.
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	log     *bytes.Buffer
}

// proc returns the current process and its exit channel.
func (s *Server) proc() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd, s.done
}

// Start writes a server into t.TempDir(), starts it on a free loopback port
// and stops it when the test ends. It skips (or fails under
// DIRSYNC_INTEGRATION=1) when slapd is not installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	testenv.NeedBinary(t, "slapd")
	testenv.NeedBinary(t, "slapadd")
	c, err := WriteConfig(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Config: c, port: testenv.FreePort(t)}
	if c.TLS != nil {
		s.tlsPort = testenv.FreePort(t)
	}
	if err := s.launch(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Launch starts a server from a folder WriteConfig prepared, on the given
// ports (tlsPort only with TLS). The caller stops it.
func Launch(c *Config, port, tlsPort int) (*Server, error) {
	s := &Server{Config: c, port: port, tlsPort: tlsPort}
	if err := s.launch(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) launch() error {
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d/", s.port)
	urls := s.URL
	if s.TLS != nil {
		s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d/", s.tlsPort)
		urls += " " + s.LDAPSURL
	}
	logBuf := &bytes.Buffer{}
	cmd := exec.Command(binary("slapd"), "-d", "0", "-h", urls, "-f", s.ConfFile)
	cmd.Stdout = logBuf
	cmd.Stderr = logBuf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("slapd: start: %w", err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.log, s.cmd, s.done = logBuf, cmd, done
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-done:
			s.mu.Lock()
			werr := s.waitErr
			s.mu.Unlock()
			return fmt.Errorf("slapd: exited at start (%v): %s", werr, logBuf.String())
		case <-ctx.Done():
			s.Kill()
			return fmt.Errorf("slapd: not listening on %d after 15s: %s", s.port, logBuf.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash would, and waits for
// it to exit.
func (s *Server) Kill() {
	cmd, done := s.proc()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop stops the server cleanly (SIGTERM, SIGKILL after 5 s).
func (s *Server) Stop() {
	cmd, done := s.proc()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.Kill()
	}
}

// Restart stops the server and starts it again on the same ports with the
// same data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		t.Fatal(err)
	}
}

// Port is the plain LDAP port.
func (s *Server) Port() int { return s.port }

// Modify applies an LDIF of changes (changetype: add, modify, delete ...)
// as the admin with ldapmodify, failing the test on error.
func (s *Server) Modify(t testing.TB, ldif string) {
	t.Helper()
	if err := s.ModifyErr(ldif); err != nil {
		t.Fatal(err)
	}
}

// ModifyErr is Modify returning the error.
func (s *Server) ModifyErr(ldif string) error {
	cmd := exec.Command(binary("ldapmodify"), "-x", "-H", s.URL, "-D", s.AdminDN, "-w", AdminPassword)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("slapd: ldapmodify: %w: %s", err, out)
	}
	return nil
}

// User returns the LDIF of an inetOrgPerson with a password under
// ou=people; extra lines ("mail: x@y", "shadowExpire: 20000") are appended.
func (c *Config) User(uid string, extra ...string) string {
	lines := []string{
		"dn: uid=" + uid + "," + c.PeopleDN(),
		"objectClass: inetOrgPerson",
		"objectClass: shadowAccount",
		"uid: " + uid,
		"cn: " + strings.ToUpper(uid[:1]) + uid[1:] + " Test",
		"givenName: " + strings.ToUpper(uid[:1]) + uid[1:],
		"sn: Test",
		"mail: " + uid + "@example.test",
		"userPassword: pw-" + uid,
	}
	return strings.Join(append(lines, extra...), "\n") + "\n\n"
}

// Group returns the LDIF of a groupOfNames under ou=groups whose members are
// the given DNs (a groupOfNames needs one: an empty group gets the suffix).
func (c *Config) Group(cn string, memberDNs ...string) string {
	lines := []string{
		"dn: cn=" + cn + "," + c.GroupsDN(),
		"objectClass: groupOfNames",
		"cn: " + cn,
	}
	if len(memberDNs) == 0 {
		memberDNs = []string{c.Suffix}
	}
	for _, m := range memberDNs {
		lines = append(lines, "member: "+m)
	}
	return strings.Join(lines, "\n") + "\n\n"
}

// UserDN is the DN of a fixture user.
func (c *Config) UserDN(uid string) string { return "uid=" + uid + "," + c.PeopleDN() }

// GroupDN is the DN of a fixture group.
func (c *Config) GroupDN(cn string) string { return "cn=" + cn + "," + c.GroupsDN() }

// binary finds an OpenLDAP tool in PATH or the sbin folders.
func binary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return name
}

// PID is the server's process id, or 0 when it is not running.
func (s *Server) PID() int {
	cmd, _ := s.proc()
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	return cmd.Process.Pid
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	_, done := s.proc()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}
