package sync

import (
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector"
)

func TestEstimateApply(t *testing.T) {
	steps := func(n int, a connector.Action) []Step {
		out := make([]Step, n)
		for i := range out {
			out[i] = Step{Action: a}
		}
		return out
	}
	tests := []struct {
		name  string
		plan  Plan
		rate  float64
		burst int
		dur   time.Duration
		say   string
	}{
		{"100k creates at the default limit", Plan{Target: "ezeep", Steps: steps(100000, connector.ActCreate)}, 10, 10,
			9999 * time.Second, "about 2 h 47 min at 10 calls/s for ezeep: 100,000 creates"},
		{"mixed actions", Plan{Target: "vpn", Steps: append(steps(1200, connector.ActSuspend), steps(3, connector.ActSetGroups)...)}, 2.5, 3,
			480 * time.Second, "about 8 min at 2.5 calls/s for vpn: 3 × set_groups, 1,200 suspends"},
		{"within the burst", Plan{Target: "app", Steps: steps(1, connector.ActDelete)}, 10, 10, 0, "under a second at 10 calls/s for app: 1 delete"},
		{"no limit", Plan{Target: "app", Steps: steps(5, connector.ActUpdate)}, 0, 0, 0, "no rate limit for app: 5 updates"},
		{"seconds", Plan{Target: "app", Steps: steps(500, connector.ActUnsuspend)}, 10, 100, 40 * time.Second, "about 40 s at 10 calls/s for app: 500 unsuspends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := EstimateApply(tt.plan, tt.rate, tt.burst)
			if e.Duration != tt.dur || e.Calls != len(tt.plan.Steps) {
				t.Errorf("duration %v, calls %d; want %v, %d", e.Duration, e.Calls, tt.dur, len(tt.plan.Steps))
			}
			if got := e.String(); got != tt.say {
				t.Errorf("says %q, want %q", got, tt.say)
			}
		})
	}
}
