package wire

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/internal/testsrv/slapd"
)

// Hand-made server messages for the fuzz seeds: every kind the source
// reads, and the malformed shapes the reader must refuse.

func message(id int64, op []byte, controls ...Control) []byte {
	parts := [][]byte{berInt(tagInteger, id), op}
	if cb := encodeControls(controls); cb != nil {
		parts = append(parts, cb)
	}
	return tlvBytes(tagSequence, parts...)
}

func seq(parts ...[]byte) []byte { return tlvBytes(tagSequence, parts...) }
func octets(s string) []byte     { return berString(tagOctetString, s) }

func entryOp(dn string, attrs ...[]byte) []byte {
	return tlvBytes(appSearchEntry, octets(dn), seq(attrs...))
}

func attr(name string, vals ...string) []byte {
	var vs [][]byte
	for _, v := range vals {
		vs = append(vs, octets(v))
	}
	return seq(octets(name), tlvBytes(tagSet, vs...))
}

func doneOp(code int64) []byte {
	return tlvBytes(appSearchDone, berInt(tagEnumerated, code), octets(""), octets(""))
}

var uuid16 = "\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef"

func syncStateCtl(state int64, cookie string) Control {
	return Control{OID: OIDSyncState, Value: seq(berInt(tagEnumerated, state), octets(uuid16), octets(cookie))}
}

func syncInfoValues() [][]byte {
	return [][]byte{
		berString(0x80, "rid=000,csn=20260101000000.000000Z#000000#000#000000"),
		tlvBytes(0xa1, octets("cookie-1"), berBool(true)),
		tlvBytes(0xa2, octets("cookie-2"), berBool(false)),
		tlvBytes(0xa2),
		tlvBytes(0xa3, octets("cookie-3"), berBool(true), tlvBytes(tagSet, octets(uuid16), octets(uuid16))),
		tlvBytes(0xa3, tlvBytes(tagSet)),
	}
}

func seedControls() [][]byte {
	ctls := [][]Control{
		{{OID: OIDPaging, Value: seq(berInt(tagInteger, 0), octets("page-cookie"))}},
		{{OID: OIDPaging, Value: seq(berInt(tagInteger, 0), octets(""))}},
		{syncStateCtl(1, "c1"), {OID: OIDManageDsaIT, Critical: true}},
		{syncStateCtl(3, "")},
		{{OID: OIDSyncDone, Value: seq(octets("done-cookie"), berBool(true))}},
		{{OID: OIDSyncDone, Value: seq()}},
		{{OID: OIDDirSync, Critical: true, Value: seq(berInt(tagInteger, 1), berInt(tagInteger, 0), octets("dirsync-cookie"))}},
		{{OID: OIDNotification}},
	}
	var out [][]byte
	for _, cs := range ctls {
		_, inner, _, _ := tlv(encodeControls(cs))
		out = append(out, inner)
	}
	out = append(out, syncInfoValues()...)
	// Malformed: lengths too long, indefinite, truncated, wrong tags.
	out = append(out,
		[]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x04, 0x01, 0x31},
		[]byte{0x30, 0x80, 0x04, 0x01, 0x31, 0x00, 0x00},
		[]byte{0x30, 0x05, 0x04, 0x10, 0x31},
		seq(octets(OIDSyncState), octets("\x30\x03\x0a\x01\x07")),
		seq(octets(OIDPaging), octets("\x30\x02\x02\x00")),
	)
	return out
}

func seedEntries() [][]byte {
	entries := [][]byte{
		entryOp("uid=alice,ou=people,dc=example,dc=test", attr("uid", "alice"), attr("mail", "alice@example.test"), attr("memberOf", "cn=a", "cn=b")),
		entryOp("CN=Bob,OU=Staff,DC=example,DC=test", attr("objectGUID", uuid16), attr("userAccountControl", "514"), attr("member;range=0-*")),
		entryOp(""),
	}
	var out [][]byte
	for _, e := range entries {
		_, content, _, _ := tlv(e)
		out = append(out, append([]byte{0}, content...))
		_, ctl, _, _ := tlv(encodeControls([]Control{syncStateCtl(2, "c")}))
		out = append(out, append(append([]byte{byte(len(ctl))}, content...), ctl...))
	}
	return append(out,
		[]byte{0, 0x04, 0x84, 0x7f, 0xff, 0xff, 0xff},
		[]byte{0, 0x04, 0x00, 0x30, 0x06, 0x30, 0x04, 0x04, 0x00, 0x31, 0x05},
	)
}

