package report

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	"github.com/dirsync/dirsync/state/memstore"
)

// leaversFixture: three leavers in the period — sam (disabled in corp-ad,
// confirmed by netmaker and ezeep), kim (pushed inactive by okta, netmaker
// confirmed, ezeep held), lee (deleted from corp-ad: no source time kept,
// netmaker failed then confirmed) — and one before the period.
func leaversFixture(t *testing.T) state.Store {
	t.Helper()
	ctx := context.Background()
	st := memstore.New(memstore.Options{JournalSize: 1000})
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.PutLinks(ctx, state.Fence{}, map[string]string{"corp-ad:g-2": "p-sam", "okta:s-7": "p-kim", "corp-ad:g-9": "p-lee", "corp-ad:g-1": "p-old"}))
	must(st.PutSnapshot(ctx, state.Fence{}, &identity.Snapshot{Source: "corp-ad", TakenAt: t0.Add(time.Hour), Users: []identity.User{
		{Key: "g-2", Source: "corp-ad", Username: "sam.rivera", Email: "sam@example.test", Active: false, Changed: t0.Add(-2 * time.Second), ChangedFrom: "whenChanged"},
		{Key: "g-1", Source: "corp-ad", Username: "old.timer", Changed: t0.Add(-48 * time.Hour), ChangedFrom: "whenChanged"},
	}}))
	must(st.PutSnapshot(ctx, state.Fence{}, &identity.Snapshot{Source: "okta", TakenAt: t0.Add(time.Hour), Users: []identity.User{
		{Key: "s-7", Source: "okta", Username: "kim.lee@example.test", Email: "kim.lee@example.test", Active: false, Changed: t0.Add(5 * time.Minute), ChangedFrom: "SCIM push"},
	}}))
	for _, a := range []struct {
		tgt string
		a   identity.Account
	}{
		{"netmaker", identity.Account{Key: "p-sam", Username: "sam.rivera", Suspended: true, Exists: true}},
		{"ezeep", identity.Account{Key: "p-sam", Username: "sam@example.test", Suspended: true, Exists: true}},
		{"netmaker", identity.Account{Key: "p-kim", Username: "kim.lee", Suspended: true, Exists: true}},
		{"ezeep", identity.Account{Key: "p-kim", Username: "kim.lee@example.test", Exists: true}},
	} {
		must(st.PutAccount(ctx, state.Fence{}, a.tgt, a.a))
	}
	ms := func(d time.Duration) time.Time { return t0.Add(d) }
	must(st.AppendDecisions(ctx, []state.Decision{
		{Time: t0.Add(-47 * time.Hour), Target: "netmaker", User: "old.timer", Action: "suspend", Outcome: "applied", Reason: "corp-ad: userAccountControl ACCOUNTDISABLE set"},
		{Time: ms(300 * time.Millisecond), Target: "netmaker", User: "sam.rivera", Action: "suspend", Outcome: "applied", Reason: "corp-ad: userAccountControl ACCOUNTDISABLE set"},
		{Time: ms(1200 * time.Millisecond), Target: "ezeep", User: "sam@example.test", Action: "delete", Outcome: "applied", Reason: "corp-ad: userAccountControl ACCOUNTDISABLE set"},
		{Time: ms(5*time.Minute + 250*time.Millisecond), Target: "netmaker", User: "kim.lee", Action: "suspend", Outcome: "applied", Reason: "okta: active=false"},
		{Time: ms(5*time.Minute + 300*time.Millisecond), Target: "ezeep", User: "kim.lee@example.test", Action: "delete", Outcome: "held", Reason: "okta: active=false; held by the safety guard (11 deletions > 10)"},
		{Time: ms(10 * time.Minute), Target: "netmaker", User: "lee", Action: "delete", Outcome: "failed", Reason: "gone from corp-ad", Error: "netmaker: 503 Service Unavailable"},
		{Time: ms(10*time.Minute + 40*time.Second), Target: "netmaker", User: "lee", Action: "delete", Outcome: "applied", Reason: "gone from corp-ad"},
		{Time: ms(11 * time.Minute), Target: "netmaker", User: "sam.rivera", Action: "suspend", Outcome: "applied", Reason: "re-applied after a hand edit"},
	}))
	return st
}

func TestLeaversReportGolden(t *testing.T) {
	st := leaversFixture(t)
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	rep, err := Leavers(context.Background(), st, LeaversOptions{Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour), Sources: []string{"corp-ad", "okta"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Leavers) != 3 || rep.Leavers[0].Name != "kim.lee@example.test" || rep.Leavers[0].Pending != 1 ||
		rep.Leavers[1].Name != "lee" || rep.Leavers[2].Name != "sam.rivera" {
		t.Fatalf("leavers, slowest first: %+v", rep.Leavers)
	}
	sam := rep.Leavers[2]
	if !sam.SourceTime.Equal(t0.Add(-2*time.Second)) || sam.SourceTimeFrom != "whenChanged" || sam.Applications[1].Seconds != 2.3 {
		t.Fatalf("sam: %+v", sam)
	}
	for _, tc := range []struct {
		file  string
		write func(*bytes.Buffer, *LeaversReport) error
	}{
		{"leavers.txt", func(b *bytes.Buffer, r *LeaversReport) error { return WriteLeaversTable(b, r) }},
		{"leavers.csv", func(b *bytes.Buffer, r *LeaversReport) error { return WriteLeaversCSV(b, r) }},
		{"leavers.json", func(b *bytes.Buffer, r *LeaversReport) error { return WriteLeaversJSON(b, r) }},
	} {
		var b bytes.Buffer
		if err := tc.write(&b, rep); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.file, b.Bytes())
	}
}
