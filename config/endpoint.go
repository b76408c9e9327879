package config

import (
	"net/url"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// endpointKeys are the target settings that say where the application is,
// in the order they are looked for.
var endpointKeys = []string{"base_url", "api_url", "url", "account_url", "path"}

// Endpoint names the application instance a target writes to: its type and
// the URL (or, for the file-backed memory target, the path) it is configured
// with, normalised (scheme and host lower-cased, no trailing slash). Two
// targets with the same endpoint write to the same application, whatever
// they are called. It is "" when the target names no endpoint.
func (t Target) Endpoint() string {
	v := nodeString(t.node, endpointKeys...)
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
		u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		v = strings.TrimRight(u.String(), "/")
	} else if abs, err := filepath.Abs(v); err == nil {
		v = abs
	}
	return t.Type + " " + v
}

// nodeString returns the scalar value of the first of keys the mapping node
// has ("" when none).
func nodeString(n *yaml.Node, keys ...string) string {
	if n == nil || n.Kind != yaml.MappingNode {
		return ""
	}
	for _, k := range keys {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k && n.Content[i+1].Kind == yaml.ScalarNode {
				return strings.TrimSpace(n.Content[i+1].Value)
			}
		}
	}
	return ""
}

// SharedEndpoints returns the endpoints that more than one configured target
// writes to (endpoint → target names): two targets of one deployment
// applying to one application fight over its accounts.
func (c *Config) SharedEndpoints() map[string][]string {
	by := map[string][]string{}
	for _, t := range c.Targets {
		if ep := t.Endpoint(); ep != "" {
			by[ep] = append(by[ep], t.Name)
		}
	}
	for ep, names := range by {
		if len(names) < 2 {
			delete(by, ep)
		}
	}
	return by
}
