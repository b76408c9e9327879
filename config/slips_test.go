package config

import (
	"errors"
	"strings"
	"testing"
)

// TestRenamedFromAndRoleRankValidated: a former name must not be a
// configured target (it would take that target's history), nor the former
// name of two targets; role_rank names each role once.
func TestRenamedFromAndRoleRankValidated(t *testing.T) {
	c, err := Parse(strings.NewReader(`sources: [{name: hr, type: file}]
targets:
  - {name: a, type: memory, renamed_from: [b, old]}
  - {name: b, type: memory, renamed_from: [old, ""], role_rank: [admin, user, admin], roles: [{group: g, role: lead}], default_role: user}
`))
	if err != nil {
		t.Fatal(err)
	}
	var ps Problems
	if !errors.As(c.Validate(), &ps) {
		t.Fatalf("Validate: want problems")
	}
	checkProblems(t, ps, []string{
		`targets[0].renamed_from[0]: "b" is a configured target: a target renamed from it would take its history`,
		`targets[1].renamed_from[0]: "old" is already the former name of target "a"`,
		`targets[1].renamed_from[1]: must be a target name (got "")`,
		`targets[1].role_rank[2]: must be a role named once (got "admin")`,
		`targets[1].roles[0].role: "lead" is not in role_rank`,
	})
}

// TestEndpointNamesTheApplication: two targets pointing at one application
// (whatever their names, however the URL is spelled) share an endpoint.
func TestEndpointNamesTheApplication(t *testing.T) {
	c, err := Parse(strings.NewReader(`sources: [{name: hr, type: file}]
targets:
  - {name: vpn, type: netmaker, base_url: "https://NM.example.test/"}
  - {name: vpn2, type: netmaker, base_url: "https://nm.example.test"}
  - {name: other, type: netmaker, base_url: "https://nm2.example.test"}
  - {name: none, type: memory}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Targets[0].Endpoint(); got != "netmaker https://nm.example.test" {
		t.Fatalf("endpoint %q", got)
	}
	if c.Targets[3].Endpoint() != "" {
		t.Fatal("a target with no URL has no endpoint")
	}
	sh := c.SharedEndpoints()
	if len(sh) != 1 || strings.Join(sh["netmaker https://nm.example.test"], ",") != "vpn,vpn2" {
		t.Fatalf("shared endpoints %v", sh)
	}
}
