package config

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Validate checks everything that can be checked without knowing the
// plugins, and returns every problem at once. Plugin settings are checked
// by the plugins themselves (see the registry in cmd).
func (c *Config) Validate() error {
	var ps Problems
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		ps.Add("log.level", "must be one of debug, info, warn, error (got %q)", c.Log.Level)
	}
	if !slices.Contains([]string{"json", "console"}, c.Log.Format) {
		ps.Add("log.format", "must be json or console (got %q)", c.Log.Format)
	}
	switch c.State.Backend {
	case "embedded":
		if c.State.Path == "" {
			ps.Add("state.path", "is required for the embedded backend")
		}
	case "redis":
		if len(c.State.Redis.Addrs) == 0 {
			ps.Add("state.redis.addrs", "at least one address is required for the redis backend")
		}
		if c.State.Redis.DB < 0 {
			ps.Add("state.redis.db", "must be >= 0")
		}
	default:
		ps.Add("state.backend", "must be embedded or redis (got %q)", c.State.Backend)
	}
	if !slices.Contains([]string{"", LeasesSingle, LeasesPerTarget}, c.State.Leases) {
		ps.Add("state.leases", "must be single or per_target (got %q)", c.State.Leases)
	}
	if c.State.JournalSize < 0 {
		ps.Add("state.journal_size", "must be > 0")
	}
	if _, err := time.LoadLocation(c.Schedule.Timezone); err != nil {
		ps.Add("schedule.timezone", "unknown time zone %q", c.Schedule.Timezone)
	}
	if c.Schedule.Incremental < 0 {
		ps.Add("schedule.incremental", "must be >= 0")
	}
	if n := len(strings.Fields(c.Schedule.Full)); n != 5 && n != 6 && !strings.HasPrefix(c.Schedule.Full, "@") {
		ps.Add("schedule.full", "must be a cron spec with 5 fields or a @descriptor (got %q)", c.Schedule.Full)
	}
	if r := c.Schedule.Reconcile; r != "off" {
		if n := len(strings.Fields(r)); n != 5 && n != 6 && !strings.HasPrefix(r, "@") {
			ps.Add("schedule.reconcile", "must be a cron spec with 5 fields, a @descriptor, or off (got %q)", r)
		}
	}
	l := c.Safety.Limits()
	if l.MaxSuspend < 0 {
		ps.Add("safety.max_suspend", "must be >= 0")
	}
	if l.MaxDelete < 0 {
		ps.Add("safety.max_delete", "must be >= 0")
	}
	if l.MaxAccessRemoval < 0 {
		ps.Add("safety.max_access_removal", "must be >= 0")
	}
	for k, v := range map[string]float64{"max_suspend_percent": l.MaxSuspendPercent, "max_delete_percent": l.MaxDeletePercent, "max_access_removal_percent": l.MaxAccessRemovalPercent, "max_source_shrink_percent": l.MaxSourceShrinkPercent} {
		if v < 0 || v > 100 {
			ps.Add("safety."+k, "must be between 0 and 100")
		}
	}
	if !slices.Contains([]string{"email", "username", "key"}, c.JoinKey) {
		ps.Add("join_key", "must be email, username or key (got %q)", c.JoinKey)
	}
	if len(c.Sources) == 0 {
		ps.Add("sources", "at least one source is required")
	}
	srcNames := map[string]bool{}
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		checkName(&ps, p, s.Name, srcNames)
		if s.Type == "" {
			ps.Add(p+".type", "is required")
		}
	}
	tgtNames := map[string]bool{}
	for _, t := range c.Targets {
		if t.Name != "" {
			tgtNames[t.Name] = false
		}
	}
	formerOf := map[string]string{}
	for i, t := range c.Targets {
		p := fmt.Sprintf("targets[%d]", i)
		for j, old := range t.RenamedFrom {
			q := fmt.Sprintf("%s.renamed_from[%d]", p, j)
			_, configured := tgtNames[old]
			switch {
			case old == "" || strings.ContainsAny(old, "/ \t:"):
				ps.Add(q, "must be a target name (got %q)", old)
			case configured:
				ps.Add(q, "%q is a configured target: a target renamed from it would take its history", old)
			case formerOf[old] != "":
				ps.Add(q, "%q is already the former name of target %q", old, formerOf[old])
			default:
				formerOf[old] = t.Name
			}
		}
		for j, r := range t.RoleRank {
			if strings.TrimSpace(r) == "" || slices.Contains(t.RoleRank[:j], r) {
				ps.Add(fmt.Sprintf("%s.role_rank[%d]", p, j), "must be a role named once (got %q)", r)
			}
		}
		// With a rank, every role the rules give must be in it: an unlisted
		// role would count as the most privileged.
		for j, r := range t.Roles {
			if len(t.RoleRank) > 0 && r.Role != "" && !slices.Contains(t.RoleRank, r.Role) {
				ps.Add(fmt.Sprintf("%s.roles[%d].role", p, j), "%q is not in role_rank", r.Role)
			}
		}
		if len(t.RoleRank) > 0 && t.DefaultRole != "" && !slices.Contains(t.RoleRank, t.DefaultRole) {
			ps.Add(p+".default_role", "%q is not in role_rank", t.DefaultRole)
		}
	}
	clear(tgtNames)
	for i, t := range c.Targets {
		p := fmt.Sprintf("targets[%d]", i)
		checkName(&ps, p, t.Name, tgtNames)
		if t.Type == "" {
			ps.Add(p+".type", "is required")
		}
		for j, s := range t.Sources {
			if !srcNames[s] {
				ps.Add(fmt.Sprintf("%s.sources[%d]", p, j), "unknown source %q", s)
			}
		}
		for j, r := range t.Roles {
			if r.Group == "" {
				ps.Add(fmt.Sprintf("%s.roles[%d].group", p, j), "is required")
			}
			if r.Role == "" {
				ps.Add(fmt.Sprintf("%s.roles[%d].role", p, j), "is required")
			}
		}
		for j, g := range t.Groups {
			if g.Group == "" {
				ps.Add(fmt.Sprintf("%s.groups[%d].group", p, j), "is required")
			}
		}
		switch t.Deprovision.Action {
		case "suspend", "delete", "none":
		default:
			ps.Add(p+".deprovision.action", "must be suspend, delete or none (got %q)", t.Deprovision.Action)
		}
		switch t.Reconcile.Drift {
		case "fix", "report":
		default:
			ps.Add(p+".reconcile.drift", "must be fix or report (got %q)", t.Reconcile.Drift)
		}
		switch t.Reconcile.Orphans {
		case "report", "suspend", "delete":
		default:
			ps.Add(p+".reconcile.orphans", "must be report, suspend or delete (got %q)", t.Reconcile.Orphans)
		}
		for j, pat := range t.Reconcile.Allow {
			if _, err := path.Match(pat, ""); err != nil || pat == "" {
				ps.Add(fmt.Sprintf("%s.reconcile.allow[%d]", p, j), "is not a valid name or pattern (%q)", pat)
			}
		}
		if t.Deprovision.DeleteAfter < 0 {
			ps.Add(p+".deprovision.delete_after", "must be >= 0")
		}
		if t.Deprovision.DeleteAfter > 0 && t.Deprovision.Action != "suspend" {
			ps.Add(p+".deprovision.delete_after", "only applies with action: suspend")
		}
		if t.RateLimit != nil && *t.RateLimit <= 0 {
			ps.Add(p+".rate_limit", "must be > 0")
		}
		if t.Concurrency < 1 {
			ps.Add(p+".concurrency", "must be >= 1")
		}
		if t.Timeout <= 0 {
			ps.Add(p+".timeout", "must be > 0")
		}
		if t.MaxAttempts < 1 {
			ps.Add(p+".max_attempts", "must be >= 1")
		}
		for j, a := range t.Order {
			if !slices.Contains([]string{"create", "unsuspend", "update", "set_role", "set_groups", "set_expiry", "force_password_change", "suspend", "delete"}, a) {
				ps.Add(fmt.Sprintf("%s.order[%d]", p, j), "unknown action %q", a)
			}
		}
		for j, n := range t.Protected {
			if strings.TrimSpace(n) == "" {
				ps.Add(fmt.Sprintf("%s.protected[%d]", p, j), "is empty")
			}
		}
		u := t.Username
		if u != "username" && u != "email" && !strings.HasPrefix(u, "attr:") {
			ps.Add(p+".username", "must be username, email or attr:NAME (got %q)", u)
		}
	}
	c.validateConsole(&ps)
	return ps.Err()
}

func checkName(ps *Problems, p, name string, seen map[string]bool) {
	switch {
	case name == "":
		ps.Add(p+".name", "is required")
	case strings.ContainsAny(name, "/ \t:"):
		ps.Add(p+".name", "must not contain '/', ':' or spaces (got %q)", name)
	case seen[name]:
		ps.Add(p+".name", "duplicate name %q", name)
	}
	seen[name] = true
}
