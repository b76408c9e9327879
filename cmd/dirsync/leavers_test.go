package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/connector/ezeelogin/ezeeloginfake"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
	"github.com/dirsync/dirsync/internal/demo/ldapdir"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
	"github.com/dirsync/dirsync/report"
	"github.com/dirsync/dirsync/state"
)

// TestReportLeaversMatchesDecisions: two people disabled on a real slapd
// (syncrepl) lose the four applications (Ezeelogin, Netmaker, ezeep Blue,
// Allthenticate fakes); `dirsync report leavers` then gives, for each of
// them and each application, the confirmation time of the applied
// decision, the source time of the entry's modifyTimestamp, and the time
// in between.
func TestReportLeaversMatchesDecisions(t *testing.T) {
	lc := &slapd.Config{Suffix: slapd.DefaultSuffix}
	uids := []string{"al", "bo", "cy", "di"}
	var ldif strings.Builder
	var dns []string
	var people []ldapdir.Person
	for _, u := range uids {
		ldif.WriteString(lc.User(u))
		dns = append(dns, lc.UserDN(u))
		people = append(people, ldapdir.Person{UID: u, Email: u + "@example.test", DisplayName: strings.ToUpper(u[:1]) + u[1:] + " Test"})
	}
	for _, g := range []string{"staff", "vpn-users", "printing"} {
		ldif.WriteString(lc.Group(g, dns...))
	}
	srv := slapd.Start(t, slapd.Options{LDIF: ldif.String()})
	dir := t.TempDir()
	secrets := map[string]string{"DEMO_EZEELOGIN_SECRET": "ez-secret-0123456789", "DEMO_EZEEP_SECRET": "ezeep-secret-0123456789",
		"DEMO_ALLTHENTICATE_KEY": "at-key-0123456789abcdef", "LDAP_PW": slapd.AdminPassword}
	ezState := filepath.Join(dir, "ezeelogin.json")
	if err := ezeeloginfake.Create(ezState, ezeeloginfake.Options{Secret: secrets["DEMO_EZEELOGIN_SECRET"], Users: uids}); err != nil {
		t.Fatal(err)
	}
	nm := netmakerfake.New(netmakerfake.Options{})
	nmURL, err := nm.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nm.Close() })
	secrets["DEMO_NETMAKER_TOKEN"] = nm.AdminToken()
	more, err := demoMoreApps(people, secrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range more {
		t.Cleanup(a.close)
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`state: {backend: embedded, path: %[1]s/state.db}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@daily", reconcile: "off", incremental: 0}
safety: {max_suspend: 10, max_suspend_percent: 100, max_delete_percent: 100, max_access_removal_percent: 100}
sources:
  - name: directory
    type: ldap
    urls: [%[2]q]
    bind_dn: %[3]q
    bind_password: ${LDAP_PW}
    users: {base_dn: %[4]q}
    groups: {base_dn: %[5]q}
targets:
  - name: ssh-gateway
    type: ezeelogin
    sources: [directory]
    scope: [staff]
    api_url: https://gateway.demo.test/ezlogin
    secret: ${DEMO_EZEELOGIN_SECRET}
    version: "7.41.0"
    command: [%[6]q, __ezwapi-fake, --state, %[7]q]
  - name: vpn
    type: netmaker
    sources: [directory]
    scope: [vpn-users]
    base_url: %[8]s
    token: ${DEMO_NETMAKER_TOKEN}
    default_role: platform-user
%[9]s`, dir, srv.URL, srv.AdminDN, srv.PeopleDN(), srv.GroupsDN(), exe, ezState, nmURL, more[0].yaml+more[1].yaml)
	cfgPath := filepath.Join(dir, "dirsync.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var logs safeBuffer
	decisions := make(chan state.Decision, 1000)
	a, err := newApp(context.Background(), c, appOptions{logOut: &logs, onDecision: func(d state.Decision) { decisions <- d }})
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(a)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.serve(ctx, nil) }()
	stop := func() { cancel(); <-served; a.close() }
	defer func() {
		if ctx.Err() == nil {
			stop()
		}
	}()
	<-d.ready
	// The first run: every application knows the four (no leaver yet).
	waitRuns(context.Background(), d, 1)
	time.Sleep(500 * time.Millisecond) // the syncrepl watch is up
	start := time.Now().UTC().Truncate(time.Second)
	for _, u := range []string{"al", "bo"} {
		srv.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 000001010000Z\n", lc.UserDN(u)))
	}
	applied := map[string]state.Decision{} // target/user → the applied leaver decision
	deadline := time.After(30 * time.Second)
	for len(applied) < 8 {
		select {
		case dec := <-decisions:
			if dec.Outcome == "applied" && (dec.Action == "suspend" || dec.Action == "delete") {
				applied[dec.Target+"/"+dec.User] = dec
			}
		case <-deadline:
			t.Fatalf("within 30 s only %d of 8 leaver actions applied: %v", len(applied), applied)
		}
	}
	stop()

	var out, errb bytes.Buffer
	if code := runMain(context.Background(), []string{"report", "leavers", "--since", "1h", "--output", "json", "--config", cfgPath}, &out, &errb); code != exitOK {
		t.Fatalf("report leavers: exit %d\n%s", code, errb.String())
	}
	var rep report.LeaversReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(rep.Leavers) != 2 {
		t.Fatalf("leavers %+v, want al and bo", rep.Leavers)
	}
	for _, l := range rep.Leavers {
		if l.Name != "al" && l.Name != "bo" {
			t.Fatalf("leaver %q", l.Name)
		}
		if l.SourceTimeFrom != "modifyTimestamp" || l.SourceTime.Before(start) || l.SourceTime.After(time.Now()) {
			t.Fatalf("%s: source time %v from %q, want the entry's modifyTimestamp (after %v)", l.Name, l.SourceTime, l.SourceTimeFrom, start)
		}
		if len(l.Applications) != 4 || l.Pending != 0 {
			t.Fatalf("%s: applications %+v", l.Name, l.Applications)
		}
		for _, app := range l.Applications {
			dec, ok := applied[app.Application+"/"+app.Account]
			if !ok {
				t.Fatalf("%s: %s/%s has no applied decision", l.Name, app.Application, app.Account)
			}
			if !app.Confirmed.Equal(dec.Time) || app.Action != dec.Action {
				t.Fatalf("%s on %s: report says %s at %v, the decision %s at %v", l.Name, app.Application, app.Action, app.Confirmed, dec.Action, dec.Time)
			}
			if want := dec.Time.Sub(l.SourceTime).Seconds(); app.Seconds < want-0.001 || app.Seconds > want+0.001 {
				t.Fatalf("%s on %s: %v s, want %v", l.Name, app.Application, app.Seconds, want)
			}
		}
	}
	if len(rep.Applications) != 4 {
		t.Fatalf("per-application stats: %+v", rep.Applications)
	}
	t.Logf("%s", out.String()[:min(600, out.Len())])
}
