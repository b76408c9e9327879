package faults

import (
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/state"
)

// seed returns the run's random seed (DIRSYNC_FAULTS_SEED to replay one).
func seed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("DIRSYNC_FAULTS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DIRSYNC_FAULTS_SEED: %v", err)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// crashWorld is one crash trial's setup: Redis, the applications, the file
// source and one daemon.
type crashWorld struct {
	h      *harness
	people []person
	nm     *netmakerApp
	ez     *ezeeloginApp
	at     *allthenticateApp
	d      *proc
}

// crashConfig is the daemon config of the crash, Redis and failover items:
// the file source, Netmaker, and when given Ezeelogin and Allthenticate,
// no guard limits (the whole population is one mass change), a short lock
// TTL.
func crashConfig(h *harness, listen, lockTTL, source string, nm *netmakerApp, ez *ezeeloginApp, at *allthenticateApp, rate string) string {
	common := fmt.Sprintf("    rate_limit: %s\n    burst: 20\n    concurrency: 4\n    timeout: 10s\n", rate)
	targets := netmakerYAML("vpn", nm.url, "NETMAKER_TOKEN", common)
	if ez != nil {
		targets += ez.yaml("ssh", "EZEELOGIN_SECRET", "    scope: [ssh]\n"+common)
	}
	if at != nil {
		targets += at.yaml("badge", "ALLTHENTICATE_API_KEY", common)
	}
	return h.stateYAML(lockTTL) + fmt.Sprintf(`log: {level: info}
http: {listen: %q}
schedule: {full: "@daily", incremental: 2s}
safety: {max_suspend: 0, max_suspend_percent: 0, max_delete: 0, max_delete_percent: 0, max_access_removal: 0, max_access_removal_percent: 0, max_source_shrink_percent: 0}
sources:
%s
targets:
%s`, listen, fileSourceYAML("hr", source), targets)
}

func newCrashWorld(t *testing.T, rng *mrand.Rand, n int, withEz, withAt bool, rate string) *crashWorld {
	h := newHarness(t)
	h.startRedis(false)
	w := &crashWorld{h: h, people: population(n, rng)}
	w.nm = h.newNetmaker(netmakerfake.Options{}, "NETMAKER_TOKEN", "developers", "operations")
	if withEz {
		w.ez = h.newEzeelogin("EZEELOGIN_SECRET", usernames(w.people))
	}
	if withAt {
		w.at = h.newAllthenticate(allthenticatefake.Options{}, "ALLTHENTICATE_API_KEY", w.people)
	}
	src := h.writeSource("hr.json", w.people)
	listen := listenAddr(t)
	cfg := h.writeFile("dirsync.yaml", []byte(crashConfig(h, listen, "2s", src, w.nm, w.ez, w.at, rate)))
	w.d = h.daemon("dirsync", cfg, listen)
	return w
}

// expectedActions counts the engine actions the population needs from an
// empty cache: Netmaker create, set_role and set_groups per active person;
// Ezeelogin set_expiry, force_password_change and suspend as due;
// Allthenticate (everyone a member already, adopted) rank ADMIN for ssh
// members and a suspension for the inactive.
func expectedActions(people []person, withEz bool) (nm, ez int) {
	nm, ez, _ = expectedActions3(people, withEz, false)
	return nm, ez
}

func expectedActions3(people []person, withEz, withAt bool) (nm, ez, at int) {
	for _, p := range people {
		if withAt && slices.Contains(p.Groups, "ssh") {
			at++
		}
		if withAt && !p.Active {
			at++
		}
		if p.Active {
			nm += 3 // create, set_role (a read: the role came with the create), set_groups
		}
		if !withEz || !slices.Contains(p.Groups, "ssh") {
			continue
		}
		if p.Expires != "" {
			ez++
		}
		if p.MustChange {
			ez++
		}
		if !p.Active {
			ez++
		}
	}
	return nm, ez, at
}

