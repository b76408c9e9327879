package ezeep_test

import (
	"strings"
	"testing"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/connector/ezeep"
)

func TestSampleBuilds(t *testing.T) {
	t.Setenv("EZEEP_CLIENT_ID", "client")
	t.Setenv("EZEEP_CLIENT_SECRET", "secret")
	tgts := parseTargets(t, ezeep.Sample)
	if len(tgts) != 1 || tgts[0].Type != ezeep.Type {
		t.Fatalf("sample targets: %+v", tgts)
	}
	tg, err := ezeep.Factory(tgts[0], connector.Deps{})
	if err != nil {
		t.Fatalf("factory: %v", err)
	}
	if tg.Name() != "ezeep" || tg.Type() != "ezeep" {
		t.Fatalf("%s %s", tg.Name(), tg.Type())
	}
	if _, ok := tg.(connector.Suspender); !ok {
		t.Fatal("with deprovision suspend the connector strips groups and role as its suspension")
	}
	want := []connector.Action{connector.ActCreate, connector.ActUnsuspend, connector.ActUpdate, connector.ActSetRole, connector.ActSetGroups, connector.ActSetExpiry, connector.ActSuspend, connector.ActDelete}
	if got := connector.Capabilities(tg); len(got) != len(want) {
		t.Fatalf("capabilities %v, want %v", got, want)
	}
}

func TestFactoryDeleteModeHasNoSuspension(t *testing.T) {
	tgts := parseTargets(t, "  - {name: ez, type: ezeep, client_id: c, client_secret: s, deprovision: {action: delete}, include_inactive: false}\n")
	tg, err := ezeep.Factory(tgts[0], connector.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tg.(connector.Suspender); ok {
		t.Fatal("deprovision delete: the engine deletes, the connector must not offer suspension")
	}
}

func TestFactoryErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"  - {name: ez, type: ezeep, client_secret: s}\n", "targets[0].client_id: is required"},
		{"  - {name: ez, type: ezeep, client_id: c}\n", "targets[0].client_secret: is required"},
		{"  - {name: ez, type: ezeep, client_id: c, client_secret: s, account_url: 'ftp://x'}\n", "targets[0].account_url:"},
		{"  - {name: ez, type: ezeep, client_id: c, client_secret: s, printing_url: 'https://u:p@x'}\n", "targets[0].printing_url:"},
		{"  - {name: ez, type: ezeep, client_id: c, client_secret: s, page_size: 5000}\n", "targets[0].page_size: must be between 1 and 1000"},
		{"  - {name: ez, type: ezeep, client_id: c, client_secret: s, groups: [{group: staff}]}\n", "targets[0].groups[0]: ezeep group \"staff\" has no id"},
		{"  - {name: ez, type: ezeep, client_id: c, client_secret: s, managed_groups: [x]}\n", "targets[0].managed_groups[0]:"},
		{"  - {name: ez, type: ezeep, client_id: c, client_secret: s, clientsecret: s}\n", "targets[0].clientsecret: unknown key"},
	} {
		tgts := parseTargets(t, tc.yaml)
		_, err := ezeep.Factory(tgts[0], connector.Deps{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", strings.TrimSpace(tc.yaml), err, tc.want)
		}
	}
	// A group named in group_ids, or given by uuid, is fine.
	tgts := parseTargets(t, "  - {name: ez, type: ezeep, client_id: c, client_secret: s, group_ids: {staff: g1}, groups: [{group: staff}, {group: x, as: 8228b289-2926-4813-8267-c61c767e55f0}]}\n")
	if _, err := ezeep.Factory(tgts[0], connector.Deps{}); err != nil {
		t.Fatal(err)
	}
}
