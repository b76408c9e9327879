package sync

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dirsync/dirsync/connector"
)

// Estimate is how long applying one target's plan takes at its configured
// rate limit, so an operator knows before applying that 100,000 creates at
// 10 calls/s are an afternoon's work. It counts one call per step (the
// least any connector makes); the limiter, not the application's answer
// time, sets the pace of a large plan.
type Estimate struct {
	Target string `json:"target"`
	// Calls is the number of application calls: one per step.
	Calls int `json:"calls"`
	// Rate is the target's rate_limit in calls/s; 0 means none.
	Rate float64 `json:"rate,omitempty"`
	// Burst is the calls sent at once before the rate applies.
	Burst int `json:"burst,omitempty"`
	// Duration is the time the calls take at Rate after the burst; 0 when
	// there is no rate limit.
	Duration time.Duration `json:"duration_ns"`
	// Actions counts the steps by action.
	Actions map[connector.Action]int `json:"actions"`
}

// EstimateApply returns the estimate of applying p on a target whose rate
// limit is rate calls/s (0 or less: unlimited) with the given burst.
func EstimateApply(p Plan, rate float64, burst int) Estimate {
	e := Estimate{Target: p.Target, Calls: len(p.Steps), Actions: map[connector.Action]int{}}
	for _, s := range p.Steps {
		e.Actions[s.Action]++
	}
	if rate > 0 && !math.IsInf(rate, 1) {
		e.Rate, e.Burst = rate, max(burst, 1)
		if n := e.Calls - e.Burst; n > 0 {
			e.Duration = time.Duration(float64(n) / rate * float64(time.Second))
		}
	}
	return e
}

// String says it as plan prints it: "about 2 h 47 min at 10 calls/s for
// ezeep: 100,000 creates".
func (e Estimate) String() string {
	var acts []string
	for _, a := range slices.Sorted(maps.Keys(e.Actions)) {
		acts = append(acts, countOf(e.Actions[a], a))
	}
	what := strings.Join(acts, ", ")
	if e.Calls == 0 {
		what = "nothing to apply"
	}
	if e.Rate == 0 {
		return fmt.Sprintf("no rate limit for %s: %s", e.Target, what)
	}
	return fmt.Sprintf("%s at %s calls/s for %s: %s", aboutDuration(e.Duration), strconv.FormatFloat(e.Rate, 'f', -1, 64), e.Target, what)
}

// countOf is "100,000 creates" or "3 × set_groups".
func countOf(n int, a connector.Action) string {
	switch a {
	case connector.ActCreate, connector.ActUpdate, connector.ActSuspend, connector.ActUnsuspend, connector.ActDelete:
		if n == 1 {
			return "1 " + string(a)
		}
		return thousands(n) + " " + string(a) + "s"
	}
	return thousands(n) + " × " + string(a)
}

// thousands writes n with comma separators (100,000).
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// aboutDuration rounds d the way a person would say it: "under a second",
// "about 40 s", "about 12 min", "about 2 h 47 min".
func aboutDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "under a second"
	case d < time.Minute:
		return fmt.Sprintf("about %d s", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("about %d min", int(d.Round(time.Minute)/time.Minute))
	}
	m := int(d.Round(time.Minute) / time.Minute)
	if m%60 == 0 {
		return fmt.Sprintf("about %d h", m/60)
	}
	return fmt.Sprintf("about %d h %d min", m/60, m%60)
}
