package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/internal/demo/ldapdir"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/mattn/go-isatty"
)

// demoApp is one application fake the demo runs, with its target config and
// a way to see whether a person has lost access there.
type demoApp struct {
	target string
	label  string
	yaml   string
	// gone reports whether the person can no longer use the application.
	gone  func(uid, mail string) bool
	close func()
}

// demoOut prints for people (tables, colour on a TTY) or machines (JSON lines).
type demoOut struct {
	w     io.Writer
	json  bool
	color bool
	mu    sync.Mutex
}

func (o *demoOut) event(kind string, fields map[string]any) {
	if !o.json {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	fields["event"] = kind
	b, _ := json.Marshal(fields)
	fmt.Fprintln(o.w, string(b))
}

func (o *demoOut) title(s string) {
	if o.json {
		return
	}
	if o.color {
		fmt.Fprintf(o.w, "\n\033[1;36m== %s\033[0m\n", s)
	} else {
		fmt.Fprintf(o.w, "\n== %s\n", s)
	}
}

func (o *demoOut) say(format string, args ...any) {
	if o.json {
		return
	}
	fmt.Fprintf(o.w, format+"\n", args...)
}

func (o *demoOut) paint(code, s string) string {
	if !o.color {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cmdDemo runs everything in one process on loopback: an LDAP directory,
// the four application fakes, the SCIM server and the daemon.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	once := fs.Bool("once", false, "exit after showing the propagation time, instead of running until Ctrl-C")
	output := fs.String("output", "text", "text or json")
	keep := fs.String("dir", "", "keep the demo's files in this folder (default: a temporary folder, removed at the end)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError{err.Error()}
	}
	out := &demoOut{w: stdout, json: *output == "json"}
	if f, ok := stdout.(*os.File); ok && !out.json {
		out.color = isatty.IsTerminal(f.Fd())
	}
	dir := *keep
	if dir == "" {
		d, err := os.MkdirTemp("", "dirsync-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}

	// Secrets for this run only; none of them is ever printed.
	secrets := map[string]string{
		"DEMO_LDAP_PASSWORD":     randomHex(12),
		"DEMO_SCIM_TOKEN":        randomHex(16),
		"DEMO_EZEELOGIN_SECRET":  randomHex(16),
		"DEMO_EZEEP_SECRET":      randomHex(16),
		"DEMO_ALLTHENTICATE_KEY": randomHex(16),
	}

	out.title("starting the directory and the applications (all on loopback)")
	ld, err := ldapdir.Start(ldapdir.Options{BindPassword: config.NewSecret(secrets["DEMO_LDAP_PASSWORD"]), Now: func() time.Time { return time.Now() }})
	if err != nil {
		return fmt.Errorf("demo: directory: %w", err)
	}
	defer ld.Close()
	people := ld.Users()
	groups := map[string]bool{}
	for _, p := range people {
		for _, g := range p.Groups {
			groups[g] = true
		}
	}
	out.say("LDAP directory   %s  (%d people in %d groups)", ld.URL(), len(people), len(groups))

	var apps []demoApp
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// Ezeelogin: users come from the same directory in Ezeelogin itself.
	ezState := filepath.Join(dir, "ezeelogin.json")
	var uids []string
	for _, p := range people {
		uids = append(uids, p.UID)
	}
	if err := ezeeloginfake.Create(ezState, ezeeloginfake.Options{Secret: secrets["DEMO_EZEELOGIN_SECRET"], Users: uids}); err != nil {
		return fmt.Errorf("demo: ezeelogin fake: %w", err)
	}
	apps = append(apps, demoApp{target: "ssh-gateway", label: "Ezeelogin", yaml: fmt.Sprintf(`
  - name: ssh-gateway
    type: ezeelogin
    sources: [directory]
    scope: [staff, contractors]
    api_url: https://gateway.demo.test/ezlogin
    secret: ${DEMO_EZEELOGIN_SECRET}
    version: "7.41.0"
    command: [%q, __ezwapi-fake, --state, %q]
    rate_limit: 100
    concurrency: 4
`, exe, ezState), gone: func(uid, _ string) bool {
		u, ok, err := ezeeloginfake.GetUser(ezState, uid)
		return err == nil && ok && u.Suspended
	}})
	// Netmaker.
	nm := netmakerfake.New(netmakerfake.Options{})
	nmURL, err := nm.Start("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: netmaker fake: %w", err)
	}
	defer nm.Close()
	secrets["DEMO_NETMAKER_TOKEN"] = nm.AdminToken()
	apps = append(apps, demoApp{target: "vpn", label: "Netmaker", yaml: fmt.Sprintf(`
  - name: vpn
    type: netmaker
    sources: [directory]
    scope: [vpn-users]
    base_url: %s
    token: ${DEMO_NETMAKER_TOKEN}
    roles: [{group: netmaker-admins, role: admin}]
    default_role: platform-user
    groups: [{group: engineering, as: engineering}]
    create_groups: true
    rate_limit: 100
`, nmURL), gone: func(uid, mail string) bool {
		for _, u := range nm.Users() {
			if u.Username == uid || strings.EqualFold(u.Username, mail) {
				return u.AccountDisabled
			}
		}
		return false
	}})
	extra, err := demoMoreApps(people, secrets)
	if err != nil {
		return err
	}
	for _, a := range extra {
		if a.close != nil {
			defer a.close()
		}
	}
	apps = append(apps, extra...)
	for _, a := range apps {
		out.say("%-16s fake started (target %q)", a.label, a.target)
	}
	for k, v := range secrets {
		os.Setenv(k, v)
		defer os.Unsetenv(k)
	}

	var targets strings.Builder
	for _, a := range apps {
		targets.WriteString(a.yaml)
	}
	cfgText := fmt.Sprintf(`log: {level: warn, format: json}
state: {backend: embedded, path: %q}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@hourly", incremental: 200ms}
safety: {max_suspend: 10, max_suspend_percent: 50}
sources:
  - name: directory
    type: ldap
    urls: [%q]
    flavour: openldap
    bind_dn: %q
    bind_password: ${DEMO_LDAP_PASSWORD}
    users: {base_dn: %q}
    groups: {base_dn: %q}
    incremental: {mode: modify_timestamp, poll_interval: 100ms}
  - name: idp
    type: scim
    tokens: ["${DEMO_SCIM_TOKEN}"]
targets:%s`, filepath.Join(dir, "state.db"), ld.URL(), ld.BindDN(), ldapdir.PeopleDN, ldapdir.GroupsDN, targets.String())
	cfgPath := filepath.Join(dir, "dirsync.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return err
	}
	cfg, err := config.Parse(strings.NewReader(cfgText))
	if err != nil {
		return fmt.Errorf("demo: config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo: config: %w", err)
	}
	decisions := make(chan state.Decision, 4096)
	logFile, err := os.Create(filepath.Join(dir, "dirsync.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	a, err := newApp(ctx, cfg, appOptions{logOut: logFile, onDecision: func(d state.Decision) {
		select {
		case decisions <- d:
		default:
		}
	}})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer a.close()

	// 1. The plan, with reasons, before anything is applied.
	out.title("the plan: what the first run will do, and why")
	pf, err := a.engine.MakePlanFile(ctx, dsync.RunOptions{Trigger: "demo"})
	if err != nil {
		return fmt.Errorf("demo: plan: %w", err)
	}
	demoPlan(out, pf)

	// 2. The daemon applies it (it is the leader: one replica).
	out.title("applying it (the daemon's first run)")
	d := newDaemon(a)
	dctx, stopDaemon := context.WithCancel(ctx)
	defer stopDaemon()
	addrCh := make(chan string, 1)
	served := make(chan error, 1)
	go func() { served <- d.serve(dctx, func(addr string) { addrCh <- addr }) }()
	var addr string
	select {
	case addr = <-addrCh:
	case err := <-served:
		return fmt.Errorf("demo: daemon: %w", err)
	}
	waitRuns(ctx, d, 1)
	demoDecisions(out, drain(decisions))
	out.say("daemon on http://%s  (/healthz /readyz /metrics, SCIM at /scim/idp/v2)", addr)
	out.event("daemon", map[string]any{"addr": addr, "state_dir": dir})

	// 3. Someone leaves: disabled in the directory. How long until every
	// application has lost them?
	var leaver ldapdir.Person
	for _, p := range people {
		if p.UID == ldapdir.DemoLeaver {
			leaver = p
		}
	}
	out.title(fmt.Sprintf("disabling %s in the directory", leaver.UID))
	t0 := time.Now()
	if err := ld.SetDisabled(leaver.UID, true); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	took := map[string]time.Duration{}
	deadline := t0.Add(30 * time.Second)
	for len(took) < len(apps) && time.Now().Before(deadline) {
		for _, ap := range apps {
			if _, done := took[ap.label]; !done && ap.gone(leaver.UID, leaver.Email) {
				took[ap.label] = time.Since(t0)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	demoDecisions(out, drain(decisions))
	var worst time.Duration
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if !out.json {
		fmt.Fprintln(tw, "APPLICATION\tSUSPENDED AFTER")
	}
	for _, ap := range apps {
		dur, ok := took[ap.label]
		if !ok {
			if !out.json {
				fmt.Fprintf(tw, "%s\t%s\n", ap.label, out.paint("31", "not within 30s"))
			}
			out.event("propagation", map[string]any{"application": ap.label, "ok": false})
			worst = 30 * time.Second
			continue
		}
		worst = max(worst, dur)
		if !out.json {
			fmt.Fprintf(tw, "%s\t%d ms\n", ap.label, dur.Milliseconds())
		}
		out.event("propagation", map[string]any{"application": ap.label, "ms": dur.Milliseconds(), "ok": true})
	}
	tw.Flush()
	if len(took) == len(apps) {
		out.say("%s", out.paint("1;32", fmt.Sprintf("%s lost access to all %d applications in %d ms.", leaver.UID, len(apps), worst.Milliseconds())))
	} else {
		out.say("%s", out.paint("1;31", fmt.Sprintf("%d of %d applications suspended %s within 30 s: see %s", len(took), len(apps), leaver.UID, logFile.Name())))
	}
	out.event("summary", map[string]any{"user": leaver.UID, "applications": len(apps), "suspended": len(took), "max_ms": worst.Milliseconds()})

	if !*once {
		out.say("\nthe daemon keeps running: try `dirsync explain %s --config %s` or `dirsync decisions --config %s` in another terminal; Ctrl-C to stop", leaver.UID, cfgPath, cfgPath)
		<-ctx.Done()
	}
	stopDaemon()
	<-served
	if len(took) < len(apps) {
		return exitError{code: exitPartial, err: fmt.Errorf("not every application suspended %s", leaver.UID)}
	}
	return nil
}

func waitRuns(ctx context.Context, d *daemon, n int64) {
	for d.runCount.Load() < n && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

func drain(ch chan state.Decision) []state.Decision {
	time.Sleep(50 * time.Millisecond)
	var out []state.Decision
	for {
		select {
		case d := <-ch:
			out = append(out, d)
		default:
			return out
		}
	}
}

// notable says whether a plan row or decision is worth a line of its own
// in the demo's text output; the routine rest is counted.
func notable(action, reason string) bool {
	switch action {
	case "create", "update", "set_groups":
		return false
	case "set_role":
		return !strings.Contains(reason, "default_role")
	}
	return true
}

func demoPlan(out *demoOut, pf *dsync.PlanFile) {
	type row struct{ target, user, action, reason string }
	var rows []row
	for _, p := range pf.Plans {
		for _, s := range p.Steps {
			rows = append(rows, row{p.Target, s.User, string(s.Action), s.Reason})
		}
		for _, s := range p.Skips {
			rows = append(rows, row{p.Target, s.User, string(s.Action) + " (skip)", s.Reason})
		}
	}
	if out.json {
		for _, r := range rows {
			out.event("plan", map[string]any{"target": r.target, "user": r.user, "action": r.action, "reason": r.reason})
		}
		return
	}
	counts := map[string]map[string]int{}
	tw := tabwriter.NewWriter(out.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tUSER\tACTION\tREASON")
	for _, r := range rows {
		if counts[r.target] == nil {
			counts[r.target] = map[string]int{}
		}
		counts[r.target][r.action]++
		if notable(r.action, r.reason) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.target, r.user, r.action, r.reason)
		}
	}
	tw.Flush()
	fmt.Fprintln(out.w, "and the routine part, by target:")
	for _, t := range sortedKeys(counts) {
		var parts []string
		for _, a := range sortedKeys(counts[t]) {
			parts = append(parts, fmt.Sprintf("%d %s", counts[t][a], a))
		}
		fmt.Fprintf(out.w, "  %-12s %s\n", t, strings.Join(parts, ", "))
	}
	fmt.Fprintf(out.w, "%d actions planned; `dirsync explain USER` shows the reasons for anyone\n", len(rows))
}

func demoDecisions(out *demoOut, ds []state.Decision) {
	slices.SortStableFunc(ds, func(a, b state.Decision) int { return strings.Compare(a.Target, b.Target) })
	if out.json {
		for _, d := range ds {
			out.event("decision", map[string]any{"run_id": d.RunID, "trigger": d.Trigger, "target": d.Target, "user": d.User,
				"action": d.Action, "outcome": d.Outcome, "reason": d.Reason, "duration_ms": d.DurationMS, "error": d.Error})
		}
		return
	}
	counts := map[string]int{}
	tw := tabwriter.NewWriter(out.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tUSER\tACTION\tOUTCOME\tMS\tREASON")
	for _, d := range ds {
		counts[d.Outcome]++
		if d.Outcome == "applied" && !notable(d.Action, d.Reason) {
			continue
		}
		oc := d.Outcome
		switch oc {
		case "applied":
			oc = out.paint("32", oc)
		case "failed":
			oc = out.paint("31", oc)
		case "held", "skipped":
			oc = out.paint("33", oc)
		}
		reason := d.Reason
		if d.Error != "" {
			reason += " [" + d.Error + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", d.Target, d.User, d.Action, oc, d.DurationMS, reason)
	}
	tw.Flush()
	var parts []string
	for _, k := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	fmt.Fprintf(out.w, "%d decisions (%s); routine applied ones (create, update, groups, default roles) not listed\n", len(ds), strings.Join(parts, ", "))
}

// cmdEzwapiFake is the hidden subcommand the demo uses as Ezeelogin's API
// client: the demo re-executes its own binary instead of needing PHP.
func cmdEzwapiFake(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if code := ezeeloginfake.Main(args, stdout, stderr); code != 0 {
		return exitError{code: code}
	}
	return nil
}
