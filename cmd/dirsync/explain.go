package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
	dsync "github.com/dirsync/dirsync/sync"
)

func cmdExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var targets string
	fs := newFlags("explain", stderr)
	c.register(fs)
	fs.StringVar(&targets, "target", "", "comma-separated target names (default all)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) != 1 {
		return usageError{"usage: dirsync explain USER (username, email or key)"}
	}
	a, err := openApp(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	xs, err := a.engine.Explain(ctx, pos[0], dsync.RunOptions{Targets: splitList(targets), Trigger: "explain"})
	if err != nil {
		return err
	}
	if len(xs) == 0 {
		return fmt.Errorf("no user %q in any source or target cache", pos[0])
	}
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(xs)
	}
	printExplanations(stdout, xs)
	return nil
}

func printExplanations(w io.Writer, xs []dsync.Explanation) {
	for i, x := range xs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "target %s\n", x.Target)
		if x.User != nil {
			u := x.User
			fmt.Fprintf(w, "  source %s: key=%s username=%s email=%s active=%v", u.Source, u.Key, u.Username, u.Email, u.Active)
			if u.Expires != nil {
				fmt.Fprintf(w, " expires=%s", u.Expires.Format(time.RFC3339))
			}
			if u.MustChangePassword {
				fmt.Fprint(w, " must_change_password")
			}
			fmt.Fprintln(w)
			if len(u.Groups) > 0 {
				fmt.Fprintf(w, "    groups: %s\n", strings.Join(u.Groups, ", "))
			}
			for _, k := range sortedKeys(u.Facts) {
				fmt.Fprintf(w, "    fact %s: %s\n", k, u.Facts[k])
			}
			for _, k := range sortedKeys(u.Attributes) {
				fmt.Fprintf(w, "    attribute %s: %s\n", k, u.Attributes[k])
			}
		} else {
			fmt.Fprintln(w, "  not in any source of this target")
		}
		if x.InScope {
			fmt.Fprintf(w, "  rules: in scope (%s)", x.Why)
			if x.RoleWhy != "" {
				fmt.Fprintf(w, "; role from %s", x.RoleWhy)
			}
			fmt.Fprintln(w)
		} else {
			fmt.Fprintln(w, "  rules: not in scope")
		}
		fmt.Fprintf(w, "  desired: %s\n", describe(x.Desired))
		fmt.Fprintf(w, "  cached:  %s\n", describe(x.Cached))
		if len(x.Steps) == 0 && len(x.Skips) == 0 {
			fmt.Fprintln(w, "  next run: nothing to do")
		}
		for _, s := range x.Steps {
			fmt.Fprintf(w, "  next run: %s — %s\n", s.Action, s.Reason)
		}
		for _, s := range x.Skips {
			fmt.Fprintf(w, "  next run: skip %s — %s\n", s.Action, s.Reason)
		}
	}
}

func describe(a *identity.Account) string {
	if a == nil {
		return "(none)"
	}
	if !a.Exists {
		return "(does not exist)"
	}
	s := fmt.Sprintf("username=%s email=%s suspended=%v", a.Username, a.Email, a.Suspended)
	if a.Role != "" {
		s += " role=" + a.Role
	}
	if len(a.Groups) > 0 {
		s += " groups=" + strings.Join(a.Groups, ",")
	}
	if a.Expires != nil {
		s += " expires=" + a.Expires.Format(time.RFC3339)
	}
	if a.Deprovisioned {
		s += " deprovisioned"
	}
	for _, act := range slices.Sorted(maps.Keys(a.Failing)) {
		s += fmt.Sprintf(" %s_failed_runs=%d", act, a.Failing[act])
	}
	if len(a.Unknown) > 0 {
		s += " unknown=" + strings.Join(a.Unknown, ",")
	}
	return s
}
