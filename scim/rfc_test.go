package scim

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// primaries returns the values of a user's emails marked primary.
func primaries(e *testEnv, id string) []string {
	e.t.Helper()
	r := e.must(200, e.do("GET", "/Users/"+id, nil))
	var out []string
	for _, el := range asList(r.json["emails"]) {
		m := el.(map[string]any)
		if m["primary"] == true {
			out = append(out, m["value"].(string))
		}
	}
	return out
}

var twoEmails = map[string]any{"emails": []any{
	map[string]any{"value": "w@x.example", "type": "work", "primary": true},
	map[string]any{"value": "h@x.example", "type": "home"},
}}

// RFC 7644 §3.5.2 (replace): setting primary on one value of a
// multi-valued attribute makes the others not primary.
func TestRFC7644_3_5_2_PrimaryReplaceSubAttribute(t *testing.T) {
	e := newEnv(t, envOpt{})
	id := e.createUser("p1", twoEmails)
	e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("replace", `emails[type eq "home"].primary`, true))))
	if got := primaries(e, id); fmt.Sprint(got) != "[h@x.example]" {
		t.Fatalf("primary emails = %v, want only the home one", got)
	}
	// Entra's string boolean works the same.
	e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("replace", `emails[type eq "work"].primary`, "True"))))
	if got := primaries(e, id); fmt.Sprint(got) != "[w@x.example]" {
		t.Fatalf("primary emails = %v, want only the work one", got)
	}
}

// RFC 7644 §3.5.2 and RFC 7643 §2.4: replacing a whole element with a
// primary one, or adding one, leaves it the only primary value.
func TestRFC7644_3_5_2_PrimaryReplaceElementAndAdd(t *testing.T) {
	e := newEnv(t, envOpt{})
	id := e.createUser("p2", twoEmails)
	e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("replace", `emails[type eq "home"]`,
		map[string]any{"value": "h2@x.example", "type": "home", "primary": true}))))
	if got := primaries(e, id); fmt.Sprint(got) != "[h2@x.example]" {
		t.Fatalf("after element replace: primary emails = %v", got)
	}
	e.must(204, e.do("PATCH", "/Users/"+id, patchBody(op("add", "emails",
		[]any{map[string]any{"value": "w@x.example", "type": "work", "primary": true}}))))
	if got := primaries(e, id); fmt.Sprint(got) != "[w@x.example]" {
		t.Fatalf("after add merging into an existing value: primary emails = %v", got)
	}
}

// RFC 7643 §2.4: a POST or PUT with two primary values stores one.
func TestRFC7643_2_4_AtMostOnePrimary(t *testing.T) {
	e := newEnv(t, envOpt{})
	both := []any{
		map[string]any{"value": "a@x.example", "type": "work", "primary": true},
		map[string]any{"value": "b@x.example", "type": "home", "primary": true},
	}
	id := e.createUser("p3", map[string]any{"emails": both})
	if got := primaries(e, id); fmt.Sprint(got) != "[a@x.example]" {
		t.Fatalf("after POST: primary emails = %v", got)
	}
	e.must(200, e.do("PUT", "/Users/"+id, map[string]any{"schemas": []string{URNUser}, "userName": "p3", "emails": both}))
	if got := primaries(e, id); fmt.Sprint(got) != "[a@x.example]" {
		t.Fatalf("after PUT: primary emails = %v", got)
	}
}

// RFC 7644 §3.4.2.2: gt, ge, lt and le on boolean or binary attributes are
// 400 invalidFilter.
func TestRFC7644_3_4_2_2_OrderingOnBooleanOrBinary(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.createUser("f1", nil)
	for _, f := range []string{`active gt true`, `active le false`, `x509Certificates.value gt "AA=="`,
		`x509Certificates[value lt "AA=="]`, `userName eq "f1" and active ge true`} {
		r := e.do("GET", "/Users?filter="+urlQuery(f), nil)
		if r.status != 400 || r.str("scimType") != "invalidFilter" {
			t.Errorf("%s: %d %s, want 400 invalidFilter", f, r.status, r.body)
		}
	}
	e.must(200, e.do("GET", "/Users?filter="+urlQuery(`active eq true`), nil))
}

