package report

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
	dsync "github.com/dirsync/dirsync/sync"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func fixture(t *testing.T) state.Store {
	t.Helper()
	ctx := context.Background()
	st := memstore.New(memstore.Options{JournalSize: 1000})
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	exp := t0.Add(30 * 24 * time.Hour)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.PutLinks(ctx, state.Fence{}, map[string]string{"corp-ad:g-1": "g-1", "okta:s-1": "g-1", "corp-ad:g-2": "g-2", "corp-ad:g-3": "g-3"}))
	for _, a := range []identity.Account{
		{Key: "g-1", Username: "jo.bloggs", Email: "jo@example.test", Role: "admin", Groups: []string{"vpn-developers", "vpn-ops"}, Exists: true},
		{Key: "g-2", Username: "sam.rivera", Email: "sam@example.test", Role: "platform-user", Suspended: true, Exists: true},
		{Key: "g-3", Username: "ana, \"the contractor\"", Email: "ana@example.test", Role: "platform-user", Expires: &exp, Exists: true},
		{Key: "g-4", Username: "gone", Exists: false},
	} {
		must(st.PutAccount(ctx, state.Fence{}, "netmaker", a))
	}
	must(st.AppendDecisions(ctx, []state.Decision{
		{Time: t0, Target: "netmaker", User: "sam.rivera", Action: "suspend", Outcome: "applied", Reason: "corp-ad: userAccountControl ACCOUNTDISABLE set"},
		{Time: t0.Add(-time.Hour), Target: "netmaker", User: "jo.bloggs", Action: "create", Outcome: "applied", Reason: "in scope (member of vpn-users, corp-ad)"},
		{Time: t0, Target: "netmaker", User: "jo.bloggs", Action: "set_role", Outcome: "failed", Reason: "ignored: not applied"},
	}))
	rep := dsync.ReconcileReport{Target: "netmaker", Time: t0.Add(2 * time.Hour), Drift: map[string][]string{"g-1": {"groups"}},
		Orphans: []identity.Account{{Username: "old.admin", Role: "admin", Exists: true}}}
	b, _ := json.Marshal(rep)
	_, err := st.KVPut(ctx, "reconcile", "netmaker", b, -1)
	must(err)
	return st
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestAccessReportGolden(t *testing.T) {
	st := fixture(t)
	rows, err := Access(context.Background(), st, []Target{{Name: "netmaker"}, {Name: "ezeep"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer, []Row) error
	}{
		{"access.txt", func(b *bytes.Buffer, r []Row) error { return WriteTable(b, r) }},
		{"access.csv", func(b *bytes.Buffer, r []Row) error { return WriteCSV(b, r) }},
		{"access.json", func(b *bytes.Buffer, r []Row) error { return WriteJSON(b, r) }},
	} {
		var b bytes.Buffer
		if err := tc.write(&b, rows); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.file, b.Bytes())
	}
	priv, err := Access(context.Background(), st, []Target{{Name: "netmaker"}}, Options{Privileged: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(priv) != 2 || priv[0].Account != "jo.bloggs" || priv[1].Person != "orphan" {
		t.Fatalf("privileged rows: %+v", priv)
	}
}
