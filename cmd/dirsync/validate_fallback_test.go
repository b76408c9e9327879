package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate warns where a configured deletion cannot be done for some
// accounts and the leaver is suspended instead (invariant 12): Netmaker
// with SSO users under deprovision: delete and reconcile.orphans: delete.
func TestValidateWarnsWhereDeletesFallBack(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nm.yaml")
	if err := os.WriteFile(p, []byte(`state: {backend: embedded, path: `+filepath.Join(dir, "state.db")+`}
sources:
  - {name: hr, type: file, path: /x.json}
targets:
  - name: vpn
    type: netmaker
    base_url: https://netmaker.example.test
    token: header.payload.sig
    create: false
    deprovision: {action: delete}
    reconcile: {orphans: delete}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := runMain(context.Background(), []string{"validate", "--config", p}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d:\n%s", code, errb.String())
	}
	want := "warning: netmaker: deprovision is delete and reconcile.orphans is delete, but Netmaker refuses to delete users that sign in through an IdP"
	if !strings.Contains(errb.String(), want) || !strings.Contains(errb.String(), "suspended instead") {
		t.Fatalf("validate output lacks %q:\n%s", want, errb.String())
	}
}