// trialStats are one trial's figures.
type trialStats struct {
	mode          string
	killAt        int
	actions       int
	appliedBefore int
	inFlightNM    int // Netmaker writes the fake applied whose decision was not logged before the kill
	resentEz      []string
	resentAt      []string
	toggles       int
	converge      time.Duration
	firstStatus   string
}

// TestCrashConsistency is item 1: kill -9 of the daemon at a random moment
// of a ~1,000-action apply across Netmaker, Ezeelogin and Allthenticate,
// then a restart. After each trial: the applications are as the source
// says; no write the application applied is ever sent again (Netmaker is
// re-read — or, for a create, adopted by the full run's listing — before
// anything is retried); Allthenticate gets exactly one toggle per
// suspension; an Ezeelogin call or an Allthenticate rank change that was
// in flight at the crash (its applied decision not logged) may be sent
// again, which is safe because each sets a state (suspended, expiry date,
// password-change flag, rank) rather than toggling one.
func TestCrashConsistency(t *testing.T) {
	trials := pick(3, 20)
	base := seed(t)
	t.Logf("seed %d (DIRSYNC_FAULTS_SEED=%d replays it)", base, base)
	var stats []trialStats
	for i := range trials {
		var st trialStats
		ok := t.Run(fmt.Sprintf("trial%02d", i+1), func(t *testing.T) {
			st = crashTrial(t, mrand.New(mrand.NewPCG(base, uint64(i))), i)
		})
		if ok {
			stats = append(stats, st)
		}
	}
	var figs []string
	var maxConv time.Duration
	inflight, resent, resentAt, toggles, actions := 0, 0, 0, 0, 0
	modes := map[string]int{}
	for _, s := range stats {
		maxConv = max(maxConv, s.converge)
		inflight += s.inFlightNM
		resent += len(s.resentEz)
		resentAt += len(s.resentAt)
		toggles += s.toggles
		actions += s.actions
		modes[s.mode]++
	}
	if len(stats) > 0 {
		figs = append(figs, fmt.Sprintf("%d actions/trial", actions/len(stats)),
			fmt.Sprintf("Netmaker writes in flight at the kill (applied, unconfirmed): %d, none resent", inflight),
			fmt.Sprintf("Ezeelogin in-flight calls resent (idempotent): %d", resent),
			fmt.Sprintf("Allthenticate: %d toggles, one per suspension; in-flight rank changes resent (idempotent): %d", toggles, resentAt),
			"kill moments: "+summary(modes),
			fmt.Sprintf("max restart-to-converged %s", maxConv.Round(100*time.Millisecond)))
	}
	result(t, "1 crash consistency (kill -9 mid-apply, restart)", trials, figs...)
}

