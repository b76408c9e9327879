package ldapdir_test

import (
	"net"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/demo/ldapdir"
	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

func message(id int64, op *ber.Packet) []byte {
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAPMessage")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	env.AppendChild(op)
	return env.Bytes()
}

func rootDSERequest(t *testing.T) *ber.Packet {
	t.Helper()
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "Search")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "base"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "scope"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, 0, "deref"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "size"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "time"))
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "typesOnly"))
	f, err := ldap.CompileFilter("(objectClass=*)")
	if err != nil {
		t.Fatal(err)
	}
	req.AppendChild(f)
	req.AppendChild(ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "attributes"))
	return req
}

// An Abandon request gets no answer and leaves the connection serving
// (gldap alone would drop the connection).
func TestAbandonKeepsTheConnection(t *testing.T) {
	d, _ := start(t, ldapdir.Options{})
	c, err := net.Dial("tcp", d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	abandon := ber.NewInteger(ber.ClassApplication, ber.TypePrimitive, ldap.ApplicationAbandonRequest, int64(1), "Abandon")
	if _, err := c.Write(append(message(1, abandon), message(2, rootDSERequest(t))...)); err != nil {
		t.Fatal(err)
	}
	var tags []ber.Tag
	for len(tags) == 0 || tags[len(tags)-1] != ldap.ApplicationSearchResultDone {
		p, err := ber.ReadPacket(c)
		if err != nil {
			t.Fatalf("after an abandon: %v (responses so far %v)", err, tags)
		}
		if id := p.Children[0].Value.(int64); id != 2 {
			t.Fatalf("a response to message %d", id)
		}
		tags = append(tags, p.Children[1].Tag)
	}
	if len(tags) != 2 || tags[0] != ldap.ApplicationSearchResultEntry {
		t.Fatalf("responses: %v", tags)
	}
}

// Close does not wait for clients that keep their connection open.
func TestCloseWithOpenConnections(t *testing.T) {
	d, err := ldapdir.Start(ldapdir.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, d, true)
	raw, err := net.Dial("tcp", d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	done := make(chan error, 1)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close is still waiting for idle clients")
	}
	if _, err := c.Search(search("", ldap.ScopeBaseObject, "(objectClass=*)")); err == nil {
		t.Fatal("a search after Close succeeded")
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", d.Addr(), time.Second); err == nil {
		t.Fatal("still listening after Close")
	}
}
