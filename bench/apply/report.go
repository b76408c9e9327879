package main

import (
	"fmt"
	"strings"
	"time"
)

// Goals the summary checks.
const (
	goalCeiling  = 0.9  // share of the application's rate limit
	goalNaive    = 2.0  // times the naive client
	goal429Share = 0.01 // 429s per action, rate_limit = the application's limit
	goalRuns     = 3    // runs per phase to converge when rate_limit is too high
)

type report struct {
	o       options
	started time.Time
	dirsync []result
	naive   *result
	notes   []string
	commit  time.Duration // median account write to a fresh embedded store
}

// total sums a result's phases.
func (r result) total() phase {
	t := phase{name: "total"}
	for _, p := range r.phases {
		t.want += p.want
		t.done += p.done
		t.applied += p.applied
		t.failed += p.failed
		t.runs += p.runs
		t.wall += p.wall
		t.limited += p.limited
		t.requests += p.requests
		t.writes += p.writes
		t.writeDur += p.writeDur
	}
	return t
}

func (r result) runs() string {
	s := make([]string, len(r.phases))
	for i, p := range r.phases {
		s[i] = fmt.Sprint(p.runs)
	}
	return strings.Join(s, "+")
}

func (p phase) rate() float64 {
	if p.wall <= 0 {
		return 0
	}
	return float64(p.done) / p.wall.Seconds()
}

func (r *report) naivePhase(name string) (phase, bool) {
	if r.naive == nil {
		return phase{}, false
	}
	if name == "total" {
		return r.naive.total(), true
	}
	for _, p := range r.naive.phases {
		if p.name == name {
			return p, true
		}
	}
	return phase{}, false
}

func stateName(b string) string {
	switch b {
	case "bolt":
		return "bbolt (embedded)"
	case "redis":
		return "Redis (AOF everysec)"
	}
	return b
}

