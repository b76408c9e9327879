package sync_test

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
)

// BenchmarkPlan100k measures linking, desired-state building, diff and plan for
// 100,000 users against one target whose cache already matches all but 1%
// (the daily case), with role and group rules. Run:
//
//	go test -run '^$' -bench Plan100k -benchmem ./sync/
func BenchmarkPlan100k(b *testing.B) { benchPlan(b, 100000) }

// BenchmarkPlan1M is BenchmarkPlan100k with 1,000,000 users (goal: under
// 3 s and 1.5 GB peak heap, fixture included). Run:
//
//	go test -run '^$' -bench Plan1M -benchmem -benchtime 3x ./sync/
func BenchmarkPlan1M(b *testing.B) { benchPlan(b, 1000000) }

func benchPlan(b *testing.B, n int) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	users := make([]identity.User, n)
	for i := range users {
		g := []string{"staff", fmt.Sprintf("team-%d", i%1000), fmt.Sprintf("site-%d", i%50)}
		if i%100 == 0 {
			g = append(g, "admins")
		}
		users[i] = identity.Normalize(identity.User{Key: fmt.Sprintf("k%06d", i), Source: "ad", Username: fmt.Sprintf("user%06d", i),
			Email: fmt.Sprintf("user%06d@example.test", i), GivenName: "Given", FamilyName: fmt.Sprint(i), Active: true, Groups: g})
	}
	rules := dsync.Rules{Scope: []string{"staff"}, IncludeInactive: true, DefaultRole: "user",
		Roles:       []config.RoleRule{{Group: "admins", Role: "admin"}},
		Groups:      []config.GroupRule{{Group: "site-1", As: "site-one"}, {Group: "team-7"}},
		Username:    "username",
		Deprovision: config.Deprovision{Action: "suspend"}}
	cached := map[string]identity.Account{}
	for k, d := range dsync.BuildDesired(users, rules, now) {
		cached[k] = d.Account
	}
	for i := 0; i < n; i += 100 { // 1% changed since the last run
		users[i].Active = false
	}
	snap := &identity.Snapshot{Source: "ad", Users: users}
	links := identity.Link(identity.JoinEmail, nil, snap).Links // every record linked already
	all := func(connector.Action) bool { return true }
	var peak uint64
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		// A run links every record to its person (once over all sources;
		// a target of every source reuses it), then builds desired
		// accounts and plans.
		l := identity.Link(identity.JoinEmail, links, snap)
		if len(l.Users) != n || len(l.New) != 0 {
			b.Fatalf("linked %d people, %d new", len(l.Users), len(l.New))
		}
		desired := dsync.BuildDesired(l.Users, rules, now)
		p := dsync.MakePlan(dsync.PlanInput{Target: "t", Cap: dsync.Capability{Supports: all}, Rules: rules,
			Desired: desired, Cached: cached, Known: dsync.NewPeople(l.Users), Now: now})
		if len(p.Steps) != n/100 {
			b.Fatalf("%d steps, want %d", len(p.Steps), n/100)
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	b.ReportMetric(float64(peak)/1e6, "peak-heap-MB")
	// CPU seconds per plan (the process's, garbage collection included):
	// on a shared machine the wall time says more about the neighbours.
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}

// cpuTime is the CPU time the process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
