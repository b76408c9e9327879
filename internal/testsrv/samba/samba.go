// Package samba starts throwaway Samba Active Directory domain controllers
// for tests: a domain is provisioned once per test run into a template
// folder (about 5 s), optionally loaded offline with fixtures, and copied
// for every server, which then starts in about a second on its own
// loopback address (Samba's LDAP ports are fixed).
package samba

import (
	"bytes"
	"context"
	"encoding/base64"
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
	"unicode/utf16"

	"github.com/dirsync/dirsync/internal/testenv"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
)

// The throwaway domain.
const (
	Realm         = "EXAMPLE.TEST"
	Domain        = "EXAMPLE"
	BaseDN        = "DC=example,DC=test"
	UsersDN       = "CN=Users," + BaseDN
	AdminDN       = "CN=Administrator," + UsersDN
	AdminPassword = "Adm1n-Passw0rd!"
)

// python is the interpreter Samba's bindings are installed for.
const python = "/usr/bin/python3"

// Template is a provisioned, stopped domain that servers are copied from.
// Build one per test run (in TestMain), derive loaded variants with With,
// and Close it at the end. It is safe for concurrent use.
type Template struct {
	parent *Template
	load   func(dir string) error

	mu       sync.Mutex
	done     bool
	dir      string
	err      error
	root     string // temp folder holding this template (and its children's)
	children []*Template
	ipMu     *sync.Mutex // serialises address picking across servers
}

// NewTemplate returns a template that provisions on first use.
func NewTemplate() *Template { return &Template{ipMu: &sync.Mutex{}} }

// With returns a template derived from t: a copy of t's domain into which
// load (run once, on first use, with Samba stopped) adds fixtures offline,
// e.g. with AddOffline.
func (t *Template) With(load func(dir string) error) *Template {
	c := &Template{parent: t, load: load, ipMu: t.ipMu}
	t.mu.Lock()
	t.children = append(t.children, c)
	t.mu.Unlock()
	return c
}

// Close removes the template folders (servers clean up themselves).
func (t *Template) Close() {
	t.mu.Lock()
	children := t.children
	root := t.root
	t.mu.Unlock()
	for _, c := range children {
		c.Close()
	}
	if root != "" {
		_ = os.RemoveAll(root)
	}
}

// Dir prepares the template (provisioning or loading it the first time)
// and returns its folder.
func (t *Template) Dir() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return t.dir, t.err
	}
	t.done = true
	t.dir, t.err = t.prepare()
	return t.dir, t.err
}

func (t *Template) prepare() (string, error) {
	root, err := os.MkdirTemp("", "dirsync-samba-template-")
	if err != nil {
		return "", fmt.Errorf("samba: %w", err)
	}
	t.root = root
	dir := filepath.Join(root, "dc")
	if t.parent == nil {
		if err := provision(root, dir); err != nil {
			return "", err
		}
		return dir, nil
	}
	pdir, err := t.parent.Dir()
	if err != nil {
		return "", err
	}
	if err := copyDir(pdir, dir); err != nil {
		return "", err
	}
	if err := writeConf(dir, "127.0.0.1", nil); err != nil {
		return "", err
	}
	if err := t.load(dir); err != nil {
		return "", fmt.Errorf("samba: load template: %w", err)
	}
	return dir, nil
}

func provision(root, dir string) error {
	empty := filepath.Join(root, "empty.conf")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		return fmt.Errorf("samba: %w", err)
	}
	cmd := exec.Command("samba-tool", "domain", "provision", "-s", empty, "--targetdir="+dir,
		"--realm="+Realm, "--domain="+Domain, "--adminpass="+AdminPassword, "--server-role=dc",
		"--dns-backend=NONE", "--use-rfc2307", "--host-name=dc1", "--host-ip=127.0.0.1")
	cmd.Env = append(os.Environ(), "TDB_NO_FSYNC=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("samba: provision: %w: %s", err, tail(out))
	}
	return writeConf(dir, "127.0.0.1", nil)
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func copyDir(src, dst string) error {
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("samba: copy %s: %w: %s", src, err, out)
	}
	return nil
}

