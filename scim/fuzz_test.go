package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Fuzz targets: bad input must never crash the server nor corrupt what it
// stores. Their seeds run as ordinary tests; fuzz with e.g.
//
//	go test ./scim -run '^$' -fuzz FuzzPatch -fuzztime 60s

var filterSeeds = []string{
	`userName eq "bjensen"`,
	`UserName EQ "Bjensen"`,
	`externalId eq jyoung`,
	`emails[type eq "work"].value eq "x@y"`,
	`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
	`name.familyName co "O'Malley"`,
	`title pr and userType eq "Employee"`,
	`not (userName eq "a") and (active eq true or active eq "False")`,
	`meta.lastModified gt "2011-05-13T04:42:34Z" and meta.lastModified le 2030-01-01T00:00:00Z`,
	`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`,
	`members[value eq "u1"]`,
	`name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)`,
	`userName eq "\u00e9\"\\"`,
	`a eq 1.5e3 or b ge -2 or c eq null or d eq true`,
	`((((userName pr))))`,
	`emails[not (type eq "work")]`,
	`userName eq`, `(`, `)`, `a[`, `a[b eq "c"`, `a eq "unterminated`, `not`, `urn:x:y eq 1`, `a..b eq 1`, ``,
}

func FuzzFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	s := testServer(f)
	doc := map[string]any{
		"id": "1", "userName": "bjensen", "active": true, "externalId": "e",
		"name":            map[string]any{"familyName": "O'Malley"},
		"emails":          []any{map[string]any{"value": "x@y", "type": "work", "primary": true}, "stray string"},
		"meta":            map[string]any{"created": "2020-01-01T00:00:00Z", "lastModified": "not a date"},
		URNEnterpriseUser: map[string]any{"manager": map[string]any{"value": "x"}},
	}
	f.Fuzz(func(t *testing.T, filter string) {
		for _, rt := range []*resourceType{s.users, s.groups} {
			e, err := parseFilter(filter, rt.urns)
			if err != nil {
				continue
			}
			evalCtx{rt: rt}.match(e, doc)
		}
	})
}

var patchSeeds = []string{
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq"}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"manager","value":[{"$ref":"http://x/Users/1","value":"1"}]}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u1"}]}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"u2\"]"},{"op":"add","path":"members","value":"u9"}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"x","displayName":"G"}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"department":"x"}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"userName","value":"taken"}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"emails","value":{"value":[1,{"a":null}],"primary":"true"}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"emails[type eq \"work\"].primary"},{"op":"replace","path":"name","value":null}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[value co \"x\"]","value":{"type":"other"}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"displayName","value":{"nested":[[[]]]}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","value":{"name.givenName.x":"1","emails[":2}}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"userName"}]}`,
	`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]}`,
	`{"Operations":[{"op":"add"}]}`, `[]`, `{`, `null`, ``,
}

// FuzzPatch sends PATCH bodies to a user and a group over the real handler:
// the answer is a 2xx or a SCIM 4xx error, a rejected PATCH changes
// nothing, and what is stored always reads back as a valid resource.
func FuzzPatch(f *testing.F) {
	for _, s := range patchSeeds {
		f.Add([]byte(s))
	}
	e := newEnv(f, envOpt{quiet: true})
	h := e.srv.Handler()
	uid := e.createUser("fuzz.user", map[string]any{"externalId": "fx",
		URNEnterpriseUser: map[string]any{"department": "D", "manager": map[string]any{"value": "m"}}})
	e.createUser("taken", nil)
	gid := e.createGroup("fuzz group", uid)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/Users/" + uid, "/Groups/" + gid} {
			before := serve(h, "GET", path, nil)
			r := serve(h, "PATCH", path, body)
			if r.Code >= 500 {
				t.Fatalf("PATCH %s: %d %s", path, r.Code, r.Body)
			}
			after := serve(h, "GET", path, nil)
			if after.Code != 200 {
				t.Fatalf("GET after PATCH: %d %s", after.Code, after.Body)
			}
			if r.Code >= 400 {
				assertSCIMError(t, r)
				if after.Header().Get("ETag") != before.Header().Get("ETag") {
					t.Fatalf("rejected PATCH (%d) changed the resource", r.Code)
				}
				continue
			}
			checkStored(t, e, path, after.Body.Bytes())
			// Restore the starting state for the next input.
			restore(t, h, path, before.Body.Bytes())
		}
	})
}