func crashTrial(t *testing.T, rng *mrand.Rand, i int) trialStats {
	w := newCrashWorld(t, rng, 360, true, true, "1000")
	h, d := w.h, w.d
	nmWant, ezWant, atWant := expectedActions3(w.people, true, true)
	st := trialStats{actions: nmWant + ezWant + atWant}

	// Choose the moment: a third of the trials kill inside the Netmaker
	// fake while its k-th write is in flight (before or after the fake
	// applies it), a third inside the Allthenticate fake while its k-th
	// suspension toggle is in flight, a third once k decisions were
	// logged.
	killNow := d.Kill
	switch i % 3 {
	case 2:
		inactive := 0
		for _, p := range w.people {
			if !p.Active {
				inactive++
			}
		}
		st.killAt = 1 + rng.IntN(inactive)
		ph := killBefore
		if rng.IntN(2) == 0 {
			ph = killAfter
		}
		st.mode = "allthenticate toggle in flight, " + string(ph)
		toggles := 0
		fired := false
		w.at.rec.setIntercept(killNow, func(seq int, r *http.Request) phase {
			if r.URL.Path != "/togglesuspension" || fired {
				return passOn
			}
			toggles++
			if toggles == st.killAt {
				fired = true
				return ph
			}
			return passOn
		})
		d.Start()
		eventually(t, 120*time.Second, "the kill", func() bool { return !d.Alive() })
		w.at.rec.setIntercept(nil, nil)
	case 0:
		st.killAt = 1 + rng.IntN(nmWant*2/3*9/10) // two writes (POST, PUT) per three actions
		ph := killBefore
		if rng.IntN(2) == 0 {
			ph = killAfter
		}
		st.mode = "netmaker write in flight, " + string(ph)
		writes := 0
		fired := false
		w.nm.rec.setIntercept(killNow, func(seq int, r *http.Request) phase {
			if r.Method == http.MethodGet || fired {
				return passOn
			}
			writes++
			if writes == st.killAt {
				fired = true
				return ph
			}
			return passOn
		})
		d.Start()
		eventually(t, 120*time.Second, "the kill", func() bool { return !d.Alive() })
		w.nm.rec.setIntercept(nil, nil)
	default:
		st.killAt = 1 + rng.IntN(st.actions*9/10)
		st.mode = "after a random number of decisions"
		d.Start()
		eventually(t, 120*time.Second, "the kill", func() bool {
			n := 0
			for _, l := range d.decisions(0) {
				if l.str("outcome") == "applied" {
					n++
				}
			}
			if n >= st.killAt {
				killNow()
				return true
			}
			return false
		})
	}
	preKill := d.logSize()
	before := applied(d.decisions(0))
	st.appliedBefore = len(before)
	nmKillSeq := len(w.nm.rec.Calls())
	atKillSeq := len(w.at.fake.Calls())
	t.Logf("trial %d: %s: killed at %d (%d actions applied and logged of %d)", i+1, st.mode, st.killAt, len(before), st.actions)
	if len(before) >= st.actions {
		t.Logf("the kill came after the last action: nothing was in flight")
	}

	// Restart: the new process waits out the dead one's lock, then runs.
	restart := time.Now()
	d.Start()
	r := h.waitRun(restart, 120*time.Second, func(state.Run) bool { return true })
	st.firstStatus = r.Status
	r = h.waitRun(restart, 120*time.Second, okRun)
	st.converge = r.Finished.Sub(restart)

	// 1. The applications are as the source says.
	var problems []string
	problems = append(problems, checkNetmaker(t, w.nm, w.people, nil)...)
	problems = append(problems, checkEzeelogin(t, w.ez, w.people)...)
	problems = append(problems, checkAllthenticate(t, w.at, w.people)...)
	if len(problems) > 0 {
		t.Errorf("after restart, the applications differ from the source:\n%s", firstN(problems, 20))
	}

	// The decisions name users as the applications know them (else the
	// checks below, keyed by "target/user/action", would prove nothing).
	ezUsers := w.ez.load().Users
	for k := range before {
		parts := strings.SplitN(k, "/", 3)
		known := false
		switch parts[0] {
		case "vpn":
			_, known = w.nm.fake.User(parts[1])
		case "ssh":
			_, known = ezUsers[parts[1]]
		case "badge":
			_, known = w.at.fake.UserByEmail(parts[1] + "@example.test")
		}
		if !known {
			t.Errorf("decision %s names a user its application does not know", k)
		}
	}
	ws := checkWrites(t, w, before, nmKillSeq)
	st.inFlightNM, st.resentEz = ws.inFlightNM, ws.resentEz
	st.resentAt, st.toggles = checkAllthenticateCalls(t, w.at, before, atKillSeq)
	// Decisions after the restart never repeat an applied one.
	for _, l := range d.decisions(preKill) {
		k := l.str("target") + "/" + l.str("user") + "/" + l.str("action")
		if l.str("outcome") == "applied" && before[k] {
			t.Errorf("after the restart, %s was applied again (it was applied and logged before the kill)", k)
		}
	}
	t.Logf("trial %d: first run after restart %s; converged %s after restart; netmaker in flight %d; ezeelogin resent %v; allthenticate resent %v",
		i+1, st.firstStatus, st.converge.Round(time.Millisecond), st.inFlightNM, st.resentEz, st.resentAt)

	// 7. Secrets: explain and plan outputs too.
	h.cli(d.cfg, "explain", w.people[0].Username)
	h.cli(d.cfg, "decisions", "--output", "json", "--limit", "200")
	d.Stop()
	h.cli(d.cfg, "plan", "--out", h.path("plan.json"))
	if b, err := os.ReadFile(h.path("plan.json")); err == nil {
		h.capture("plan file", string(b))
	}
	h.checkSecrets()
	return st
}

