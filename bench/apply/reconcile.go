package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"github.com/dirsync/dirsync/state/memstore"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/target"
	"github.com/dirsync/dirsync/target/netmaker"
	"github.com/dirsync/dirsync/target/netmaker/netmakerfake"
)

// reconcileOptions shape the reconcile benchmark.
type reconcileOptions struct {
	n, reenabled, raised, orphans int
}

// runReconcile measures one reconcile of n accounts on the Netmaker fake
// behind the App (answer time, rate limit): the time it takes and the
// requests it sends, against the minimum the API allows — the list pages
// (100 users a page, Netmaker's maximum) plus one write per fix.
//
// Set-up (not measured): the fake holds n users that dirsync has adopted,
// `reenabled` of them leavers dirsync suspended that an admin then
// re-enabled by hand, `raised` others raised to admin by hand, and
// `orphans` accounts made by hand that no source knows (orphans: suspend).
func runReconcile(ctx context.Context, o options, ro reconcileOptions, out io.Writer) error {
	dir, err := os.MkdirTemp(o.stateDir, "dirsync-bench-reconcile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fake := netmakerfake.New(netmakerfake.Options{})
	app := NewApp(fake, AppOptions{Rate: o.rate, Burst: o.appBurst, Latency: o.latency})
	base, stopApp, err := serve(app)
	if err != nil {
		return err
	}
	defer stopApp()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(fake.AdminToken()), 0o600); err != nil {
		return err
	}
	y := fmt.Sprintf(`state: {backend: embedded, path: %s}
safety: {max_suspend: 0, max_suspend_percent: 0, max_access_removal: 0, max_access_removal_percent: 0}
sources: [{name: hr, type: memory}]
targets:
  - name: netmaker
    type: netmaker
    base_url: %s
    token: file:%s
    edition: pro
    rate_limit: %g
    default_role: platform-user
    reconcile: {orphans: suspend}
`, filepath.Join(dir, "unused.db"), base, tokenFile, o.rate)
	cfg, err := config.Parse(strings.NewReader(y))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := zap.NewNop()
	store := memstore.New(memstore.Options{JournalSize: 1 << 20})
	tc := cfg.Targets[0]
	tgt, err := netmaker.Factory(tc, target.Deps{Logger: log})
	if err != nil {
		return err
	}
	users := benchUsers(ro.n, true)
	for i := range users {
		// What a Netmaker user carries: a username and a display name.
		users[i].Email, users[i].GivenName, users[i].FamilyName = "", "", ""
	}
	for _, u := range users {
		fake.AddUser(netmakerfake.User{Username: u.Username, DisplayName: u.DisplayName, PlatformRoleID: netmakerfake.RolePlatformUser})
	}
	src := &memSource{}
	counts := &outcomes{}
	eng := dsync.New(dsync.Options{
		Sources: []source.Source{src}, Targets: []dsync.TargetSpec{{Target: tgt, Config: tc.TargetCommon}},
		Store: store, Logger: log, Recorder: dsync.NewRecorder(nil, store, counts.add), Limits: cfg.Safety.Limits(),
		JoinKey: identity.JoinUsername, Metrics: dsync.NewMetrics(prometheus.NewRegistry()),
	})
	// Adopt every account, then suspend the leavers.
	src.set(users)
	if r, err := eng.Run(ctx, dsync.RunOptions{Trigger: "setup"}); err != nil || r.Counts[dsync.OutcomeApplied] != 0 {
		return fmt.Errorf("adoption run: %v (%v): the set-up must adopt without writes", err, r.Counts)
	}
	for i := range ro.reenabled {
		users[i].Active = false
	}
	src.set(users)
	if _, err := eng.Run(ctx, dsync.RunOptions{Trigger: "setup"}); err != nil {
		return fmt.Errorf("leavers run: %w", err)
	}
	// Changes by hand.
	byName := map[string]netmakerfake.User{}
	for _, u := range fake.Users() {
		byName[u.Username] = u
	}
	for i := range ro.reenabled {
		u := byName[benchName(i)]
		u.AccountDisabled = false
		fake.AddUser(u)
	}
	for i := ro.reenabled; i < ro.reenabled+ro.raised; i++ {
		u := byName[benchName(i)]
		u.PlatformRoleID = netmakerfake.RoleAdmin
		fake.AddUser(u)
	}
	for i := range ro.orphans {
		fake.AddUser(netmakerfake.User{Username: fmt.Sprintf("handmade%03d", i), PlatformRoleID: netmakerfake.RolePlatformUser})
	}
	counts.take()
	acc0, lim0 := app.Counts()
	fake.ResetCalls()
	start := time.Now()
	res, err := eng.Run(ctx, dsync.RunOptions{Trigger: "reconcile", Reconcile: true})
	took := time.Since(start)
	if err != nil {
		return fmt.Errorf("reconcile run: %w", err)
	}
	acc1, lim1 := app.Counts()
	var reads, writes int
	for _, c := range fake.Calls() {
		if c.Method == "GET" {
			reads++
		} else {
			writes++
		}
	}
	m := counts.take()
	total := ro.n + ro.orphans
	pages := (total + 99) / 100
	fixes := ro.reenabled + ro.raised + ro.orphans
	minimum := pages + fixes
	// Check the outcome: the leavers and orphans are suspended again, the
	// raised roles lowered.
	bad := 0
	for _, u := range fake.Users() {
		var i int
		if strings.HasPrefix(u.Username, "handmade") {
			if !u.AccountDisabled {
				bad++
			}
		} else if _, err := fmt.Sscanf(u.Username, "user%06d", &i); err == nil {
			if (i < ro.reenabled) != u.AccountDisabled || u.PlatformRoleID != netmakerfake.RolePlatformUser {
				bad++
			}
		}
	}
	fmt.Fprintf(out, "## Reconcile of %d accounts (Netmaker fake, %s answer time, %g req/s)\n\n", ro.n, o.latency, o.rate)
	fmt.Fprintf(out, "Command: `%s`\n\n", o.command)
	fmt.Fprintf(out, "Hand-made changes: %d leavers re-enabled, %d roles raised to admin, %d orphan accounts (orphans: suspend).\n\n", ro.reenabled, ro.raised, ro.orphans)
	fmt.Fprintln(out, "| figure | value |")
	fmt.Fprintln(out, "|---|---|")
	fmt.Fprintf(out, "| run status | %s (%d applied, %d failed) |\n", res.Status, m[dsync.OutcomeApplied], m[dsync.OutcomeFailed])
	fmt.Fprintf(out, "| time taken | %.1f s |\n", took.Seconds())
	fmt.Fprintf(out, "| requests sent | %d (%d reads, %d writes; %d answered 429) |\n", acc1-acc0+lim1-lim0, reads, writes, lim1-lim0)
	fmt.Fprintf(out, "| minimum the API allows | %d (%d list pages + %d writes) |\n", minimum, pages, fixes)
	fmt.Fprintf(out, "| ratio | %.2f× the minimum requests |\n", float64(acc1-acc0+lim1-lim0)/float64(minimum))
	fmt.Fprintf(out, "| floor at %g req/s | %.1f s |\n", o.rate, float64(minimum)/o.rate)
	fmt.Fprintf(out, "| accounts not as the sources say afterwards | %d |\n", bad)
	if bad > 0 {
		return fmt.Errorf("%d accounts not reconciled", bad)
	}
	return nil
}
