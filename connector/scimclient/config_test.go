package scimclient

import (
	"strings"
	"testing"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
)

func TestConfigErrorsNameTheKey(t *testing.T) {
	const ok = "base_url: https://scim.example.test/v2\nauth: {bearer_token: t0ken}\n"
	cases := []struct {
		settings string
		want     []string
	}{
		{"auth: {bearer_token: t0ken}", []string{"targets[0].base_url: is required"}},
		{"base_url: ftp://x\nauth: {bearer_token: t0ken}", []string{`targets[0].base_url: must be an http(s) URL (got "ftp://x")`}},
		{"base_url: https://u:p@x/v2\nauth: {bearer_token: t0ken}", []string{"targets[0].base_url: must not carry credentials"}},
		{"base_url: https://x/v2", []string{"targets[0].auth: bearer_token or oauth2 is required"}},
		{"base_url: https://x/v2\nauth: {bearer_token: t0ken, oauth2: {token_url: https://x/t, client_id: a, client_secret: b}}", []string{"targets[0].auth: set either bearer_token or oauth2, not both"}},
		{"base_url: https://x/v2\nauth: {oauth2: {token_url: nope, auth_style: basic}}", []string{
			"targets[0].auth.oauth2.token_url: must be an http(s) URL",
			"targets[0].auth.oauth2.client_id: is required",
			"targets[0].auth.oauth2.client_secret: is required",
			`targets[0].auth.oauth2.auth_style: must be auto, header or params (got "basic")`}},
		{ok + "match_by: email", []string{`targets[0].match_by: must be userName or externalId (got "email")`}},
		{ok + "patch: sometimes", []string{`targets[0].patch: must be auto, on or off (got "sometimes")`}},
		{ok + "page_size: 5000", []string{"targets[0].page_size: must be between 1 and 1000"}},
		{ok + "enterprise_attributes: {badge: b}", []string{"targets[0].enterprise_attributes.badge: unknown enterprise field"}},
		{ok + "extension_attributes: {badge: b}", []string{"targets[0].extension_attributes.badge: must be a full attribute path"}},
		{ok + "user_schema_extensions: [acme]", []string{`targets[0].user_schema_extensions[0]: must be a schema URN (got "acme")`}},
		{ok + "role_attribute: roles[primary eq true]", []string{"targets[0].role_attribute: must be an attribute name or path"}},
		{ok + "page_sise: 10", []string{`targets[0].page_sise: unknown key (did you mean "page_size"?)`}},
		{ok + "auth2: {}", []string{"targets[0].auth2: unknown key"}},
		{"base_url: https://x/v2\nauth: {bearer_token: t0ken, token: x}", []string{"targets[0].auth.token: unknown key"}},
	}
	for _, c := range cases {
		_, err := build(t, c.settings, connector.Deps{})
		if err == nil {
			t.Fatalf("%q: no error", c.settings)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q:\n got: %v\nwant: %s", c.settings, err, w)
			}
		}
		if strings.Contains(err.Error(), "t0ken") {
			t.Errorf("%q: the error shows the token: %v", c.settings, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	tg, err := build(t, "base_url: https://scim.example.test/v2/\nauth: {bearer_token: t0ken}\nmatch_by: externalid\npatch: false", connector.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s := unwrap(tg).s
	if s.MatchBy != "externalId" || s.Patch != "off" || s.PageSize != 100 || !*s.ManageGroups || unwrap(tg).base != "https://scim.example.test/v2" {
		t.Fatalf("settings %+v", s)
	}
	if unwrap(tg).usePatch() {
		t.Fatal("patch: false still uses PATCH")
	}
}

// TestSample checks that the embedded sample parses as a targets entry and
// builds a connector with roles and groups.
func TestSample(t *testing.T) {
	t.Setenv("ACME_SCIM_TOKEN", "sample-token")
	var b strings.Builder
	b.WriteString("sources:\n  - name: corp\n    type: ldap\ntargets:\n")
	for _, l := range strings.Split(strings.TrimRight(Sample, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	cfg, err := config.Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("sample does not parse: %v\n%s", err, b.String())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("sample does not validate: %v", err)
	}
	if len(cfg.Targets) != 1 || cfg.Targets[0].Type != Type {
		t.Fatalf("sample targets: %+v", cfg.Targets)
	}
	tg, err := Factory(cfg.Targets[0], connector.Deps{})
	if err != nil {
		t.Fatalf("sample: %v", err)
	}
	if _, ok := tg.(connector.RoleSetter); !ok {
		t.Fatal("the sample configures a role attribute but the target is no RoleSetter")
	}
	if _, ok := tg.(connector.GroupSetter); !ok {
		t.Fatal("the sample manages groups but the target is no GroupSetter")
	}
	if unwrap(tg).s.Auth.BearerToken.Value() != "sample-token" {
		t.Fatal("the sample's ${ACME_SCIM_TOKEN} was not expanded")
	}
}
