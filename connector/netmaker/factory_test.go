package netmaker_test

import (
	"errors"
	"github.com/dirsync/dirsync/connector/targettest"
	"net/http"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/netmaker"
	"github.com/dirsync/dirsync/identity"
)

func parseTargets(t *testing.T, yaml string) []config.Target { return targettest.ParseTargets(t, yaml) }

func TestSampleBuilds(t *testing.T) {
	t.Setenv("NETMAKER_TOKEN", "header.payload.sig")
	tgts := parseTargets(t, netmaker.Sample)
	if len(tgts) != 1 || tgts[0].Type != netmaker.Type {
		t.Fatalf("sample targets: %+v", tgts)
	}
	// Nothing leaves the machine: the sample's server is not contacted.
	refuse := roundTripFunc(func(r *http.Request) (*http.Response, error) { return nil, errors.New("no network in tests") })
	tg, err := netmaker.Factory(tgts[0], connector.Deps{HTTPClient: &http.Client{Transport: refuse}})
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	if _, ok := tg.(connector.Creator); !ok {
		t.Fatal("create: true builds no Creator")
	}
	if w := tg.(connector.Warner).Warnings(); len(w) == 0 || !strings.Contains(w[0], "basic_auth") {
		t.Fatalf("warnings %q", w)
	}
	if tg.Name() != "netmaker" || tg.Type() != "netmaker" {
		t.Fatalf("%s %s", tg.Name(), tg.Type())
	}
	// The groups rules' names are managed: when the server cannot be read
	// nothing is refused but bad names.
	if why := tg.(connector.Gater).Gate(connector.ActSetGroups, identity.Account{Username: "user1", Groups: []string{"developers"}}); why != "" {
		t.Fatalf("gate: %q", why)
	}
}

func TestFactoryErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"  - {name: nm, type: netmaker, token: x}\n", "targets[0].base_url: is required"},
		{"  - {name: nm, type: netmaker, base_url: 'ftp://x'}\n", "targets[0].base_url: \"ftp://x\" is not an http(s) URL"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x'}\n", "targets[0].token: is required"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x', token: t, auth_type: ldap}\n", "targets[0].auth_type:"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x', token: t, page_size: 500}\n", "targets[0].page_size: must be between 1 and 100"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x', token: t, edition: enterprise}\n", "targets[0].edition:"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x', token: t, invalid_username: drop}\n", "targets[0].invalid_username:"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x', token: t, create_role: super-admin}\n", "targets[0].create_role:"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x', token: t, tokn: x}\n", "targets[0].tokn: unknown key"},
	} {
		tgts := parseTargets(t, tc.yaml)
		_, err := netmaker.Factory(tgts[0], connector.Deps{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", strings.TrimSpace(tc.yaml), err, tc.want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// create: false (SSO deployments) builds a connector that cannot create:
// the planner adopts people who signed in through the IdP instead.
func TestCreateFalseAdopts(t *testing.T) {
	tgts := parseTargets(t, "  - {name: nm, type: netmaker, base_url: 'https://x.example', token: t, create: false}\n")
	tg, err := netmaker.Factory(tgts[0], connector.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tg.(connector.Creator); ok {
		t.Fatal("create: false still creates")
	}
	for _, a := range []connector.Action{connector.ActSuspend, connector.ActSetRole, connector.ActSetGroups, connector.ActDelete, connector.ActUpdate} {
		if !connector.Supports(tg, a) {
			t.Fatalf("create: false lost %s", a)
		}
	}
	if _, ok := tg.(connector.Lister); !ok {
		t.Fatal("not a Lister")
	}
}

// validate warns where the configured deletion cannot be done for some
// accounts (invariant 12): Netmaker's SSO users, and everyone with the
// master key, are suspended instead.
func TestValidateWarnsDeleteOfSSOUsers(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"  - {name: nm, type: netmaker, base_url: 'https://x.example', token: t, create: false, deprovision: {action: delete}}\n",
			"deprovision is delete, but Netmaker refuses to delete users that sign in through an IdP"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x.example', token: t, reconcile: {orphans: delete}}\n",
			"reconcile.orphans is delete, but Netmaker refuses"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x.example', token: t, deprovision: {action: suspend, delete_after: 30d}}\n",
			"delete_after is set, but Netmaker refuses"},
		{"  - {name: nm, type: netmaker, base_url: 'https://x.example', token: not-a-jwt, create: false}\n",
			"leavers are suspended instead of deleted"},
	} {
		tg, err := netmaker.Factory(parseTargets(t, tc.yaml)[0], connector.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if w := strings.Join(tg.(connector.Warner).Warnings(), "\n"); !strings.Contains(w, tc.want) {
			t.Errorf("%s: warnings %q, want %q", strings.TrimSpace(tc.yaml), w, tc.want)
		}
	}
	tg, _ := netmaker.Factory(parseTargets(t, "  - {name: nm, type: netmaker, base_url: 'https://x.example', token: t, create: false}\n")[0], connector.Deps{})
	if w := strings.Join(tg.(connector.Warner).Warnings(), "\n"); strings.Contains(w, "refuses to delete") {
		t.Errorf("no delete configured, warned %q", w)
	}
}