// ezCallsOf reads the Ezeelogin calls grouped by "user/action".
func ezCallsOf(e *ezeeloginApp) (map[string][]ezeeloginCall, error) {
	st := e.load()
	out := map[string][]ezeeloginCall{}
	for _, c := range st.Calls {
		out[c.User+"/"+c.Action] = append(out[c.User+"/"+c.Action], ezeeloginCall{Seq: c.Seq, Status: c.Status})
	}
	return out, nil
}

// ezeeloginCall is the part of a recorded Ezeelogin call the checks need.
type ezeeloginCall struct {
	Seq    int
	Status string
}

// writeStats are what checkWrites counted.
type writeStats struct {
	inFlightNM int      // Netmaker writes applied at the fault whose decision was not logged
	resentEz   []string // Ezeelogin calls sent again after the fault ("user/action")
}

// checkWrites checks every write the applications received, against the
// decisions applied (and recorded) before a fault and the Netmaker call
// sequence number at the fault (nmKillSeq).
func checkWrites(t *testing.T, w *crashWorld, before map[string]bool, nmKillSeq int) (ws writeStats) {
	t.Helper()
	// 2. Netmaker: per user and kind of write exactly one write landed,
	// and nothing else was sent but a request killed before the fake saw
	// it. A resent create would be answered 400 "user exists", a resent
	// PUT or disable would land twice: both fail here.
	calls := w.nm.rec.Calls()
	type wk struct{ user, kind string }
	byWrite := map[wk][]httpCall{}
	for _, c := range calls {
		if kind, user := nmWrite(c); kind != "" {
			byWrite[wk{user, kind}] = append(byWrite[wk{user, kind}], c)
		}
	}
	for k, cs := range byWrite {
		landed, other := 0, 0
		for _, c := range cs {
			switch {
			case c.Killed == string(killBefore):
			case c.landed():
				landed++
			default:
				other++
			}
		}
		if landed != 1 || other != 0 {
			var desc []string
			for _, c := range cs {
				desc = append(desc, fmt.Sprintf("#%d %s %s by %s → %d %s (before the fault: %v)", c.Seq, c.Method, c.Path, c.Who, c.Status, c.Killed, c.Seq <= nmKillSeq))
			}
			t.Errorf("netmaker %s %s: %d landed, %d other sends, want exactly one landed:\n  %s", k.kind, k.user, landed, other, strings.Join(desc, "\n  "))
		}
		// A write the fake applied before the kill whose decision was not
		// logged was in flight: it was not resent (above), and the restarted
		// daemon learned that it landed from the application — a read of
		// that user, or the full run's listing — before writing anything
		// else for that user.
		for _, c := range cs {
			if c.Seq > nmKillSeq || !c.landed() {
				continue
			}
			act := "create"
			if k.kind == "put" {
				act = "set_groups"
			}
			if before["vpn/"+k.user+"/"+act] {
				continue
			}
			ws.inFlightNM++
			for _, n := range calls[nmKillSeq:] {
				if kind, user := nmWrite(n); kind != "" && user == k.user {
					t.Errorf("netmaker: %s %s was in flight at the kill; after the restart the first call about %s was a write (#%d %s %s), not a read", k.kind, k.user, k.user, n.Seq, n.Method, n.Path)
					break
				}
				if nmRead(n) == k.user || (n.Method == http.MethodGet && n.Path == "/api/v2/users") {
					break
				}
			}
		}
	}
	for _, p := range w.people {
		n := 0
		if p.Active {
			n = 2
		}
		got := len(byWrite[wk{p.Username, "create"}]) + len(byWrite[wk{p.Username, "put"}])
		if n == 0 && got > 0 {
			t.Errorf("netmaker: %s was never active but got %d writes", p.Username, got)
		}
	}

	// 3. Ezeelogin: an action whose applied decision was logged before the
	// kill is never sent again; a resend is allowed only for a call that
	// was in flight, and only for the state-setting actions.
	if w.ez == nil {
		return ws
	}
	ezc, err := ezCallsOf(w.ez)
	if err != nil {
		t.Fatal(err)
	}
	for key, cs := range ezc {
		user, action, _ := strings.Cut(key, "/")
		if len(cs) == 1 {
			continue
		}
		eng := ezAction(action)
		if before["ssh/"+user+"/"+eng] {
			t.Errorf("ezeelogin: %s for %s was applied and logged before the kill, then sent %d times in all", action, user, len(cs))
			continue
		}
		if !slices.Contains([]string{"suspend_user", "reset_user_password", "set_user_expiry", "force_user_password_change", "unsuspend_user"}, action) {
			t.Errorf("ezeelogin: %s for %s sent %d times", action, user, len(cs))
		}
		if len(cs) > 2 {
			t.Errorf("ezeelogin: %s for %s sent %d times (one crash can leave one call in flight)", action, user, len(cs))
		}
		ws.resentEz = append(ws.resentEz, key)
	}
	if n := w.ez.registerPasswords(); n == 0 {
		t.Error("no reset_user_password answer to scan for: the scan for returned passwords proves nothing")
	}
	return ws
}

