// Package redissrv starts throwaway redis-server processes for tests: one
// per call, on a random loopback port, with its files in a temporary
// folder, stopped when the test ends. Kill and Restart inject faults.
package redissrv

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testenv"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
)

// Options shape a throwaway server. The zero value is an in-memory server
// with no persistence and no password.
type Options struct {
	// AppendOnly turns the AOF on (appendfsync everysec), so Restart
	// reloads the data written before a Kill (up to the last second).
	AppendOnly bool
	// Password sets requirepass.
	Password string
	// TLS serves TLS only (a throwaway CA and server certificate for
	// 127.0.0.1 and localhost; clients need no certificate).
	TLS bool
	// Args are extra redis-server arguments, e.g. "--maxmemory", "10mb".
	Args []string
}

// Server is a running (or killed) redis-server owned by a test.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	opts Options
	// sentinel runs redis-server --sentinel with dir/sentinel.conf.
	sentinel bool
	tls      *slapd.TLSFiles

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a redis-server for t and stops it in t.Cleanup. It skips the
// test (or fails it under DIRSYNC_INTEGRATION=1) when redis-server is
// missing.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := testenv.NeedBinary(t, "redis-server")
	s := &Server{t: t, bin: bin, dir: t.TempDir(), opts: opts}
	var err error
	if opts.TLS {
		if s.tls, err = slapd.WriteTLS(s.dir, "localhost", "127.0.0.1"); err != nil {
			t.Fatalf("redissrv: %v", err)
		}
	}
	for range 3 { // a free port can be taken between FreePort and bind
		s.port = testenv.FreePort(t)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redissrv: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Dir is the server's working folder (AOF, log).
func (s *Server) Dir() string { return s.dir }

// TLS returns the CA and server certificate files (nil without Options.TLS).
func (s *Server) TLS() *slapd.TLSFiles { return s.tls }

// Password is the requirepass set, if any.
func (s *Server) Password() string { return s.opts.Password }

func (s *Server) args() []string {
	if s.sentinel {
		return []string{
			filepath.Join(s.dir, "sentinel.conf"), "--sentinel", "--port", strconv.Itoa(s.port),
			"--bind", "127.0.0.1", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no",
		}
	}
	port, tlsArgs := strconv.Itoa(s.port), []string(nil)
	if s.tls != nil {
		port = "0"
		tlsArgs = []string{
			"--tls-port", strconv.Itoa(s.port), "--tls-cert-file", s.tls.CertFile, "--tls-key-file", s.tls.KeyFile,
			"--tls-ca-cert-file", s.tls.CAFile, "--tls-auth-clients", "no",
		}
	}
	a := []string{
		"--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no",
	}
	if s.opts.AppendOnly {
		a = append(a, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	a = append(a, tlsArgs...)
	return append(a, s.opts.Args...)
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start: %s", s.port, s.logTail())
		default:
		}
		if s.ping() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server on port %d not ready after 10s: %s", s.port, s.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Do sends one command and returns the reply's first line, or a bulk
// reply's content ("-ERR ..." for errors). For setup steps in tests.
func (s *Server) Do(args ...string) (string, error) {
	c, err := s.dial()
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if s.opts.Password != "" {
		if line, err := roundTrip(c, r, "AUTH", s.opts.Password); err != nil || !strings.HasPrefix(line, "+OK") {
			return "", fmt.Errorf("auth: %q %v", line, err)
		}
	}
	return roundTrip(c, r, args...)
}

func roundTrip(c net.Conn, r *bufio.Reader, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if n, err := strconv.Atoi(strings.TrimPrefix(line, "$")); strings.HasPrefix(line, "$") && err == nil && n >= 0 {
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return line, nil
}

func (s *Server) dial() (net.Conn, error) {
	d := &net.Dialer{Timeout: time.Second}
	if s.tls == nil {
		return d.Dial("tcp", s.Addr())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.tls.CAPEM)
	return tls.DialWithDialer(d, "tcp", s.Addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
}

// ping sends PING (after AUTH when a password is set) and wants PONG: a
// server still loading its AOF answers -LOADING.
func (s *Server) ping() error {
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	r := bufio.NewReader(c)
	if s.opts.Password != "" {
		fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(s.opts.Password), s.opts.Password)
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("auth: %q %v", line, err)
		}
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("ping: %q", strings.TrimSpace(line))
	}
	return nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Kill ends the server with SIGKILL (no shutdown save) and waits for it.
// Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port and folder, killing it
// first if it runs; with AppendOnly it reloads the AOF.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for range 50 { // the old socket may linger briefly
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redissrv: restart: %v", err)
}

// Stop ends the server (SIGKILL: tests need no shutdown save). It is
// registered with t.Cleanup by Start.
func (s *Server) Stop() { s.Kill() }

// Cluster is a throwaway Redis Cluster: masters only, slots split evenly.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs n (>= 3) cluster-enabled servers, assigns the 16384
// slots evenly, joins them, and waits until every node reports
// cluster_state:ok. Stopped in t.Cleanup.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		n = 3
	}
	c := &Cluster{}
	var buses []int
	for range n {
		bus := testenv.FreePort(t)
		buses = append(buses, bus)
		c.Nodes = append(c.Nodes, Start(t, Options{Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000",
		}}))
	}
	const slots = 16384
	for i, node := range c.Nodes {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if r, err := node.Do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil || r != "+OK" {
			t.Fatalf("redissrv: cluster addslots: %q %v", r, err)
		}
	}
	for i, node := range c.Nodes[1:] {
		r, err := c.Nodes[0].Do("CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(node.Port()), strconv.Itoa(buses[i+1]))
		if err != nil || r != "+OK" {
			t.Fatalf("redissrv: cluster meet: %q %v", r, err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, node := range c.Nodes {
		for {
			info, err := node.Do("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redissrv: cluster not ready after 20s: %q %v", info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// StartSentinel runs a Redis Sentinel watching master under the name
// masterName (quorum 1). Stopped in t.Cleanup.
func StartSentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	bin := testenv.NeedBinary(t, "redis-server")
	s := &Server{t: t, bin: bin, dir: t.TempDir(), sentinel: true}
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\n", masterName, master.Port())
	if master.opts.Password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", masterName, master.opts.Password)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "sentinel.conf"), []byte(conf), 0o600); err != nil {
		t.Fatalf("redissrv: %v", err)
	}
	var err error
	for range 3 {
		s.port = testenv.FreePort(t)
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("redissrv: sentinel: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}