// writeConf writes DIR/etc/smb.conf for a server on ip: LDAP only, simple
// binds allowed over plain LDAP, every path inside dir, our own TLS files.
func writeConf(dir, ip string, tlsFiles *slapd.TLSFiles) error {
	for _, d := range []string{"etc", "pid", "cache", "ncalrpc", "winbindd", "state", "bind-dns"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("samba: %w", err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[global]
	netbios name = DC1
	realm = %[2]s
	workgroup = %[3]s
	server role = active directory domain controller
	server services = ldap
	interfaces = %[4]s/8
	bind interfaces only = yes
	ldap server require strong auth = no
	private dir = %[1]s/private
	lock directory = %[1]s
	state directory = %[1]s/state
	cache directory = %[1]s/cache
	binddns dir = %[1]s/bind-dns
	pid directory = %[1]s/pid
	ncalrpc dir = %[1]s/ncalrpc
	winbindd socket directory = %[1]s/winbindd
	log file = %[1]s/log.samba
	idmap_ldb:use rfc2307 = yes
`, dir, Realm, Domain, ip)
	if tlsFiles != nil {
		fmt.Fprintf(&b, "\ttls enabled = yes\n\ttls keyfile = %s\n\ttls certfile = %s\n\ttls cafile = %s\n",
			tlsFiles.KeyFile, tlsFiles.CertFile, tlsFiles.CAFile)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "smb.conf"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("samba: %w", err)
	}
	return nil
}

// AddOffline applies LDIF records (adds, and "changetype: modify") to a
// stopped domain folder through Samba's own database layer, in one
// transaction (hundreds of entries per second, against about 27 per second
// over LDAP). The LDIF may use {BASE} for the domain DN.
func AddOffline(dir, ldif string) error {
	script := `
import sys
import ldb
from samba.samdb import SamDB
from samba.auth import system_session
from samba.param import LoadParm
lp = LoadParm()
lp.load(sys.argv[1] + "/etc/smb.conf")
db = SamDB(url=sys.argv[1] + "/private/sam.ldb", session_info=system_session(), lp=lp)
ldif = sys.stdin.read().replace("{BASE}", db.domain_dn())
db.transaction_start()
try:
    for changetype, msg in db.parse_ldif(ldif):
        if changetype == ldb.CHANGETYPE_MODIFY:
            db.modify(msg)
        else:
            db.add(msg)
except Exception:
    db.transaction_cancel()
    raise
db.transaction_commit()
`
	cmd := exec.Command(python, "-c", script, dir)
	cmd.Stdin = strings.NewReader(ldif)
	cmd.Env = append(os.Environ(), "TDB_NO_FSYNC=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("samba: offline add: %w: %s", err, tail(out))
	}
	return nil
}

// UnicodePwd is the base64 LDIF value of an AD password (the quoted
// password in UTF-16LE), for "unicodePwd:: " lines.
func UnicodePwd(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Server is a running throwaway domain controller.
type Server struct {
	Dir      string
	IP       string
	URL      string // ldap://IP
	LDAPSURL string // ldaps://IP
	TLS      *slapd.TLSFiles
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	done     chan struct{}
	waitErr  error
	log      *bytes.Buffer
	ipMu     *sync.Mutex
}

// Start copies the template into tb.TempDir() and starts a DC on a free
// 127.0.0.N address; it is stopped when the test ends. It skips (or fails
// under DIRSYNC_INTEGRATION=1) when Samba is not installed.
func (t *Template) Start(tb testing.TB) *Server {
	tb.Helper()
	testenv.NeedBinary(tb, "samba")
	testenv.NeedBinary(tb, "samba-tool")
	if _, err := os.Stat(python); err != nil {
		testenv.Missing(tb, python+" (Samba's Python bindings) is missing")
	}
	if os.Geteuid() != 0 {
		testenv.Missing(tb, "a Samba DC needs root")
	}
	tdir, err := t.Dir()
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(tb.TempDir(), "dc")
	if err := copyDir(tdir, dir); err != nil {
		tb.Fatal(err)
	}
	s := &Server{Dir: dir, ipMu: t.ipMu}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Launch is Start for programs (benchmarks): the server runs from a copy
// of the template in dir, and the caller stops it.
func (t *Template) Launch(dir string) (*Server, error) {
	tdir, err := t.Dir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("samba: %w", err)
	}
	dir = filepath.Join(dir, "dc")
	if err := copyDir(tdir, dir); err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, ipMu: t.ipMu}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// pickIP returns the first 127.0.0.N (N ≥ 2) whose LDAP ports are free.
func pickIP() (string, error) {
	for n := 2; n < 255; n++ {
		ip := fmt.Sprintf("127.0.0.%d", n)
		free := true
		for _, port := range []int{389, 636, 3268, 3269} {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return ip, nil
		}
	}
	return "", fmt.Errorf("samba: no free loopback address for the LDAP ports")
}

func (s *Server) start() error {
	s.ipMu.Lock()
	defer s.ipMu.Unlock()
	ip, err := pickIP()
	if err != nil {
		return err
	}
	s.IP = ip
	s.URL, s.LDAPSURL = "ldap://"+ip, "ldaps://"+ip
	// The certificate names the address too.
	if s.TLS, err = slapd.WriteTLS(filepath.Join(s.Dir, "private"), "localhost", "dc1.example.test", ip); err != nil {
		return err
	}
	if err := writeConf(s.Dir, ip, s.TLS); err != nil {
		return err
	}
	return s.launch()
}

func (s *Server) launch() error {
	s.log = &bytes.Buffer{}
	// -i: interactive; Samba exits when its stdin closes, so a crashed test
	// run leaves no server behind.
	s.cmd = exec.Command("samba", "-i", "-M", "single", "--no-process-group", "-s", filepath.Join(s.Dir, "etc", "smb.conf"))
	s.cmd.Env = append(os.Environ(), "TDB_NO_FSYNC=1")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("samba: %w", err)
	}
	s.stdin = stdin
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("samba: start: %w", err)
	}
	s.done = make(chan struct{})
	go func() { s.waitErr = s.cmd.Wait(); close(s.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := net.DialTimeout("tcp", s.IP+":389", time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("samba: exited at start (%v): %s", s.waitErr, tail(s.log.Bytes()))
		case <-ctx.Done():
			s.Kill()
			return fmt.Errorf("samba: not listening on %s:389 after 30s: %s", s.IP, tail(s.log.Bytes()))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Kill stops the server abruptly (SIGKILL) and waits for it.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil || !s.Running() {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Stop stops the server (stdin closed, then SIGTERM, then SIGKILL).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil || !s.Running() {
		return
	}
	_ = s.stdin.Close()
	select {
	case <-s.done:
		return
	case <-time.After(3 * time.Second):
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.Kill()
	}
}

// Restart stops the server and starts it again on the same address and
// database: what a client sees when its DC is restarted. meanwhile, when
// not nil, runs while it is stopped (e.g. AddOffline on s.Dir).
func (s *Server) Restart(tb testing.TB, meanwhile func() error) {
	tb.Helper()
	s.Stop()
	if meanwhile != nil {
		if err := meanwhile(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := s.launch(); err != nil {
		tb.Fatal(err)
	}
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Modify applies an LDIF of changes as the Administrator over LDAPS (which
// Samba requires for passwords); {BASE} stands for the domain DN.
func (s *Server) Modify(tb testing.TB, ldif string) {
	tb.Helper()
	if err := s.ModifyErr(ldif); err != nil {
		tb.Fatal(err)
	}
}

// ModifyErr is Modify returning the error.
func (s *Server) ModifyErr(ldif string) error {
	cmd := exec.Command("ldapmodify", "-x", "-H", s.LDAPSURL, "-D", AdminDN, "-w", AdminPassword)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.TLS.CAFile)
	cmd.Stdin = strings.NewReader(strings.ReplaceAll(ldif, "{BASE}", BaseDN))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("samba: ldapmodify: %w: %s", err, out)
	}
	return nil
}
