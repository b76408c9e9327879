package config

import (
	"path"
	"strings"
)

// IsPrivilegedRole reports whether role counts as privileged: it matches one
// of patterns (names or path.Match patterns, case-insensitive names), or,
// with no patterns, it is admin-like (contains "admin", or is super, owner
// or root). `dirsync report access --privileged` and the guard's judgement
// of a role change both use it.
func IsPrivilegedRole(patterns []string, role string) bool {
	if role == "" {
		return false
	}
	if len(patterns) > 0 {
		for _, p := range patterns {
			if ok, _ := path.Match(p, role); ok || strings.EqualFold(p, role) {
				return true
			}
		}
		return false
	}
	r := strings.ToLower(role)
	return strings.Contains(r, "admin") || r == "super" || r == "owner" || r == "root"
}
