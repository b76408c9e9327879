package wire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/internal/testsrv/slapd"
)

func TestIntRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 255, 256, -1, -128, -129, 1 << 31, -(1 << 40), 0x7FFFFFFFFFFFFFFF} {
		b := berInt(tagInteger, v)
		_, content, rest, err := tlv(b)
		if err != nil || len(rest) != 0 {
			t.Fatalf("%d: %v %x", v, err, b)
		}
		got, err := parseInt(content)
		if err != nil || got != v {
			t.Fatalf("%d: got %d (%v) from %x", v, got, err, b)
		}
	}
}

func TestTLVRejectsMalformed(t *testing.T) {
	for _, b := range [][]byte{{}, {0x04}, {0x04, 0x05, 1}, {0x04, 0x85, 1, 1, 1, 1, 1}, {0x1f, 1, 1}, {0x04, 0x82, 1}} {
		if _, _, _, err := tlv(b); err == nil {
			t.Errorf("%x: no error", b)
		}
	}
}

func TestLongLengths(t *testing.T) {
	for _, n := range []int{0, 127, 128, 255, 256, 70000, 1 << 24} {
		b := tlvBytes(tagOctetString, make([]byte, n))
		_, c, rest, err := tlv(b)
		if err != nil || len(c) != n || len(rest) != 0 {
			t.Fatalf("%d: %v", n, err)
		}
	}
}

func TestSearchAgainstSlapd(t *testing.T) {
	var ldif strings.Builder
	cfg := &slapd.Config{Suffix: slapd.DefaultSuffix}
	for i := 0; i < 25; i++ {
		ldif.WriteString(cfg.User(fmt.Sprintf("u%02d", i)))
	}
	s := slapd.Start(t, slapd.Options{TLS: true, LDIF: ldif.String()})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.TLS.CAPEM)
	ctx := context.Background()
	for _, tc := range []struct {
		name, url string
		startTLS  bool
	}{{"plain", s.URL, false}, {"starttls", s.URL, true}, {"ldaps", s.LDAPSURL, false}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(ctx, tc.url, DialOptions{TLS: &tls.Config{RootCAs: pool}, StartTLS: tc.startTLS})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.TLS != (tc.name != "plain") {
				t.Fatalf("TLS = %v", c.TLS)
			}
			err = c.Bind(ctx, s.AdminDN, "wrong-password")
			if !IsCode(err, ResultInvalidCreds) || strings.Contains(err.Error(), "wrong-password") {
				t.Fatalf("bad bind: %v", err)
			}
			if err := c.Bind(ctx, s.AdminDN, slapd.AdminPassword); err != nil {
				t.Fatal(err)
			}
			var cookie []byte
			var uids []string
			pages := 0
			for {
				d, err := c.Search(ctx, &SearchRequest{BaseDN: s.PeopleDN(), Scope: ScopeSub, Filter: "(objectClass=inetOrgPerson)",
					Attributes: []string{"uid", "mail", "entryUUID"}, Controls: []Control{Paging(10, cookie)}},
					Handlers{Entry: func(e *Entry) error {
						if len(e.First("entryUUID")) != 36 {
							return errors.New("no entryUUID")
						}
						uids = append(uids, string(e.First("UID")))
						return nil
					}})
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if cookie, err = PagingCookie(d); err != nil {
					t.Fatal(err)
				}
				if len(cookie) == 0 {
					break
				}
			}
			if len(uids) != 25 || pages != 3 {
				t.Fatalf("got %d uids in %d pages", len(uids), pages)
			}
			_, err = c.Search(ctx, &SearchRequest{BaseDN: "ou=nowhere," + s.Suffix, Scope: ScopeSub}, Handlers{})
			if !IsCode(err, ResultNoSuchObject) {
				t.Fatalf("no such object: %v", err)
			}
		})
	}
	// Certificate verification is on: a client without the CA fails.
	if _, err := Dial(ctx, s.LDAPSURL, DialOptions{}); err == nil || !IsNetwork(err) {
		t.Fatalf("untrusted ldaps: %v", err)
	}
	if _, err := Dial(ctx, s.URL, DialOptions{StartTLS: true}); err == nil {
		t.Fatal("untrusted starttls succeeded")
	}
}
