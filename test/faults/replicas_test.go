package faults

import (
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/internal/testsrv/redissrv"
	"github.com/dirsync/dirsync/state/redisstore"
)

// TestReplicasShareTargets is issue 21's replica proof: three daemons on a
// real Redis Cluster with state.leases: per_target share six Netmaker
// targets (each replica has its own token for each, so the fakes record
// who sent what). Once they split the targets two by two, one replica is
// killed (SIGKILL) and another frozen (SIGSTOP) in the middle of the
// apply: their targets move to the survivor within the lock TTL plus a
// renewal interval, every application ends as the source says, no write
// lands twice, every write was sent by the holder of its target's lease
// at that moment, and the frozen replica, resumed, sends nothing.
func TestReplicasShareTargets(t *testing.T) {
	const ttl = 3 * time.Second
	base := seed(t)
	t.Logf("seed %d", base)
	rng := mrand.New(mrand.NewPCG(base, 21))
	h := newHarness(t)
	cl := redissrv.StartCluster(t, 3)
	st, err := redisstore.New(config.Redis{Addrs: cl.Addrs(), KeyPrefix: "dirsync:"}, redisstore.Options{DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.store = st
	t.Cleanup(func() { _ = st.Close() })
	people := population(pick(100, 300), rng)
	src := h.writeSource("hr.json", people)

	names := []string{"vpn1", "vpn2", "vpn3", "vpn4", "vpn5", "vpn6"}
	nms := map[string]*netmakerApp{}
	var targets strings.Builder
	// About ten seconds of apply per target: the fault falls in the middle.
	common := "    rate_limit: 15\n    burst: 2\n    concurrency: 2\n    timeout: 10s\n"
	for i, n := range names {
		env := fmt.Sprintf("NETMAKER_TOKEN_%d", i+1)
		nms[n] = h.newNetmaker(netmakerfake.Options{}, env, "developers", "operations")
		targets.WriteString(netmakerYAML(n, nms[n].url, env, common))
	}
	var quoted []string
	for _, a := range cl.Addrs() {
		quoted = append(quoted, fmt.Sprintf("%q", a))
	}
	tokens := map[string]string{} // Authorization header → replica
	mk := func(name string) *proc {
		listen := listenAddr(t)
		cfg := fmt.Sprintf(`state:
  backend: redis
  lock_ttl: %s
  leases: per_target
  redis: {addrs: [%s], key_prefix: "dirsync:"}
log: {level: info}
http: {listen: %q}
schedule: {full: "@daily", incremental: 2s}
safety: {max_suspend: 0, max_suspend_percent: 0, max_delete: 0, max_delete_percent: 0, max_source_shrink_percent: 0}
sources:
%s
targets:
%s`, ttl, strings.Join(quoted, ", "), listen, fileSourceYAML("hr", src), targets.String())
		p := h.daemon(name, h.writeFile(name+".yaml", []byte(cfg)), listen)
		for i, n := range names {
			tok := nms[n].fake.AdminToken()
			h.addSecret("netmaker token of "+name, tok)
			p.env = append(p.env, fmt.Sprintf("NETMAKER_TOKEN_%d=%s", i+1, tok))
			nms[n].rec.whoIs(tok, name)
			tokens["Bearer "+tok] = name
		}
		return p
	}
	procs := []*proc{mk("replica-a"), mk("replica-b"), mk("replica-c")}
	for _, p := range procs {
		p.Start()
	}
	heldRe := regexp.MustCompile(`targets held: ([^\n]*)`)
	held := func(p *proc) []string {
		_, body := p.get("/readyz")
		m := heldRe.FindStringSubmatch(body)
		if m == nil || strings.TrimSpace(m[1]) == "" {
			return nil
		}
		return strings.Split(strings.TrimSpace(m[1]), ", ")
	}
	eventually(t, 30*time.Second, "six targets split two by two", func() bool {
		seen := map[string]bool{}
		for _, p := range procs {
			hs := held(p)
			if len(hs) != 2 {
				return false
			}
			for _, x := range hs {
				seen[x] = true
			}
		}
		return len(seen) == 6
	})
	for _, p := range procs {
		t.Logf("%s holds %v", p.name, held(p))
	}
	// The fault: while the replica to freeze is in the middle of applying
	// one of its targets (it spends most of its time between recording an
	// action's intent and sending it, waiting for the rate limit).
	killed, frozen, survivor := procs[1], procs[2], procs[0]
	movedKill, movedFreeze := held(killed), held(frozen)
	hit := make(chan struct{})
	var once sync.Once
	for _, n := range movedFreeze {
		sent := 0
		nms[n].rec.setIntercept(nil, func(_ int, r *http.Request) phase {
			if r.Method != http.MethodGet && tokens[r.Header.Get("Authorization")] == frozen.name {
				if sent++; sent == 15 {
					once.Do(func() { close(hit) })
				}
			}
			return passOn
		})
	}
	select {
	case <-hit:
	case <-time.After(2 * time.Minute):
		t.Fatal("the replica to freeze never got to its fifteenth write")
	}
	frozen.Signal(syscall.SIGSTOP)
	killed.Kill()
	fault := time.Now()
	frozenLog := frozen.logSize()
	t.Logf("killed %s (held %v), froze %s (held %v)", killed.name, movedKill, frozen.name, movedFreeze)
	// Their targets move to the survivor.
	var took time.Duration
	eventually(t, 4*ttl, "the survivor holds all six targets", func() bool { return len(held(survivor)) == 6 })
	for _, l := range survivor.lines(0) {
		if l.str("msg") == "took the target's lease" && l.time().After(fault) {
			took = max(took, l.time().Sub(fault))
		}
	}
	t.Logf("targets moved %s after the fault (TTL %s)", took.Round(time.Millisecond), ttl)
	if limit := ttl + ttl/3 + time.Second; took > limit {
		t.Errorf("targets moved %s after the fault, more than TTL + renewal interval (%s)", took, limit)
	}
	// Nothing lost: every application converges on the source.
	eventually(t, 3*time.Minute, "every target equal to the source", func() bool {
		for _, n := range names {
			if len(checkNetmaker(t, nms[n], people, nil)) > 0 {
				return false
			}
		}
		return true
	})
	// The frozen replica resumes: it finds its leases gone and sends nothing.
	thawCut := map[string]int{}
	for _, n := range names {
		thawCut[n] = len(nms[n].rec.Calls())
	}
	frozen.Signal(syscall.SIGCONT)
	frozen.waitLine(frozenLog, 30*time.Second, `"lost the target's lease"`, func(l logLine) bool {
		return strings.Contains(l.str("msg"), "lost the target's lease")
	})
	eventually(t, 30*time.Second, "the resumed replica takes its share again", func() bool { return len(held(frozen)) == 3 && len(held(survivor)) == 3 })
	time.Sleep(2 * ttl) // its catch-up runs: nothing left to send
	afterThaw := 0
	for _, n := range names {
		for _, c := range nms[n].rec.Calls()[thawCut[n]:] {
			if kind, user := nmWrite(c); kind != "" {
				afterThaw++
				t.Errorf("%s: %s %s for %s sent after the frozen replica resumed, by %s", n, c.Method, c.Path, user, c.Who)
			}
		}
		if problems := checkNetmaker(t, nms[n], people, nil); len(problems) > 0 {
			t.Errorf("%s differs from the source at the end:\n%s", n, firstN(problems, 10))
		}
	}
	// Nothing applied twice, and each write was sent by the holder of its
	// target's lease at that moment.
	type span struct {
		from, to time.Time
	}
	spanStr := func(ss []span) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.from.Format("15:04:05.000")+"–"+s.to.Format("15:04:05.000"))
		}
		return strings.Join(out, ", ")
	}
	holds := map[string]map[string][]span{} // replica → target → spans
	for _, p := range procs {
		holds[p.name] = map[string][]span{}
		open := map[string]time.Time{}
		end := time.Now()
		if p == killed || p == frozen {
			end = fault
		}
		for _, l := range p.lines(0) {
			tg := l.str("target")
			switch msg := l.str("msg"); {
			case msg == "took the target's lease":
				open[tg] = l.time()
			case strings.HasPrefix(msg, "lost the target's lease"), strings.HasPrefix(msg, "target handed over"):
				if from, ok := open[tg]; ok {
					to := l.time()
					if p == frozen && from.Before(fault) {
						to = fault // frozen: it held nothing it could use past its TTL
					}
					holds[p.name][tg] = append(holds[p.name][tg], span{from, to})
					delete(open, tg)
				}
			}
		}
		for tg, from := range open {
			to := end
			if from.After(fault) {
				to = time.Now()
			}
			holds[p.name][tg] = append(holds[p.name][tg], span{from, to})
		}
	}
	const grace = 500 * time.Millisecond // a request sent just before the hand-over log line
	total, landedTwice := 0, 0
	for _, n := range names {
		type wk struct{ user, kind string }
		by := map[wk][]httpCall{}
		for _, c := range nms[n].rec.Calls() {
			kind, user := nmWrite(c)
			if kind == "" {
				continue
			}
			total++
			by[wk{user, kind}] = append(by[wk{user, kind}], c)
			ok := slices.ContainsFunc(holds[c.Who][n], func(s span) bool {
				return !c.At.Before(s.from) && !c.At.After(s.to.Add(grace))
			})
			if !ok {
				t.Errorf("%s: %s %s sent by %s at %s while it did not hold the target's lease (it held it %s)",
					n, c.Method, c.Path, c.Who, c.At.Format("15:04:05.000"), spanStr(holds[c.Who][n]))
			}
		}
		for k, cs := range by {
			landed := 0
			for _, c := range cs {
				if c.landed() {
					landed++
				}
			}
			if landed != 1 || len(cs) != 1 {
				landedTwice++
				var desc []string
				for _, c := range cs {
					desc = append(desc, fmt.Sprintf("#%d %s %s by %s → %d", c.Seq, c.Method, c.Path, c.Who, c.Status))
				}
				t.Errorf("%s %s %s: %d landed of %d sent, want exactly one:\n  %s", n, k.kind, k.user, landed, len(cs), strings.Join(desc, "\n  "))
			}
		}
	}
	t.Logf("%d writes over six targets; %d sent more than once", total, landedTwice)
	result(t, "21 replicas: three on Redis Cluster, six targets, kill -9 one and SIGSTOP another", 1,
		fmt.Sprintf("targets moved %s after the fault (TTL %s)", took.Round(time.Millisecond), ttl),
		fmt.Sprintf("%d writes, %d landed twice, %d after the frozen replica resumed", total, landedTwice, afterThaw))
	h.checkSecrets()
}
