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

// The controls decoded with go-ldap give the values the source relies on.
func TestDecodeControls(t *testing.T) {
	vals := syncInfoValues()
	for i, want := range []SyncInfo{
		{Kind: InfoNewCookie, Cookie: []byte("rid=000,csn=20260101000000.000000Z#000000#000#000000"), RefreshDone: true},
		{Kind: InfoRefreshDelete, Cookie: []byte("cookie-1"), RefreshDone: true},
		{Kind: InfoRefreshPresent, Cookie: []byte("cookie-2"), RefreshDone: false},
		{Kind: InfoRefreshPresent, RefreshDone: true},
		{Kind: InfoIDSet, Cookie: []byte("cookie-3"), RefreshDeletes: true, UUIDs: [][]byte{[]byte(uuid16), []byte(uuid16)}},
		{Kind: InfoIDSet},
	} {
		got, err := ParseSyncInfo(vals[i])
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if fmt.Sprint(*got) != fmt.Sprint(want) {
			t.Errorf("%d: %+v, want %+v", i, *got, want)
		}
	}
	ss := syncStateCtl(int64(SyncModify), "ck")
	st, uuid, ck, err := SyncState(&ss)
	if err != nil || st != SyncModify || string(uuid) != uuid16 || string(ck) != "ck" {
		t.Errorf("sync state: %d %x %q %v", st, uuid, ck, err)
	}
	bad := Control{OID: OIDSyncState, Value: seq(berInt(tagEnumerated, 7), octets(uuid16))}
	if _, _, _, err := SyncState(&bad); err == nil {
		t.Error("sync state 7 accepted")
	}
	d := &Done{Controls: []Control{
		{OID: OIDPaging, Value: seq(berInt(tagInteger, 0), octets("next"))},
		{OID: OIDDirSync, Value: seq(berInt(tagInteger, 1), berInt(tagInteger, 0), octets("ds"))},
		{OID: OIDSyncDone, Value: seq(octets("done"), berBool(true))},
	}}
	if c, err := PagingCookie(d); err != nil || string(c) != "next" {
		t.Errorf("paging: %q %v", c, err)
	}
	if more, c, err := DirSyncResponse(d); err != nil || !more || string(c) != "ds" {
		t.Errorf("dirsync: %v %q %v", more, c, err)
	}
	if c, del, err := SyncDone(d.Control(OIDSyncDone)); err != nil || !del || string(c) != "done" {
		t.Errorf("sync done: %q %v %v", c, del, err)
	}
}

// Lengths from the wire are bounded before anything is allocated.
func TestReadBoundsLengths(t *testing.T) {
	for _, b := range [][]byte{
		{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff},       // 2 GB
		{0x30, 0x84, 0xff, 0xff, 0xff, 0xff},       // would be negative in 32 bits
		{0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00}, // 5 length bytes
		{0x30, 0x80}, // indefinite
	} {
		if _, _, _, _, err := replay(b).readMessage(); err == nil {
			t.Errorf("%x: no error", b)
		}
	}
	// A plausible length whose bytes never come: no 200 MB buffer.
	c := replay([]byte{0x30, 0x84, 0x0c, 0x80, 0x00, 0x00, 0x02, 0x01, 0x01})
	if _, _, _, _, err := c.readMessage(); err == nil || cap(c.buf) > 2*readBuffer {
		t.Errorf("truncated 200 MB message: %v, buffer %d", err, cap(c.buf))
	}
}
