package faults

import (
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
)

// TestRedisLoss is item 2: Redis is killed (SIGKILL) in the middle of an
// apply and restarted from its AOF file. While it is gone the daemon stays
// up and /readyz says not ready; the only application writes are those
// whose intent was recorded before Redis went (at most one per worker),
// and each of them is logged as "applied, but recording it failed"; every
// other action is refused with a decision ("not sent: the state store
// cannot record it"). Once Redis is back, the next run converges with
// nothing lost and nothing the applications applied sent again.
func TestRedisLoss(t *testing.T) {
	trials := pick(1, 3)
	base := seed(t)
	t.Logf("seed %d", base)
	var fig tally
	for i := range trials {
		t.Run(fmt.Sprintf("trial%d", i+1), func(t *testing.T) {
			redisLossTrial(t, mrand.New(mrand.NewPCG(base, uint64(i))), &fig)
		})
	}
	result(t, "2 Redis loss (SIGKILL mid-run, restart from AOF)", trials, fig.figures()...)
}

func redisLossTrial(t *testing.T, rng *mrand.Rand, fig *tally) {
	h := newHarness(t)
	h.startRedis(true)
	w := &crashWorld{h: h, people: population(360, rng)}
	w.nm = h.newNetmaker(netmakerfake.Options{}, "NETMAKER_TOKEN", "developers", "operations")
	w.ez = h.newEzeelogin("EZEELOGIN_SECRET", usernames(w.people))
	src := h.writeSource("hr.json", w.people)
	listen := listenAddr(t)
	// A rate limit stretches the apply to several seconds.
	cfg := h.writeFile("dirsync.yaml", []byte(crashConfig(h, listen, "2s", src, w.nm, w.ez, nil, "150")))
	d := h.daemon("dirsync", cfg, listen)

	nmWant, _ := expectedActions(w.people, true)
	killAt := nmWant/6 + rng.IntN(nmWant/3)
	hit := make(chan struct{})
	writes := 0
	w.nm.rec.setIntercept(nil, func(_ int, r *http.Request) phase {
		if r.Method != http.MethodGet {
			writes++
			if writes == killAt {
				close(hit)
			}
		}
		return passOn
	})
	d.Start()
	select {
	case <-hit:
	case <-time.After(2 * time.Minute):
		t.Fatal("the apply never reached the chosen write")
	}
	h.redis.Kill()
	down := time.Now()
	preOutage := d.logSize()
	before := applied(d.decisions(0))
	nmCut := len(w.nm.rec.Calls())
	ezCut := len(w.ez.load().Calls)
	t.Logf("Redis killed after Netmaker write %d (%d actions applied and recorded)", killAt, len(before))

	// While Redis is gone: alive, not ready, refusing.
	eventually(t, 30*time.Second, "/readyz reporting the store unreachable", func() bool {
		code, body := d.get("/readyz")
		if code == http.StatusServiceUnavailable && !strings.Contains(body, "state store unreachable") {
			t.Errorf("/readyz 503 without saying why: %q", body)
		}
		return code == http.StatusServiceUnavailable
	})
	d.waitLine(preOutage, 30*time.Second, `"not sent: the state store cannot record it"`, func(l logLine) bool {
		return l.decision() && strings.Contains(l.str("error"), "not sent: the state store cannot record it")
	})
	d.waitLine(preOutage, 30*time.Second, `"lost the leader lock"`, func(l logLine) bool {
		return strings.Contains(l.str("msg"), "lost the leader lock")
	})
	if code, _ := d.get("/healthz"); code != 200 || !d.Alive() {
		t.Fatalf("the daemon is not up while Redis is gone (healthz %d)", code)
	}
	_, readyBody := d.get("/readyz")
	h.capture("/readyz during the outage", readyBody)
	nmOutage := w.nm.rec.Calls()[nmCut:]
	ezOutage := w.ez.load().Calls[ezCut:]
	outageLog := d.decisions(preOutage)

	// Every application write during the outage had its intent recorded
	// before Redis went: the decision says the action was applied but could
	// not be recorded. There are at most as many as workers (4 per target).
	unrecorded := map[string]bool{}
	refused := 0
	for _, l := range outageLog {
		switch {
		case l.str("outcome") == "applied" && strings.Contains(l.str("error"), "recording it failed"):
			unrecorded[l.str("target")+"/"+l.str("user")] = true
		case strings.Contains(l.str("error"), "not sent: the state store cannot record it"):
			refused++
		}
	}
	nmWrites := 0
	for _, c := range nmOutage {
		kind, user := nmWrite(c)
		if kind == "" {
			continue
		}
		nmWrites++
		if !unrecorded["vpn/"+user] {
			t.Errorf("netmaker %s %s sent while Redis was gone, without an applied-but-not-recorded decision (was its intent recorded?)", kind, user)
		}
	}
	if nmWrites > 4 {
		t.Errorf("%d Netmaker writes while Redis was gone; at most 4 (one per worker) can have had their intent recorded", nmWrites)
	}
	ezUsers := map[string]bool{}
	for _, c := range ezOutage {
		ezUsers[c.User] = true
		if !unrecorded["ssh/"+c.User] {
			t.Errorf("ezeelogin %s %s sent while Redis was gone, without an applied-but-not-recorded decision", c.Action, c.User)
		}
	}
	if len(ezUsers) > 4 {
		t.Errorf("%d Ezeelogin users called while Redis was gone; at most 4 (one per worker)", len(ezUsers))
	}

	// Redis returns with its AOF: the daemon is ready again, leads, and
	// the next run converges.
	h.redis.Restart()
	back := time.Now()
	outage := back.Sub(down)
	eventually(t, 30*time.Second, "/readyz ready again", func() bool {
		code, _ := d.get("/readyz")
		return code == http.StatusOK
	})
	readyAfter := time.Since(back)
	r := h.waitRun(back, 2*time.Minute, okRun)
	converge := r.Finished.Sub(back)
	var problems []string
	problems = append(problems, checkNetmaker(t, w.nm, w.people, nil)...)
	problems = append(problems, checkEzeelogin(t, w.ez, w.people)...)
	if len(problems) > 0 {
		t.Errorf("after Redis came back, the applications differ from the source:\n%s", firstN(problems, 20))
	}
	ws := checkWrites(t, w, before, nmCut)
	if !d.Alive() {
		t.Error("the daemon died")
	}
	h.cli(cfg, "decisions", "--output", "json", "--limit", "300")
	h.checkSecrets()
	t.Logf("outage %s: %d writes in flight (intent recorded), %d actions refused with a decision; ready %s after restart, converged %s after restart; Netmaker in-flight writes not resent: %d; Ezeelogin resent (idempotent): %d",
		outage.Round(100*time.Millisecond), nmWrites+len(ezOutage), refused, readyAfter.Round(100*time.Millisecond), converge.Round(100*time.Millisecond), ws.inFlightNM, len(ws.resentEz))
	fig.dur("outage", outage)
	fig.add("application calls during the outage (intent recorded before it)", nmWrites+len(ezOutage))
	fig.add("actions refused during the outage with a decision (not sent: the state store cannot record it)", refused)
	fig.dur("ready after Redis restart", readyAfter)
	fig.dur("converged after Redis restart", converge)
	fig.add("Netmaker writes applied but not recorded, not resent", ws.inFlightNM)
	fig.add("Ezeelogin calls resent (idempotent)", len(ws.resentEz))
}
