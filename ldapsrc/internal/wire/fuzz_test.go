package wire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
)

// The fuzz targets take bytes as a server would send them. Their seed
// corpus (testdata/fuzz/<target>) holds messages captured from slapd (see
// TestCaptureSeeds) plus hand-made edge cases; `go test` runs every seed as
// a normal test, `scripts/fuzz-ldap.sh` fuzzes.

// replayConn is a net.Conn whose reads return a fixed byte stream and whose
// writes are discarded.
type replayConn struct{ r *bytes.Reader }

func (c *replayConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *replayConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

// replay returns a Conn that reads stream as the server's answers.
func replay(stream []byte) *Conn {
	nc := &replayConn{r: bytes.NewReader(stream)}
	return &Conn{nc: nc, r: bufio.NewReaderSize(nc, 4096), Host: "replay"}
}

// useEntry touches everything a caller reads from an entry.
func useEntry(t *testing.T, e *Entry) {
	_ = e.Get("cn")
	_ = e.First("objectGUID")
	for _, a := range e.Attrs {
		if len(a.Vals) > 0 && a.Vals[0] == nil {
			t.Fatalf("attribute %q: nil value", a.Name)
		}
	}
	for i := range e.Controls {
		if e.Controls[i].OID == OIDSyncState {
			if st, uuid, _, err := SyncState(&e.Controls[i]); err == nil && (st < SyncPresent || st > SyncDelete || len(uuid) != 16) {
				t.Fatalf("sync state %d uuid %x accepted", st, uuid)
			}
		}
	}
}

// FuzzSearch is message framing and dispatch: the stream is the server's
// side of up to three searches on one connection.
func FuzzSearch(f *testing.F) {
	for _, s := range seedStreams() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := replay(stream)
		ctx := context.Background()
		h := Handlers{
			Entry:     func(e *Entry) error { useEntry(t, e); return nil },
			Reference: func([]string) error { return nil },
			Intermediate: func(oid string, v []byte) error {
				if oid == OIDSyncInfo {
					_, _ = ParseSyncInfo(v)
				}
				return nil
			},
		}
		for i := 0; i < 3; i++ {
			d, err := c.Search(ctx, &SearchRequest{BaseDN: "dc=example,dc=test", Filter: "(objectClass=*)"}, h)
			if err != nil {
				if IsNetwork(err) {
					// A broken connection stays broken.
					if _, err2 := c.Search(ctx, &SearchRequest{BaseDN: "x"}, h); !IsNetwork(err2) {
						t.Fatalf("search after %v: %v", err, err2)
					}
					return
				}
				var re *ResultError
				if !errors.As(err, &re) && d != nil {
					t.Fatalf("done %+v with error %v", d, err)
				}
			}
			if d != nil {
				_, _ = PagingCookie(d)
				_, _, _ = DirSyncResponse(d)
				if sd := d.Control(OIDSyncDone); sd != nil {
					_, _, _ = SyncDone(sd)
				}
			}
		}
	})
}

// FuzzEntry is entry decoding: the content of a SearchResultEntry and its
// message's controls, split at the first byte's position. Where asn1-ber
// (go-ldap's decoder) also reads the entry, both must agree.
func FuzzEntry(f *testing.F) {
	for _, s := range seedEntries() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		split := int(data[0])
		data = data[1:]
		split = min(split, len(data))
		content, controls := data[:len(data)-split], data[len(data)-split:]
		if split == 0 {
			controls = nil
		}
		var e Entry
		if err := e.parse(content, controls); err != nil {
			return
		}
		useEntry(t, &e)
		// Round trip: re-encoded, the entry reads the same.
		var attrs [][]byte
		for _, a := range e.Attrs {
			var vals [][]byte
			for _, v := range a.Vals {
				vals = append(vals, tlvBytes(tagOctetString, v))
			}
			attrs = append(attrs, tlvBytes(tagSequence, tlvBytes(tagOctetString, a.Name), tlvBytes(tagSet, vals...)))
		}
		enc := append(tlvBytes(tagOctetString, e.DN), tlvBytes(tagSequence, attrs...)...)
		var e2 Entry
		if err := e2.parse(enc, nil); err != nil {
			t.Fatalf("re-encoded entry: %v", err)
		}
		if !sameEntry(&e, &e2) {
			t.Fatalf("round trip changed the entry")
		}
		// Differential: asn1-ber's tree of the same bytes.
		pkt, err := ber.DecodePacketErr(tlvBytes(appSearchEntry, content))
		if err != nil || len(pkt.Children) != 2 {
			return
		}
		if !bytes.Equal(pkt.Children[0].Data.Bytes(), e.DN) {
			t.Fatalf("dn %q, asn1-ber %q", e.DN, pkt.Children[0].Data.Bytes())
		}
		if len(pkt.Children[1].Children) != len(e.Attrs) {
			return
		}
		for i, pa := range pkt.Children[1].Children {
			if len(pa.Children) != 2 || !bytes.Equal(pa.Children[0].Data.Bytes(), e.Attrs[i].Name) || len(pa.Children[1].Children) != len(e.Attrs[i].Vals) {
				continue
			}
			for j, pv := range pa.Children[1].Children {
				if !bytes.Equal(pv.Data.Bytes(), e.Attrs[i].Vals[j]) {
					t.Fatalf("%s[%d] = %q, asn1-ber %q", e.Attrs[i].Name, j, e.Attrs[i].Vals[j], pv.Data.Bytes())
				}
			}
		}
	})
}

func sameEntry(a, b *Entry) bool {
	if !bytes.Equal(a.DN, b.DN) || len(a.Attrs) != len(b.Attrs) {
		return false
	}
	for i := range a.Attrs {
		if !bytes.Equal(a.Attrs[i].Name, b.Attrs[i].Name) || len(a.Attrs[i].Vals) != len(b.Attrs[i].Vals) {
			return false
		}
		for j := range a.Attrs[i].Vals {
			if !bytes.Equal(a.Attrs[i].Vals[j], b.Attrs[i].Vals[j]) {
				return false
			}
		}
	}
	return true
}

// FuzzControls is control decoding: data is a message's Controls sequence
// (or a syncInfo value); each control is decoded with go-ldap the way the
// source does.
func FuzzControls(f *testing.F) {
	for _, s := range seedControls() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseSyncInfo(data)
		cs, err := parseControls(nil, data)
		if err != nil {
			return
		}
		// Round trip through our encoder.
		if len(cs) > 0 {
			_, inner, _, err := tlv(encodeControls(cs))
			if err != nil {
				t.Fatalf("re-encoded controls: %v", err)
			}
			cs2, err := parseControls(nil, inner)
			if err != nil || len(cs2) != len(cs) {
				t.Fatalf("re-encoded controls: %v (%d, want %d)", err, len(cs2), len(cs))
			}
			for i := range cs {
				if cs[i].OID != cs2[i].OID || cs[i].Critical != cs2[i].Critical || !bytes.Equal(cs[i].Value, cs2[i].Value) || (cs[i].Value == nil) != (cs2[i].Value == nil) {
					t.Fatalf("control %d: %+v became %+v", i, cs[i], cs2[i])
				}
			}
		}
		d := &Done{Controls: cs}
		_, _ = PagingCookie(d)
		_, _, _ = DirSyncResponse(d)
		for i := range cs {
			_, _ = decode(&cs[i])
			switch cs[i].OID {
			case OIDSyncState:
				_, _, _, _ = SyncState(&cs[i])
			case OIDSyncDone:
				_, _, _ = SyncDone(&cs[i])
			}
		}
	})
}