// RFC 7644 §3.4.2.2: a filter matches what the resource carries,
// schemas, the computed groups and meta included.
func TestRFC7644_3_4_2_2_FilterEveryReturnedAttribute(t *testing.T) {
	e := newEnv(t, envOpt{})
	ent := e.createUser("ent", map[string]any{URNEnterpriseUser: map[string]any{"department": "R&D"}})
	plain := e.createUser("plain", nil)
	g := e.createGroup("Staff", ent)
	e.must(204, e.do("PATCH", "/Users/"+plain, patchBody(op("replace", "displayName", "P")))) // version 2
	got := e.must(200, e.do("GET", "/Users/"+ent, nil))
	loc, ver := got.str("meta.location"), got.str("meta.version")
	cases := []struct {
		filter string
		want   []string
	}{
		{`schemas eq "` + URNEnterpriseUser + `"`, []string{ent}},
		{`schemas pr`, []string{ent, plain}},
		{`groups.display eq "Staff"`, []string{ent}},
		{`groups[value eq "` + g + `"]`, []string{ent}},
		{`groups pr`, []string{ent}},
		{`meta.location co "` + ent + `"`, []string{ent}},
		{`meta.location eq "` + loc + `"`, []string{ent}},
		{`meta.version eq "` + strings.ReplaceAll(ver, `"`, `\"`) + `"`, []string{ent}},
	}
	for _, c := range cases {
		r := e.must(200, e.do("GET", "/Users?filter="+urlQuery(c.filter), nil))
		var ids []string
		for _, res := range asList(r.json["Resources"]) {
			ids = append(ids, res.(map[string]any)["id"].(string))
		}
		if fmt.Sprint(ids) != fmt.Sprint(c.want) || r.str("totalResults") != fmt.Sprint(len(c.want)) {
			t.Errorf("%s: got %v (total %s), want %v", c.filter, ids, r.str("totalResults"), c.want)
		}
	}
}

// RFC 7232 §3.2: If-None-Match: * on a state-changing request to an
// existing resource fails with 412 and changes nothing.
func TestRFC7232_3_2_IfNoneMatchOnWrite(t *testing.T) {
	e := newEnv(t, envOpt{})
	id := e.createUser("inm", nil)
	body := patchBody(op("replace", "displayName", "Changed"))
	e.must(412, e.do("PATCH", "/Users/"+id, body, "If-None-Match", "*"))
	e.must(412, e.do("PUT", "/Users/"+id, map[string]any{"schemas": []string{URNUser}, "userName": "inm"}, "If-None-Match", "*"))
	e.must(412, e.do("DELETE", "/Users/"+id, nil, "If-None-Match", "*"))
	if r := e.must(200, e.do("GET", "/Users/"+id, nil)); r.str("displayName") != "" {
		t.Fatalf("a refused PATCH changed the user: %s", r.body)
	}
	// A non-matching tag lets the write through.
	e.must(204, e.do("PATCH", "/Users/"+id, body, "If-None-Match", `W/"999"`))
}

// RFC 7231 §4.3.2: a resource that answers GET answers HEAD, without a body.
func TestRFC7231_4_3_2_Head(t *testing.T) {
	e := newEnv(t, envOpt{})
	id := e.createUser("head", nil)
	for _, p := range []string{"/Users/" + id, "/Users", "/ServiceProviderConfig", "/Schemas"} {
		r := e.do("HEAD", p, nil)
		if r.status != http.StatusOK || len(r.body) != 0 {
			t.Errorf("HEAD %s: %d, %d body bytes", p, r.status, len(r.body))
		}
	}
	if r := e.do("HEAD", "/Users/"+id, nil); r.header.Get("ETag") == "" {
		t.Error("HEAD of a user has no ETag")
	}
	e.must(404, e.do("HEAD", "/Users/nope", nil))
}

// RFC 7643 §5, §6, §7: /Schemas lists the ServiceProviderConfig,
// ResourceType and Schema schemas, each readable by id.
func TestRFC7643_7_DiscoverySchemas(t *testing.T) {
	e := newEnv(t, envOpt{})
	for _, urn := range []string{urnSPConfig, urnResourceTypeDesc, urnSchemaDesc} {
		r := e.must(200, e.do("GET", "/Schemas/"+urn, nil))
		if r.str("id") != urn || len(asList(r.json["attributes"])) == 0 {
			t.Errorf("%s: %.200s", urn, r.body)
		}
	}
}
