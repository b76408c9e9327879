package allthenticate_test

import (
	"strings"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/allthenticate"
)

func TestSampleBuilds(t *testing.T) {
	t.Setenv("ALLTHENTICATE_API_KEY", "key")
	tgts := parseTargets(t, allthenticate.Sample)
	if len(tgts) != 1 || tgts[0].Type != allthenticate.Type {
		t.Fatalf("sample targets: %+v", tgts)
	}
	tg, err := allthenticate.Factory(tgts[0], connector.Deps{})
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	if tg.Name() != "allthenticate" || tg.Type() != "allthenticate" {
		t.Fatalf("%s %s", tg.Name(), tg.Type())
	}
	want := []connector.Action{connector.ActCreate, connector.ActUnsuspend, connector.ActUpdate, connector.ActSetRole, connector.ActSuspend, connector.ActDelete}
	if got := connector.Capabilities(tg); len(got) != len(want) {
		t.Fatalf("capabilities %v, want %v", got, want)
	}
}

func TestFactoryErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"  - {name: at, type: allthenticate, api_key: k}\n", "targets[0].base_url: is required"},
		{"  - {name: at, type: allthenticate, base_url: 'ftp://x', api_key: k}\n", "targets[0].base_url: \"ftp://x\" is not an http(s) URL"},
		{"  - {name: at, type: allthenticate, base_url: 'https://x'}\n", "targets[0].api_key: is required"},
		{"  - {name: at, type: allthenticate, base_url: 'https://x', api_key: k, params: xml}\n", "targets[0].params:"},
		{"  - {name: at, type: allthenticate, base_url: 'https://x', api_key: k, header: 'X Key'}\n", "targets[0].header:"},
		{"  - {name: at, type: allthenticate, base_url: 'https://x', api_key: k, roles: [{group: g, role: owner}]}\n", "targets[0].roles[0].role: \"owner\" is not an Allthenticate rank"},
		{"  - {name: at, type: allthenticate, base_url: 'https://x', api_key: k, default_role: boss}\n", "targets[0].default_role:"},
		{"  - {name: at, type: allthenticate, base_url: 'https://x', api_key: k, allowsuper: true}\n", "targets[0].allowsuper: unknown key"},
	} {
		tgts := parseTargets(t, tc.yaml)
		_, err := allthenticate.Factory(tgts[0], connector.Deps{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", strings.TrimSpace(tc.yaml), err, tc.want)
		}
	}
}
