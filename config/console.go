package config

import (
	"fmt"
	"go.yaml.in/yaml/v3"
	"net/url"
	"slices"
	"strings"
)

// Console configures the web console at /ui/ on the daemon's listener. It is
// off unless Enabled is set.
type Console struct {
	Enabled bool `yaml:"enabled"`
	// BaseURL is the console's address as people's browsers reach it
	// (https://dirsync.corp.example/ui/); the OIDC redirect URI and the
	// links in notifications are made from it.
	BaseURL string `yaml:"base_url"`
	// OIDC is the organisation's identity provider (authorization code
	// flow with PKCE).
	OIDC ConsoleOIDC `yaml:"oidc"`
	// AdminToken, when set, signs in as an approver without an IdP: for a
	// first set-up only; remove it once OIDC works.
	AdminToken Secret `yaml:"admin_token"`
	// SessionKey signs session cookies (at least 32 characters). Replicas
	// behind one address need the same key; empty means a random key per
	// process (sessions end when it restarts).
	SessionKey Secret `yaml:"session_key"`
	// SessionTTL is how long a sign-in lasts at most, however active
	// (default 8h).
	SessionTTL Duration `yaml:"session_ttl"`
	// SessionIdle ends a session nobody used for this long (default 30m).
	SessionIdle Duration `yaml:"session_idle"`
	// RoleRefresh bounds how old a session's groups may be: past it they
	// are read again from the IdP (refresh token), or the person signs in
	// again (default 10m).
	RoleRefresh Duration `yaml:"role_refresh"`
}

// ConsoleOIDC is the console's OpenID Connect client.
type ConsoleOIDC struct {
	Issuer       string   `yaml:"issuer"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret Secret   `yaml:"client_secret"`
	Scopes       []string `yaml:"scopes"` // default openid, profile, email, groups
	// RoleClaim is the ID-token claim holding the person's groups or roles
	// (a string or a list of strings; default "groups").
	RoleClaim string `yaml:"role_claim"`
	// Viewers and Approvers are the claim values that grant each role;
	// approver includes viewer. A person with neither is refused.
	Viewers   []string `yaml:"viewers"`
	Approvers []string `yaml:"approvers"`
}

// Notify configures notifications to people (webhooks).
type Notify struct {
	Webhooks []Webhook `yaml:"webhooks"`
	// SourceFailures is how many runs in a row a source must fail before
	// a notification (default 3).
	SourceFailures int `yaml:"source_failures"`
	// SuspendAttempts is how many failed attempts to suspend (or delete) a
	// leaver make a notification (default 3).
	SuspendAttempts int `yaml:"suspend_attempts"`
}

// Webhook is one notification receiver.
type Webhook struct {
	Name string `yaml:"name"`
	// Type is webhook (a JSON body) or slack (a Slack-compatible incoming
	// webhook: {"text": ...}).
	Type string `yaml:"type"`
	// URL is a secret: incoming-webhook URLs carry their credential.
	URL Secret `yaml:"url"`
	// Events limits what is sent: held, source_failing, breaker_open,
	// suspend_failing (default all).
	Events []string `yaml:"events"`
	// Timeout bounds one delivery attempt (default 10s).
	Timeout Duration `yaml:"timeout"`
	// Attempts bounds the deliveries of one notification (default 5),
	// with exponential backoff from 1s.
	Attempts int `yaml:"attempts"`
}

// NotifyEvents are the notification kinds.
var NotifyEvents = []string{"held", "source_failing", "breaker_open", "suspend_failing"}

func (c *Config) validateConsole(ps *Problems) {
	con := c.HTTP.Console
	if con.Enabled {
		if con.BaseURL == "" {
			ps.Add("http.console.base_url", "is required when the console is enabled (the address browsers use, e.g. https://dirsync.example/ui/)")
		} else if u, err := url.Parse(con.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ps.Add("http.console.base_url", "must be an absolute http(s) URL (got %q)", con.BaseURL)
		} else if h := u.Hostname(); u.Scheme == "http" && h != "localhost" && h != "127.0.0.1" && h != "::1" {
			ps.Add("http.console.base_url", "must be https (the session cookies are Secure; browsers drop them over plain http except on localhost) (got %q)", con.BaseURL)
		}
		o := con.OIDC
		if o.Issuer == "" && con.AdminToken.IsZero() {
			ps.Add("http.console.oidc.issuer", "is required (or admin_token for a first set-up)")
		}
		if o.Issuer != "" {
			if o.ClientID == "" {
				ps.Add("http.console.oidc.client_id", "is required with an issuer")
			}
			if len(o.Viewers)+len(o.Approvers) == 0 {
				ps.Add("http.console.oidc.approvers", "name at least one group (viewers or approvers) that may use the console")
			}
		}
		if k := con.SessionKey.Value(); k != "" && len(k) < 32 {
			ps.Add("http.console.session_key", "must be at least 32 characters")
		}
		if k := con.AdminToken.Value(); k != "" && len(k) < 16 {
			ps.Add("http.console.admin_token", "must be at least 16 characters")
		}
		if con.SessionTTL < 0 {
			ps.Add("http.console.session_ttl", "must be > 0")
		}
		if con.SessionIdle < 0 {
			ps.Add("http.console.session_idle", "must be > 0")
		}
		if con.RoleRefresh < 0 {
			ps.Add("http.console.role_refresh", "must be > 0")
		}
	}
	n := c.Notify
	if n.SourceFailures < 0 {
		ps.Add("notify.source_failures", "must be >= 1")
	}
	if n.SuspendAttempts < 0 {
		ps.Add("notify.suspend_attempts", "must be >= 1")
	}
	names := map[string]bool{}
	for i, w := range n.Webhooks {
		p := fmt.Sprintf("notify.webhooks[%d]", i)
		checkName(ps, p, w.Name, names)
		if w.Type != "webhook" && w.Type != "slack" {
			ps.Add(p+".type", "must be webhook or slack (got %q)", w.Type)
		}
		// The URL is a secret: never echo it in a problem.
		if u, err := url.Parse(w.URL.Value()); w.URL.IsZero() || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ps.Add(p+".url", "must be an absolute http(s) URL")
		}
		for j, e := range w.Events {
			if !slices.Contains(NotifyEvents, e) {
				ps.Add(fmt.Sprintf("%s.events[%d]", p, j), "must be one of %s (got %q)", strings.Join(NotifyEvents, ", "), e)
			}
		}
		if w.Timeout < 0 {
			ps.Add(p+".timeout", "must be > 0")
		}
		if w.Attempts < 0 {
			ps.Add(p+".attempts", "must be >= 1")
		}
	}
}

// secretKeyWords mark a plugin setting whose value is a credential.
var secretKeyWords = []string{"password", "secret", "token", "api_key", "apikey", "credential"}

// SecretValues returns the values of the plugin's settings whose key names
// a credential (password, secret, token, api key), resolved as a Secret
// would be. It is a safety net for output filters (the console refuses a
// page containing one); the plugin's own Secret fields remain the rule.
func (p Plugin) SecretValues() []string {
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := strings.ToLower(n.Content[i].Value), n.Content[i+1]
				if v.Kind == yaml.ScalarNode && slices.ContainsFunc(secretKeyWords, func(w string) bool { return strings.Contains(k, w) }) {
					if s, err := ResolveSecret(v.Value); err == nil && s != "" {
						out = append(out, s)
					}
					continue
				}
				walk(v)
			}
		}
	}
	walk(p.node)
	return out
}
