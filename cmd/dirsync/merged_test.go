package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testsrv/slapd"
	"github.com/dirsync/dirsync/state"
)

// A person in the directory (OpenLDAP) whom the IdP also pushes over SCIM
// (joined by email) is suspended by a targeted run when the IdP pushes
// active=false: the push resolves to the person through the link table,
// with no full run and no second account.
func TestSCIMPushForAPersonAlsoInLDAPIsATargetedRun(t *testing.T) {
	c := &slapd.Config{Suffix: slapd.DefaultSuffix}
	ldif := c.User("jo") + c.User("al") + c.Group("staff", c.UserDN("jo"), c.UserDN("al"))
	srv := slapd.Start(t, slapd.Options{LDIF: ldif})
	dir := t.TempDir()
	const token = "merged-test-token-7"
	t.Setenv("SCIM_TOKEN", token)
	t.Setenv("LDAP_PW", slapd.AdminPassword)
	cfgPath := filepath.Join(dir, "dirsync.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`state: {backend: embedded, path: %s}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@daily", reconcile: "off"}
sources:
  - name: idp
    type: scim
    tokens: ["${SCIM_TOKEN}"]
  - name: corp
    type: ldap
    urls: [%q]
    bind_dn: %q
    bind_password: ${LDAP_PW}
    users: {base_dn: %q}
    groups: {base_dn: %q}
targets:
  - name: app
    type: memory
    path: %s
`, filepath.Join(dir, "state.db"), srv.URL, srv.AdminDN, srv.PeopleDN(), srv.GroupsDN(), filepath.Join(dir, "app.json"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	decisions := make(chan state.Decision, 100)
	var logs safeBuffer
	a, err := newApp(context.Background(), cfg, appOptions{logOut: &logs, onDecision: func(d state.Decision) { decisions <- d }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	d := newDaemon(a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	go d.serve(ctx, func(s string) { addr <- s })
	base := "http://" + <-addr + "/scim/idp/v2"
	waitDecision(t, decisions, "create", 20*time.Second)
	waitDecision(t, decisions, "create", 5*time.Second)

	do := func(method, path, body string) map[string]any {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return m
	}
	u := do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"jo.idp",
		"emails":[{"value":"jo@example.test","primary":true}],"active":true}`)
	id, _ := u["id"].(string)
	time.Sleep(500 * time.Millisecond) // the push's targeted run: nothing to do
	start := time.Now()
	do("PATCH", "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":false}]}`)
	dec := waitDecision(t, decisions, "suspend", 10*time.Second)
	if dec.Outcome != "applied" || (dec.User != "jo" && dec.User != "jo.idp") || !strings.HasPrefix(dec.Trigger, "incremental:idp") {
		t.Fatalf("suspend decision %+v: want jo suspended by a targeted run of the idp push", dec)
	}
	t.Logf("SCIM push active=false for a person also in LDAP → suspended in %v", time.Since(start))
	// One account for jo: the push did not create a second one.
	b, _ := os.ReadFile(filepath.Join(dir, "app.json"))
	var accts map[string]map[string]any
	_ = json.Unmarshal(b, &accts)
	if len(accts) != 2 {
		t.Fatalf("application has %d accounts, want 2 (jo and al): %s", len(accts), b)
	}
	for {
		select {
		case d := <-decisions:
			if d.Action == "create" {
				t.Fatalf("a second account was created: %+v", d)
			}
		default:
			return
		}
	}
}

// A member removed from the scope group on slapd (syncrepl) is a targeted
// run for that member only: their account is deprovisioned, nobody else is
// looked at, and the directory is not pulled again.
func TestGroupRemovalOnSlapdIsATargetedRun(t *testing.T) {
	c := &slapd.Config{Suffix: slapd.DefaultSuffix}
	ldif := c.User("jo") + c.User("al") + c.User("kim") + c.Group("vpn-users", c.UserDN("jo"), c.UserDN("al"), c.UserDN("kim"))
	srv := slapd.Start(t, slapd.Options{LDIF: ldif})
	dir := t.TempDir()
	t.Setenv("LDAP_PW", slapd.AdminPassword)
	cfgPath := filepath.Join(dir, "dirsync.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`state: {backend: embedded, path: %s}
http: {listen: "127.0.0.1:0"}
schedule: {full: "@daily", reconcile: "off"}
sources:
  - name: corp
    type: ldap
    urls: [%q]
    bind_dn: %q
    bind_password: ${LDAP_PW}
    users: {base_dn: %q}
    groups: {base_dn: %q}
targets:
  - name: app
    type: memory
    path: %s
    scope: [vpn-users]
`, filepath.Join(dir, "state.db"), srv.URL, srv.AdminDN, srv.PeopleDN(), srv.GroupsDN(), filepath.Join(dir, "app.json"))), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	decisions := make(chan state.Decision, 100)
	var logs safeBuffer
	a, err := newApp(context.Background(), cfg, appOptions{logOut: &logs, onDecision: func(d state.Decision) { decisions <- d }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	d := newDaemon(a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr := make(chan string, 1)
	go d.serve(ctx, func(s string) { addr <- s })
	<-addr
	for range 3 {
		waitDecision(t, decisions, "create", 20*time.Second)
	}
	time.Sleep(300 * time.Millisecond) // the syncrepl watch is up
	start := time.Now()
	srv.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\ndelete: member\nmember: %s\n", c.GroupDN("vpn-users"), c.UserDN("al")))
	dec := waitDecision(t, decisions, "suspend", 10*time.Second)
	if dec.User != "al" || dec.Outcome != "applied" || !strings.HasPrefix(dec.Trigger, "incremental:corp") {
		t.Fatalf("decision %+v: want al suspended by a targeted run of the syncrepl change", dec)
	}
	t.Logf("member removed from the scope group → suspended in %v", time.Since(start))
	time.Sleep(300 * time.Millisecond)
	for {
		select {
		case d := <-decisions:
			if d.RunID == dec.RunID || d.Action == "full_run" {
				t.Fatalf("the targeted run decided about someone else, or fell back to a full run: %+v", d)
			}
		default:
			return
		}
	}
}