func seedStreams() [][]byte {
	var out [][]byte
	join := func(ms ...[]byte) []byte {
		return []byte(strings.Join(func() []string {
			var s []string
			for _, m := range ms {
				s = append(s, string(m))
			}
			return s
		}(), ""))
	}
	// A paged search, a syncrepl refresh, a DirSync search.
	var sync [][]byte
	for _, v := range syncInfoValues() {
		sync = append(sync, message(2, tlvBytes(appIntermediate, berString(0x80, OIDSyncInfo), tlvBytes(0x81, v))))
	}
	out = append(out, join(
		message(1, entryOp("uid=a,dc=example,dc=test", attr("uid", "a"))),
		message(99, entryOp("uid=stale,dc=example,dc=test")),
		message(1, tlvBytes(appSearchReference, octets("ldap://other/dc=example,dc=test"))),
		message(1, doneOp(0), Control{OID: OIDPaging, Value: seq(berInt(tagInteger, 0), octets("ck"))}),
		message(2, entryOp("uid=b,dc=example,dc=test", attr("uid", "b")), syncStateCtl(1, "c")),
		join(sync...),
		message(2, doneOp(0), Control{OID: OIDSyncDone, Value: seq(octets("done"))}),
		message(3, entryOp("CN=c,DC=example,DC=test", attr("objectGUID", uuid16), attr("isDeleted", "TRUE"))),
		message(3, doneOp(0), Control{OID: OIDDirSync, Value: seq(berInt(tagInteger, 0), berInt(tagInteger, 0), octets("ds"))}),
	))
	// Errors: a result code with a referral, a notice of disconnection.
	out = append(out, join(
		message(1, tlvBytes(appSearchDone, berInt(tagEnumerated, 10), octets(""), octets("referral"), tlvBytes(0xa3, octets("ldap://x/")))),
		message(0, tlvBytes(appExtendedResponse, berInt(tagEnumerated, 52), octets(""), octets("shutting down"), berString(0x8a, "1.3.6.1.4.1.1466.20036"))),
	))
	// Malformed framing: oversized, indefinite and 5-byte lengths, a
	// negative message id, an unknown operation, a truncated message.
	out = append(out,
		[]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02},
		[]byte{0x30, 0x84, 0x0f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01},
		[]byte{0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00},
		[]byte{0x30, 0x85, 0x01, 0x00, 0x00, 0x00, 0x00},
		message(-1, doneOp(0)),
		message(1, tlvBytes(0x7f, octets("x"))),
		message(1, entryOp("uid=a", attr("uid", "a")))[:12],
	)
	return out
}

// TestCaptureSeeds records what slapd sends for a paged search and a
// syncrepl refresh and writes it, with the hand-made seeds, to
// testdata/fuzz. Run it with WIRE_CAPTURE_SEEDS=1 after changing the
// reader; the written files are checked in.
func TestCaptureSeeds(t *testing.T) {
	if os.Getenv("WIRE_CAPTURE_SEEDS") == "" {
		t.Skip("set WIRE_CAPTURE_SEEDS=1 to rewrite testdata/fuzz")
	}
	var ldif strings.Builder
	cfg := &slapd.Config{Suffix: slapd.DefaultSuffix}
	for i := 0; i < 3; i++ {
		ldif.WriteString(cfg.User(fmt.Sprintf("u%d", i)))
	}
	ldif.WriteString(cfg.Group("g", cfg.UserDN("u0"), cfg.UserDN("u1")))
	s := slapd.Start(t, slapd.Options{LDIF: ldif.String()})
	ctx := context.Background()
	capture := func(run func(c *Conn) error) []byte {
		c, err := Dial(ctx, s.URL, DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Bind(ctx, s.AdminDN, slapd.AdminPassword); err != nil {
			t.Fatal(err)
		}
		var rec strings.Builder
		c.r = bufio.NewReaderSize(io.TeeReader(c.nc, &rec), readBuffer)
		if err := run(c); err != nil {
			t.Fatal(err)
		}
		return []byte(rec.String())
	}
	all := Handlers{Entry: func(*Entry) error { return nil }, Intermediate: func(string, []byte) error { return nil }}
	paged := capture(func(c *Conn) error {
		var cookie []byte
		for i := 0; i < 2; i++ {
			d, err := c.Search(ctx, &SearchRequest{BaseDN: s.Suffix, Scope: ScopeSub, Controls: []Control{Paging(2, cookie)}}, all)
			if err != nil {
				return err
			}
			if cookie, err = PagingCookie(d); err != nil {
				return err
			}
		}
		return nil
	})
	syncrepl := capture(func(c *Conn) error {
		_, err := c.Search(ctx, &SearchRequest{BaseDN: s.Suffix, Scope: ScopeSub, Attributes: []string{"*", "+"},
			Controls: []Control{SyncRequest(SyncRefreshOnly, nil, false)}}, all)
		return err
	})
	write := func(target string, seeds ...[]byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, b := range seeds {
			name := fmt.Sprintf("%x", sha256.Sum256(b))[:16]
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("FuzzSearch", append(seedStreams(), paged, syncrepl)...)
	// Entries and controls out of the captured syncrepl stream.
	var entries, controls [][]byte
	c := replay(syncrepl)
	for {
		_, op, content, ctl, err := c.readMessage()
		if err != nil {
			break
		}
		if op == appSearchEntry {
			entries = append(entries, append([]byte{byte(min(len(ctl), 255))}, append(append([]byte{}, content...), ctl...)...))
		}
		if ctl != nil {
			controls = append(controls, append([]byte{}, ctl...))
		}
	}
	write("FuzzEntry", append(seedEntries(), entries...)...)
	write("FuzzControls", append(seedControls(), controls...)...)
}