// checkAllthenticateCalls checks what Allthenticate received: at most one
// toggle per user (the connector reads before it toggles, so a toggle in
// flight at the crash is never repeated), and a rank change sent again
// only when it was in flight (not applied and recorded before the kill);
// it is idempotent. It returns the resent rank changes and the toggles.
func checkAllthenticateCalls(t *testing.T, a *allthenticateApp, before map[string]bool, killSeq int) (resent []string, toggles int) {
	t.Helper()
	byEmail := map[int]string{}
	byUser := map[int]string{}
	for _, u := range a.fake.Users() {
		byEmail[u.EmailID] = u.Username
		byUser[u.UserID] = u.Username
	}
	toggle := map[string][]allthenticatefake.Call{}
	rank := map[string][]allthenticatefake.Call{}
	for _, c := range a.fake.Calls() {
		switch c.Path {
		case "/togglesuspension":
			id, _ := strconv.Atoi(c.Params["email_id"])
			toggle[byEmail[id]] = append(toggle[byEmail[id]], c)
			toggles++
		case "/modifyrank":
			id, _ := strconv.Atoi(c.Params["admin_user_id"])
			rank[byUser[id]] = append(rank[byUser[id]], c)
		}
	}
	for user, cs := range toggle {
		if len(cs) != 1 {
			t.Errorf("allthenticate: %d suspension toggles sent for %s (one change, one toggle)", len(cs), user)
		}
	}
	for user, cs := range rank {
		if len(cs) == 1 {
			continue
		}
		if before["badge/"+user+"/set_role"] {
			t.Errorf("allthenticate: the rank change of %s was applied and recorded before the kill, then sent %d times in all", user, len(cs))
		} else if len(cs) > 2 || cs[0].Seq > killSeq {
			t.Errorf("allthenticate: the rank change of %s sent %d times", user, len(cs))
		}
		resent = append(resent, user+"/modifyrank")
	}
	return resent, toggles
}
