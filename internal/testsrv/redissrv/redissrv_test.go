package redissrv_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
)

// do sends one command and returns the first reply line.
func do(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(c, "$%d\r\n%s\r\n", len(a), a)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(line, "$") && !strings.HasPrefix(line, "$-1") {
		v, err := r.ReadString('\n')
		return strings.TrimSpace(v), err
	}
	return strings.TrimSpace(line), nil
}

func TestKillRestartAOF(t *testing.T) {
	s := redissrv.Start(t, redissrv.Options{AppendOnly: true})
	if v, err := do(t, s.Addr(), "SET", "k", "v"); err != nil || v != "+OK" {
		t.Fatalf("set: %q %v", v, err)
	}
	// appendfsync everysec: force the write out before killing.
	if v, err := do(t, s.Addr(), "CONFIG", "SET", "appendfsync", "always"); err != nil || v != "+OK" {
		t.Fatalf("config: %q %v", v, err)
	}
	if v, err := do(t, s.Addr(), "SET", "k2", "v2"); err != nil || v != "+OK" {
		t.Fatalf("set: %q %v", v, err)
	}
	s.Kill()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("server answers after Kill")
	}
	s.Kill() // harmless
	s.Restart()
	if v, err := do(t, s.Addr(), "GET", "k2"); err != nil || v != "v2" {
		t.Fatalf("after restart: %q %v", v, err)
	}
}

func TestNoPersistence(t *testing.T) {
	s := redissrv.Start(t, redissrv.Options{Password: "pw-secret"})
	if v, _ := do(t, s.Addr(), "SET", "k", "v"); !strings.HasPrefix(v, "-NOAUTH") {
		t.Fatalf("unauthenticated set: %q", v)
	}
	s.Restart()
	if v, _ := do(t, s.Addr(), "PING"); !strings.HasPrefix(v, "-NOAUTH") {
		t.Fatalf("ping after restart: %q", v)
	}
}

func TestCluster(t *testing.T) {
	c := redissrv.StartCluster(t, 3)
	if len(c.Addrs()) != 3 {
		t.Fatalf("addrs: %v", c.Addrs())
	}
	for _, n := range c.Nodes {
		info, err := n.Do("CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_slots_assigned:16384") {
			t.Fatalf("cluster info: %q %v", info, err)
		}
	}
}

func TestSentinel(t *testing.T) {
	m := redissrv.Start(t, redissrv.Options{})
	s := redissrv.StartSentinel(t, m, "mymaster")
	r, err := s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
	if err != nil || !strings.HasPrefix(r, "*2") {
		t.Fatalf("sentinel: %q %v", r, err)
	}
}

func TestTLS(t *testing.T) {
	s := redissrv.Start(t, redissrv.Options{TLS: true})
	if r, err := s.Do("PING"); err != nil || r != "+PONG" {
		t.Fatalf("ping over tls: %q %v", r, err)
	}
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("plain connection answered on the TLS port")
	}
}
