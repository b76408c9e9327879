package ezeep_test

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/connector/fakekit"
	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
)

func TestItem10Hunt(t *testing.T) {
	seeds, _ := strconv.Atoi(os.Getenv("HUNT_SEEDS"))
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			sc := newEZScenario(t, ezeepfake.Options{MaxPerPage: 1000, FaultOptions: fakekit.FaultOptions{FaultRate: 0.2, FaultAfterApply: seed%2 == 0, RetryAfter: 1, SlowDelay: 300 * time.Millisecond, Seed: uint64(seed)}}, "suspend", "",
				func(c *config.TargetCommon) { c.Timeout = config.Duration(80 * time.Millisecond); c.Concurrency = 16 })
			srv := sc.srv
			var us []identity.User
			for i := range 150 {
				groups := []string{"print-users"}
				if i%2 == 0 {
					groups = append(groups, "staff")
				}
				u := synctest.User(fmt.Sprintf("user%03d", i), groups...)
				if i%7 == 0 {
					e := time.Date(2032, 3, 4, 0, 0, 0, 0, time.UTC)
					u.Expires = &e
				}
				us = append(us, u)
			}
			sc.set(us...)
			ok := false
			for run := 0; run < 15; run++ {
				res, _ := sc.h.Engine.Run(t.Context(), dsync.RunOptions{Trigger: "test"})
				failed := 0
				for _, d := range sc.h.DecisionsOf(res.RunID) {
					if d.Outcome == "failed" {
						failed++
					}
				}
				if failed == 0 && res.Status == "ok" {
					ok = true
					break
				}
			}
			if !ok {
				t.Logf("did not converge")
				return
			}
			for i, u := range us {
				eu, found := srv.UserByEmail(u.Email)
				if !found {
					t.Errorf("%s not invited", u.Email)
					continue
				}
				var want []string
				if i%2 == 0 {
					want = []string{sc.groups["staff"]}
				}
				if !slices.Equal(sorted(eu.Groups...), want) {
					t.Errorf("%s: groups %v, want %v; cache %+v", u.Email, eu.Groups, want, sc.h.Accounts("ezeep")[u.Key])
				}
			}
		})
	}
}
