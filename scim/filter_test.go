package scim

import (
	"fmt"
	"strings"
	"testing"
)

// show renders a parsed filter with explicit grouping, for precedence tests.
func show(e expr) string {
	switch e := e.(type) {
	case logicalExpr:
		op := "and"
		if e.or {
			op = "or"
		}
		return "(" + show(e.left) + " " + op + " " + show(e.right) + ")"
	case notExpr:
		return "not(" + show(e.inner) + ")"
	case compareExpr:
		if e.op == "pr" {
			return e.path.String() + " pr"
		}
		return fmt.Sprintf("%s %s %s:%s", e.path, e.op, e.value.kind, e.value.str)
	case valuePathExpr:
		s := e.path.String() + "[" + show(e.filter) + "]"
		if e.sub != nil {
			s += "." + show(*e.sub)
		}
		return s
	}
	return "?"
}

func TestParseFilter(t *testing.T) {
	rt := userType()
	cases := []struct{ in, want string }{
		{`userName eq "bjensen"`, `userName eq string:bjensen`},
		{`userName Eq "a\"b"`, `userName eq string:a"b`},
		{`a eq 1 or b eq 2 and c eq 3`, `(a eq number:1 or (b eq number:2 and c eq number:3))`},
		{`a eq 1 AND b eq 2 Or c pr`, `((a eq number:1 and b eq number:2) or c pr)`},
		{`NOT(a pr) and notes eq x`, `(not(a pr) and notes eq bare:x)`},
		{`externalId eq jyoung`, `externalId eq bare:jyoung`},
		{`active eq True`, `active eq bool:True`},
		{`manager eq null`, `manager eq null:null`},
		{`meta.created gt 2015-10-10T14:38:21.8617979-07:00`, `meta.created gt bare:2015-10-10T14:38:21.8617979-07:00`},
		{`emails[type eq "work"].value eq "x"`, `emails[type eq string:work].value eq string:x`},
		{`emails[type eq "work" and (primary eq true)]`, `emails[(type eq string:work and primary eq bool:true)]`},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m"`,
			`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq string:m`},
		{`URN:IETF:params:scim:schemas:core:2.0:User:userName sw "a"`, `urn:ietf:params:scim:schemas:core:2.0:User:userName sw string:a`},
		{`  ( ( userName pr ) )  `, `userName pr`},
	}
	for _, c := range cases {
		e, err := parseFilter(c.in, rt.urns)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got := show(e); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
	for _, bad := range []string{``, `userName`, `userName eq`, `userName xx "a"`, `(userName pr`, `userName pr)`,
		`emails[type eq "work"`, `emails[type eq "work"].`, `a eq "open`, `name.givenName[x eq 1]`, `a.b.c eq 1`,
		`"quoted" eq 1`, `a eq 1 and`, `not a pr`,
		strings.Repeat("(", 200) + "a pr" + strings.Repeat(")", 200)} {
		if e, err := parseFilter(bad, rt.urns); err == nil {
			t.Errorf("%q parsed as %s", bad, show(e))
		}
	}
}

func TestFilterSemantics(t *testing.T) {
	rt := userType()
	doc := map[string]any{
		"id": "abc", "userName": "BJensen", "externalId": "Ext", "active": false,
		"emails": []any{map[string]any{"value": "b@x.example", "type": "work"}},
		"meta":   map[string]any{"created": "2020-05-01T10:00:00Z"},
	}
	cases := map[string]bool{
		`userName eq "bjensen"`:                       true,  // caseExact false
		`externalId eq "ext"`:                         false, // caseExact true
		`id eq "ABC"`:                                 false,
		`title ne "x"`:                                true, // ne holds for an absent attribute
		`title pr`:                                    false,
		`active eq false`:                             true,
		`active ne false`:                             false,
		`emails co "x.example"`:                       true, // compares "value"
		`emails.type eq "WORK"`:                       true,
		`meta.created gt "2020-05-01T09:00:00Z"`:      true,
		`meta.created lt "2020-05-01T13:00:00+02:00"`: true, // 11:00Z
		`meta.created eq "2020-05-01T12:00:00+02:00"`: true,
		`userName gt "a"`:                             true,
		`userName lt "a"`:                             false,
		`emails[type eq "home"]`:                      false,
	}
	for f, want := range cases {
		e, err := parseFilter(f, rt.urns)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if got := (evalCtx{rt: rt}).match(e, doc); got != want {
			t.Errorf("%s = %v, want %v", f, got, want)
		}
	}
}
