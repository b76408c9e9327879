package scim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	scimerrors "github.com/elimity-com/scim/errors"
	"go.uber.org/zap"

	"github.com/dirsync/dirsync/state/memstore"
)

func testServer(t testing.TB) *Server {
	t.Helper()
	s, err := New(sourceConfig(t, "corp", fmt.Sprintf("tokens: [%q]", testToken)), memstore.New(memstore.Options{}), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("bad JSON %s: %v", s, err)
	}
	return m
}

func canon(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const baseUser = `{
	"userName": "jdoe", "displayName": "J Doe", "active": true, "externalId": "e1",
	"name": {"givenName": "John", "familyName": "Doe"},
	"emails": [{"value": "j@work.example", "type": "work", "primary": true}, {"value": "j@home.example", "type": "home"}]
}`

const baseGroup = `{"displayName": "Eng", "members": [{"value": "u1", "display": "One"}, {"value": "u2"}, {"value": "u3"}]}`

func TestPatch(t *testing.T) {
	s := testServer(t)
	cases := []struct {
		name  string
		group bool
		ops   string // JSON list of operations
		check map[string]string
		err   scimerrors.ScimType // expected error type, "" for success
	}{
		{name: "replace simple, capitalised op", ops: `[{"op":"Replace","path":"displayName","value":"Johnny"}]`,
			check: map[string]string{"displayName": `"Johnny"`}},
		{name: "string boolean False (Entra)", ops: `[{"op":"Replace","path":"active","value":"False"}]`,
			check: map[string]string{"active": `false`}},
		{name: "boolean", ops: `[{"op":"replace","path":"active","value":false}]`,
			check: map[string]string{"active": `false`}},
		{name: "not a boolean", ops: `[{"op":"replace","path":"active","value":"nope"}]`, err: scimerrors.ScimTypeInvalidValue},
		{name: "path-less with dotted and URN keys (Entra)", ops: `[{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]`,
			check: map[string]string{"displayName": `"Bjfe"`, "name": `{"familyName":"Unua","givenName":"Kkom"}`, URNEnterpriseUser: `{"employeeNumber":"Aklq"}`}},
		{name: "path-less active false (Okta)", ops: `[{"op":"replace","value":{"active":false}}]`,
			check: map[string]string{"active": `false`, "userName": `"jdoe"`}},
		{name: "path-less with id and unknown keys ignored", ops: `[{"op":"replace","value":{"id":"x","bogus":1,"title":"T"}}]`,
			check: map[string]string{"title": `"T"`}},
		{name: "path-less complex merges", ops: `[{"op":"add","value":{"name":{"middleName":"Q"}}}]`,
			check: map[string]string{"name": `{"familyName":"Doe","givenName":"John","middleName":"Q"}`}},
		{name: "path-less extension object", ops: `[{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Ops"}}}]`,
			check: map[string]string{URNEnterpriseUser: `{"department":"Ops"}`}},
		{name: "enterprise URN path", ops: `[{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"Eqpj"}]`,
			check: map[string]string{URNEnterpriseUser: `{"employeeNumber":"Eqpj"}`}},
		{name: "enterprise manager sub-attribute path", ops: `[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value","value":"boss"}]`,
			check: map[string]string{URNEnterpriseUser: `{"manager":{"value":"boss"}}`}},
		{name: "bare manager with a one-element list (Entra example 5)", ops: `[{"op":"Add","path":"manager","value":[{"$ref":"http://x/Users/b","value":"b"}]}]`,
			check: map[string]string{URNEnterpriseUser: `{"manager":{"$ref":"http://x/Users/b","value":"b"}}`}},
		{name: "core URN-prefixed path", ops: `[{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:userName","value":"jd2"}]`,
			check: map[string]string{"userName": `"jd2"`}},
		{name: "custom extension ignored", ops: `[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:Custom:2.0:User:shoeSize","value":"44"}]`,
			check: map[string]string{"userName": `"jdoe"`}},
		{name: "unknown attribute path", ops: `[{"op":"add","path":"shoeSize","value":"44"}]`, err: scimerrors.ScimTypeInvalidPath},
		{name: "read-only path", ops: `[{"op":"replace","path":"id","value":"x"}]`, err: scimerrors.ScimTypeMutability},
		{name: "emails work value replaced (Entra)", ops: `[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@work.example"}]`,
			check: map[string]string{"emails": `[{"primary":true,"type":"work","value":"new@work.example"},{"type":"home","value":"j@home.example"}]`}},
		{name: "emails work value created when missing (Entra)", ops: `[{"op":"remove","path":"emails"},{"op":"replace","path":"emails[type eq \"work\"].value","value":"w@x.example"}]`,
			check: map[string]string{"emails": `[{"type":"work","value":"w@x.example"}]`}},
		{name: "add email with primary clears the old primary", ops: `[{"op":"add","path":"emails","value":[{"value":"p@x.example","type":"other","primary":true}]}]`,
			check: map[string]string{"emails": `[{"primary":false,"type":"work","value":"j@work.example"},{"type":"home","value":"j@home.example"},{"primary":true,"type":"other","value":"p@x.example"}]`}},
		{name: "add an existing email is a no-op", ops: `[{"op":"add","path":"emails","value":{"value":"J@HOME.example","type":"home"}}]`,
			check: map[string]string{"emails": `[{"primary":true,"type":"work","value":"j@work.example"},{"type":"home","value":"J@HOME.example"}]`}},
		{name: "replace all emails", ops: `[{"op":"replace","path":"emails","value":[{"value":"only@x.example"}]}]`,
			check: map[string]string{"emails": `[{"value":"only@x.example"}]`}},
		{name: "remove filtered email", ops: `[{"op":"remove","path":"emails[type eq \"home\"]"}]`,
			check: map[string]string{"emails": `[{"primary":true,"type":"work","value":"j@work.example"}]`}},
		{name: "remove filtered sub-attribute", ops: `[{"op":"remove","path":"emails[type eq \"work\"].primary"}]`,
			check: map[string]string{"emails": `[{"type":"work","value":"j@work.example"},{"type":"home","value":"j@home.example"}]`}},
		{name: "replace filtered without a match and no eq to build from", ops: `[{"op":"replace","path":"emails[value co \"zzz\"].type","value":"x"}]`,
			err: scimerrors.ScimTypeNoTarget},
		{name: "remove sub-attribute", ops: `[{"op":"remove","path":"name.givenName"}]`,
			check: map[string]string{"name": `{"familyName":"Doe"}`}},
		{name: "remove whole complex", ops: `[{"op":"remove","path":"name"}]`,
			check: map[string]string{"name": `null`}},
		{name: "add sub-attribute creates the complex", ops: `[{"op":"remove","path":"name"},{"op":"add","path":"name.familyName","value":"New"}]`,
			check: map[string]string{"name": `{"familyName":"New"}`}},
		{name: "replace with null clears", ops: `[{"op":"replace","path":"displayName","value":null}]`,
			check: map[string]string{"displayName": `null`}},
		{name: "remove without path", ops: `[{"op":"remove"}]`, err: scimerrors.ScimTypeNoTarget},
		{name: "path-less add needs an object", ops: `[{"op":"add","value":"x"}]`, err: scimerrors.ScimTypeInvalidValue},
		{name: "bad op", ops: `[{"op":"move","path":"title","value":"x"}]`, err: scimerrors.ScimTypeInvalidSyntax},
		{name: "bad path", ops: `[{"op":"add","path":"emails[type eq","value":"x"}]`, err: scimerrors.ScimTypeInvalidPath},
		{name: "filter on a single-valued attribute", ops: `[{"op":"add","path":"name[givenName eq \"x\"]","value":"x"}]`, err: scimerrors.ScimTypeInvalidPath},
		{name: "removing userName fails validation", ops: `[{"op":"remove","path":"userName"}]`, err: scimerrors.ScimTypeInvalidValue},
		{name: "failed op leaves nothing applied", ops: `[{"op":"replace","path":"title","value":"T"},{"op":"replace","path":"active","value":"nope"}]`, err: scimerrors.ScimTypeInvalidValue},
		{name: "password accepted, not kept", ops: `[{"op":"replace","path":"password","value":"Secr3t"}]`,
			check: map[string]string{"password": `null`}},
		{name: "externalId replaced", ops: `[{"op":"Replace","path":"externalId","value":"Eqpj"}]`,
			check: map[string]string{"externalId": `"Eqpj"`}},

		// Groups.
		{name: "add members", group: true, ops: `[{"op":"Add","path":"members","value":[{"$ref":null,"value":"u4"}]}]`,
			check: map[string]string{"members": `[{"display":"One","value":"u1"},{"value":"u2"},{"value":"u3"},{"value":"u4"}]`}},
		{name: "add an existing member is a no-op", group: true, ops: `[{"op":"add","path":"members","value":[{"value":"u2"}]}]`,
			check: map[string]string{"members": `[{"display":"One","value":"u1"},{"value":"u2"},{"value":"u3"}]`}},
		{name: "add member as a plain string (Microsoft collection)", group: true, ops: `[{"op":"add","path":"members","value":"u9"}]`,
			check: map[string]string{"members": `[{"display":"One","value":"u1"},{"value":"u2"},{"value":"u3"},{"value":"u9"}]`}},
		{name: "member displayName kept as display", group: true, ops: `[{"op":"add","path":"members","value":[{"displayName":"new User","value":"u5"}]}]`,
			check: map[string]string{"members": `[{"display":"One","value":"u1"},{"value":"u2"},{"value":"u3"},{"display":"new User","value":"u5"}]`}},
		{name: "remove members with a value list removes only those (Entra)", group: true, ops: `[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u2"},{"value":"nobody"}]}]`,
			check: map[string]string{"members": `[{"display":"One","value":"u1"},{"value":"u3"}]`}},
		{name: "remove member by filter", group: true, ops: `[{"op":"remove","path":"members[value eq \"u1\"]"}]`,
			check: map[string]string{"members": `[{"value":"u2"},{"value":"u3"}]`}},
		{name: "remove absent member is a no-op", group: true, ops: `[{"op":"remove","path":"members[value eq \"zz\"]"}]`,
			check: map[string]string{"members": `[{"display":"One","value":"u1"},{"value":"u2"},{"value":"u3"}]`}},
		{name: "remove all members", group: true, ops: `[{"op":"remove","path":"members"}]`,
			check: map[string]string{"members": `null`}},
		{name: "replace all members", group: true, ops: `[{"op":"replace","path":"members","value":[{"value":"a"},{"value":"b"}]}]`,
			check: map[string]string{"members": `[{"value":"a"},{"value":"b"}]`}},
		{name: "rename with id in value (Okta)", group: true, ops: `[{"op":"replace","value":{"id":"abf4","displayName":"Test SCIMv2"}}]`,
			check: map[string]string{"displayName": `"Test SCIMv2"`}},
		{name: "remove and add in one request (Okta)", group: true, ops: `[{"op":"remove","path":"members[value eq \"u3\"]"},{"op":"add","path":"members","value":[{"value":"u7","display":"seven"}]}]`,
			check: map[string]string{"members": `[{"display":"One","value":"u1"},{"value":"u2"},{"display":"seven","value":"u7"}]`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rt, base := s.users, baseUser
			if c.group {
				rt, base = s.groups, baseGroup
			}
			attrs, err := s.validateBody(rt, mustJSON(t, base))
			if err != nil {
				t.Fatal(err)
			}
			before := canon(t, attrs)
			ops, err := decodePatch([]byte(`{"schemas":["` + urnPatchOp + `"],"Operations":` + c.ops + `}`))
			var got map[string]any
			if err == nil {
				got, err = s.patched(rt, attrs, ops)
			}
			if canon(t, attrs) != before {
				t.Fatal("patched modified its input")
			}
			if c.err != "" {
				se, ok := err.(scimerrors.ScimError)
				if !ok || se.ScimType != c.err || se.Status != http.StatusBadRequest {
					t.Fatalf("error %v, want %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range c.check {
				if g := canon(t, got[k]); g != want {
					t.Errorf("%s = %s, want %s", k, g, want)
				}
			}
		})
	}
}

func TestDecodePatch(t *testing.T) {
	for _, b := range []string{
		`{}`, `[]`, `{"schemas":["urn:x"],"Operations":[{"op":"add","path":"title","value":"x"}]}`,
		`{"schemas":["` + urnPatchOp + `"]}`, `{"schemas":["` + urnPatchOp + `"],"Operations":[]}`,
		`{"schemas":["` + urnPatchOp + `"],"Operations":[5]}`,
		`{"schemas":["` + urnPatchOp + `"],"Operations":[{"op":"add","path":7}]}`,
		`{"schemas":"x","Operations":[]}`,
	} {
		if _, err := decodePatch([]byte(b)); err == nil {
			t.Errorf("%s: accepted", b)
		}
	}
	many := `{"schemas":["` + urnPatchOp + `"],"Operations":[` + strings.Repeat(`{"op":"add","path":"title","value":"x"},`, maxPatchOps) + `{"op":"add","path":"title","value":"x"}]}`
	if _, err := decodePatch([]byte(many)); err == nil {
		t.Error("too many operations accepted")
	}
}

func TestPatchOverHTTP(t *testing.T) {
	e := newEnv(t, envOpt{})
	id := e.createUser("patchme", nil)
	r := e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("Replace", "active", "False"))))
	if r.header.Get("ETag") != `W/"2"` {
		t.Fatalf("ETag %q", r.header.Get("ETag"))
	}
	if g := e.must(200, e.do("GET", "/Users/"+id, nil)); g.json["active"] != false {
		t.Fatalf("active not false: %s", g.body)
	}
	// A PATCH that changes nothing does not write (same ETag).
	r = e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("replace", "active", false))))
	if r.header.Get("ETag") != `W/"2"` {
		t.Fatalf("no-op PATCH wrote: ETag %q", r.header.Get("ETag"))
	}
	// Renames through PATCH keep uniqueness.
	other := e.createUser("other", nil)
	e.must(409, e.do("PATCH", "/Users/"+other, patchBody(op("replace", "userName", "PATCHME"))))
	e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("replace", "userName", "renamed"))))
	e.must(204, e.do("PATCH", "/Users/"+other, patchBody(op("replace", "userName", "patchme"))))
	if r := e.must(200, e.do("GET", "/Users?filter=userName+eq+%22RENAMED%22", nil)); r.str("Resources.0.id") != id {
		t.Fatalf("lookup after rename: %s", r.body)
	}
	bad := e.do("PATCH", "/Users/"+id, `{"Operations":[{"op":"add","path":"title","value":"x"}]}`)
	if bad.status != 400 || bad.str("scimType") != "invalidValue" {
		t.Fatalf("PATCH without schemas: %d %s", bad.status, bad.body)
	}
}
