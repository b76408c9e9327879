package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConsoleAndNotifyProblemsNameTheirKeys(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	const hook = "https//hooks.example/services/T0/SECRETPART"
	os.WriteFile(p, []byte(`state: {backend: embedded, path: /tmp/x.db}
http:
  console:
    enabled: true
    base_url: not-a-url
    oidc: {issuer: https://idp.example, client_id: ""}
    session_key: short
notify:
  webhooks:
    - {name: ops, type: teams, url: "`+hook+`", events: [held, lunch]}
sources: [{name: hr, type: file}]
`), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("no problems found")
	}
	for _, want := range []string{"http.console.base_url: must be an absolute", "http.console.oidc.client_id: is required",
		"http.console.oidc.approvers: name at least one group", "http.console.session_key: must be at least 32",
		"notify.webhooks[0].type: must be webhook or slack", "notify.webhooks[0].url: must be an absolute", `notify.webhooks[0].events[1]: must be one of`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "SECRETPART") {
		t.Fatal("a problem echoes the webhook URL")
	}
}

func TestConsoleNeedsHTTPSExceptOnLoopback(t *testing.T) {
	for url, ok := range map[string]bool{"https://dirsync.corp.example/ui/": true, "http://localhost:8080/ui/": true,
		"http://127.0.0.1:8080/ui/": true, "http://dirsync.corp.example/ui/": false} {
		c := &Config{HTTP: HTTP{Console: Console{Enabled: true, BaseURL: url, AdminToken: NewSecret("0123456789abcdef")}}}
		var ps Problems
		c.validateConsole(&ps)
		if (ps.Err() == nil) != ok {
			t.Errorf("%s: problems %v, want ok=%v", url, ps.Err(), ok)
		}
	}
}

func TestPluginSecretValues(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	t.Setenv("NM_TOKEN", "nm-token-value")
	os.WriteFile(p, []byte(`state: {backend: embedded, path: /tmp/x.db}
sources: [{name: hr, type: ldap, bind_password: "bindpw-1", base_dn: "dc=x"}]
targets: [{name: nm, type: netmaker, token: "${NM_TOKEN}", url: "https://nm", auth: {client_secret: cs-2}}]
`), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	got := append(c.Sources[0].SecretValues(), c.Targets[0].SecretValues()...)
	if strings.Join(got, ",") != "bindpw-1,nm-token-value,cs-2" {
		t.Fatalf("secret values = %v", got)
	}
}
