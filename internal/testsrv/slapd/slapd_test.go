package slapd_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/internal/testsrv/slapd"
)

func TestStartAndSearch(t *testing.T) {
	s := slapd.Start(t, slapd.Options{TLS: true, LDIF: (&slapd.Config{Suffix: slapd.DefaultSuffix}).User("alice")})
	s.Modify(t, "dn: "+s.UserDN("alice")+"\nchangetype: modify\nreplace: mail\nmail: alice2@example.test\n")
	for _, url := range []string{s.URL, s.LDAPSURL} {
		cmd := exec.Command("ldapsearch", "-x", "-LLL", "-H", url, "-b", s.PeopleDN(), "(uid=alice)", "mail", "entryUUID")
		cmd.Env = append(cmd.Environ(), "LDAPTLS_CACERT="+s.TLS.CAFile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ldapsearch %s: %v: %s", url, err, out)
		}
		if !strings.Contains(string(out), "mail: alice2@example.test") || !strings.Contains(string(out), "entryUUID:") {
			t.Fatalf("unexpected: %s", out)
		}
	}
	// StartTLS on the plain port.
	cmd := exec.Command("ldapsearch", "-ZZ", "-x", "-LLL", "-H", s.URL, "-b", s.PeopleDN(), "(uid=alice)", "uid")
	cmd.Env = append(cmd.Environ(), "LDAPTLS_CACERT="+s.TLS.CAFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("starttls: %v: %s", err, out)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("still running after Kill")
	}
}