func (r *report) markdown() string {
	o := r.o
	burst := o.appBurst
	if burst <= 0 {
		burst = max(1, int(o.rate))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Apply throughput: %s\n\n", r.started.Format("2006-01-02T15:04Z"))
	fmt.Fprintf(&b, "Machine: %s.\n", machine())
	if r.commit > 0 {
		fmt.Fprintf(&b, "Disk: one account write to the embedded store takes %.1f ms here (median of 50, in %s; each commit syncs the file); the engine writes twice per action (intent, then outcome), one commit at a time, so the embedded store alone allows at most %.0f actions/s on this disk.\n",
			float64(r.commit.Microseconds())/1000, o.stateDir, 1/(2*r.commit.Seconds()))
	}
	fmt.Fprintf(&b, "Application: the Netmaker fake answering every accepted request after %s, behind a token bucket of %g requests/s (burst %d); beyond it, 429 with Retry-After at once.\n",
		o.latency, o.rate, burst)
	conc := "concurrency 4 (default)"
	if o.concurrency > 0 {
		conc = fmt.Sprintf("concurrency %d", o.concurrency)
	}
	fmt.Fprintf(&b, "dirsync: the netmaker connector; target keys at their defaults but rate_limit (burst = rate_limit, %s, max_attempts 4); every decision logged (JSON lines to a file) and journaled in the state.\n", conc)
	fmt.Fprintf(&b, "Load: %d creates (one run), then the %d users turn inactive: %d suspensions (one run, --allow-mass-change); each scenario on a fresh application and state. A phase takes more runs only when the previous one left actions failed.\n", o.n, o.n, o.n)
	best := float64(o.n) / (float64(max(o.n-burst, 0)) / o.rate)
	fmt.Fprintf(&b, "Ceiling: the application's rate limit, %g actions/s (a client exceeds it only by the burst: %d actions in (%d − %d)/%g s at best = %.1f/s).\n",
		o.rate, o.n, o.n, burst, o.rate, best)
	fmt.Fprintf(&b, "Naive: the same HTTP calls one at a time, no limiter, Retry-After honoured (1/latency = %.0f/s at most).\n", 1/o.latency.Seconds())
	fmt.Fprintf(&b, "Command: `%s`\n\n", o.command)
	b.WriteString("| client | state | rate_limit | phase | actions | runs | wall s | actions/s | ÷ ceiling | ÷ naive | 429s | failed decisions | state writes | ms/write |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	row := func(client, st, rl string, p phase) {
		vsNaive := "–"
		if client != "naive sequential" {
			if n, ok := r.naivePhase(p.name); ok && n.rate() > 0 {
				vsNaive = fmt.Sprintf("%.2f", p.rate()/n.rate())
			}
		}
		writes, per := "–", "–"
		if p.writes > 0 {
			writes, per = fmt.Sprint(p.writes), fmt.Sprintf("%.1f", float64(p.writeDur.Microseconds())/1000/float64(p.writes))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d | %.1f | %.1f | %.2f | %s | %d | %d | %s | %s |\n",
			client, st, rl, p.name, p.done, p.runs, p.wall.Seconds(), p.rate(), p.rate()/o.rate, vsNaive, p.limited, p.failed, writes, per)
	}
	for _, res := range r.dirsync {
		client := "dirsync"
		if res.sc.misconfigured {
			client = "dirsync, rate_limit too high"
		}
		for _, p := range append(res.phases, res.total()) {
			row(client, stateName(res.sc.backend), fmt.Sprintf("%g", res.sc.rateLimit), p)
		}
	}
	if r.naive != nil {
		for _, p := range append(r.naive.phases, r.naive.total()) {
			row("naive sequential", "–", "–", p)
		}
	}
	for _, n := range r.notes {
		fmt.Fprintf(&b, "\n%s\n", n)
	}
	return b.String()
}

// summaryRows are the rows bench/run-all.sh puts in its table: figure,
// dirsync value, reference, reference value, ratio, goal, pass or fail.
func (r *report) summaryRows() string {
	o := r.o
	var b strings.Builder
	verdict := func(ok bool) string {
		if ok {
			return "pass"
		}
		return "FAIL"
	}
	for _, res := range r.dirsync {
		t := res.total()
		st := stateName(res.sc.backend)
		if res.sc.misconfigured {
			ok := t.done == t.want
			for _, p := range res.phases {
				ok = ok && p.runs <= goalRuns
			}
			fmt.Fprintf(&b, "| apply with rate_limit %g > the app's %g, %s: converges | %d/%d applied in %s runs, %.1f actions/s, %d × 429 | app rate limit (ceiling), actions/s | %g | %.2f | all applied, ≤ %d runs per phase | %s |\n",
				res.sc.rateLimit, o.rate, st, t.done, t.want, res.runs(), t.rate(), t.limited, o.rate, t.rate()/o.rate, goalRuns, verdict(ok))
			continue
		}
		ratio := t.rate() / o.rate
		fmt.Fprintf(&b, "| apply throughput, %s (%d creates + %d suspensions), actions/s | %.1f | app rate limit (ceiling) | %g | %.2f | ≥ %.1f × ceiling | %s |\n",
			st, o.n, o.n, t.rate(), o.rate, ratio, goalCeiling, verdict(ratio >= goalCeiling && t.done == t.want))
		if n, ok := r.naivePhase("total"); ok && n.rate() > 0 {
			nr := t.rate() / n.rate()
			fmt.Fprintf(&b, "| apply throughput vs a naive client, %s, actions/s | %.1f | naive sequential client | %.1f | %.2f | ≥ %.0f × naive | %s |\n",
				st, t.rate(), n.rate(), nr, goalNaive, verdict(nr >= goalNaive))
		}
		limit := int(goal429Share * float64(t.want))
		fmt.Fprintf(&b, "| 429s received at rate_limit = the app's limit, %s | %d | – | – | – | ≤ %d (1%% of actions) | %s |\n",
			st, t.limited, limit, verdict(t.limited <= limit))
	}
	return b.String()
}