var resourceSeeds = []string{
	`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],"externalId":"jyoung","userName":"jyoung@testuser.com","active":true,"addresses":null,"displayName":"Joy Young","emails":[{"type":"work","value":"jyoung@Contoso.com","primary":true}],"meta":{"resourceType":"User"},"name":{"familyName":"Young","givenName":"Joy"},"phoneNumbers":null,"department":null,"manager":null}`,
	`{"userName":"emp1","active":"True","emails":[{"Primary":true,"type":"work","value":"a@b"}],"roles":[],"password":"x"}`,
	`{"userName":"e","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m","displayName":"ro"},"employeeNumber":"1"}}`,
	`{"displayName":"G","members":[{"value":"a","display":"A"},"b",{"$ref":null}]}`,
	`{"userName":"x","emails":{"value":"single"},"addresses":[{"country":null}]}`,
	`{"userName":"x","userName":"y"}`, `{"userName":"x","USERNAME":"y"}`,
	`{"userName":["x"]}`, `{"userName":"x","active":2}`, `{"userName":"x","x509Certificates":[{"value":"not base64!"}]}`,
	`{"userName":"x","meta":{"created":"yesterday"},"id":5}`, `{"acve": tre}`, `[]`, `null`, ``,
}

// FuzzResource POSTs and PUTs resource bodies: never a 5xx, and whatever is
// accepted reads back as a valid resource.
func FuzzResource(f *testing.F) {
	for _, s := range resourceSeeds {
		f.Add([]byte(s))
	}
	e := newEnv(f, envOpt{quiet: true})
	h := e.srv.Handler()
	uid := e.createUser("put.target", nil)
	gid := e.createGroup("put group")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, c := range []struct{ method, path string }{
			{"POST", "/Users"}, {"POST", "/Groups"}, {"PUT", "/Users/" + uid}, {"PUT", "/Groups/" + gid},
		} {
			r := serve(h, c.method, c.path, body)
			if r.Code >= 500 {
				t.Fatalf("%s %s: %d %s", c.method, c.path, r.Code, r.Body)
			}
			if r.Code >= 400 {
				assertSCIMError(t, r)
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(r.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s %s answered %d with bad JSON: %v", c.method, c.path, r.Code, err)
			}
			id, _ := m["id"].(string)
			p := c.path
			if c.method == "POST" {
				p += "/" + id
			}
			g := serve(h, "GET", p, nil)
			if g.Code != 200 {
				t.Fatalf("GET %s after %s: %d", p, c.method, g.Code)
			}
			checkStored(t, e, p, g.Body.Bytes())
			if c.method == "POST" {
				serve(h, "DELETE", p, nil)
			}
		}
	})
}

func serve(h http.Handler, method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/scim/corp/v2"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func assertSCIMError(t *testing.T, r *httptest.ResponseRecorder) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body.Bytes(), &m); err != nil || m["status"] == nil {
		t.Fatalf("%d without a SCIM error body: %s", r.Code, r.Body)
	}
}

// checkStored checks that the stored record of the resource at path
// decodes and re-validates to itself.
func checkStored(t *testing.T, e *testEnv, path string, got []byte) {
	t.Helper()
	rt, id := e.srv.users, strings.TrimPrefix(path, "/Users/")
	if strings.HasPrefix(path, "/Groups/") {
		rt, id = e.srv.groups, strings.TrimPrefix(path, "/Groups/")
	}
	rec, _, err := e.srv.get(context.Background(), rt, id)
	if err != nil {
		t.Fatalf("stored %s: %v", path, err)
	}
	again, err := e.srv.validateBody(rt, jsonClone(rec.Attrs).(map[string]any))
	if err != nil {
		t.Fatalf("stored %s no longer validates: %v (%v)", path, err, rec.Attrs)
	}
	if !jsonEqual(again, rec.Attrs) {
		t.Fatalf("stored %s is not canonical:\n%v\n%v", path, rec.Attrs, again)
	}
	var m map[string]any
	if err := json.Unmarshal(got, &m); err != nil || m["id"] != id {
		t.Fatalf("GET %s: %s", path, got)
	}
}

// restore puts a resource back as it was (a PUT of its previous form).
func restore(t *testing.T, h http.Handler, path string, prev []byte) {
	t.Helper()
	if r := serve(h, "PUT", path, prev); r.Code != 200 {
		t.Fatalf("restore %s: %d %s", path, r.Code, r.Body)
	}
}
