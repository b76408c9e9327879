package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dirsync/dirsync/report"
	dsync "github.com/dirsync/dirsync/sync"
)

// cmdReconcile reads every live account back from the applications that can
// list them, and fixes drift, orphans and missing accounts through the
// ordinary plan, guard and apply path.
func cmdReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var ro dsync.RunOptions
	var targets string
	fs := newFlags("reconcile", stderr)
	c.register(fs)
	fs.BoolVar(&ro.DryRun, "dry-run", false, "read back and decide, but change nothing")
	fs.BoolVar(&ro.AllowMassChange, "allow-mass-change", false, "apply the fixes even past the safety guard's thresholds")
	fs.StringVar(&targets, "target", "", "comma-separated target names (default all)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError{err.Error()}
	}
	ro.Targets, ro.Trigger, ro.Reconcile = splitList(targets), "reconcile", true
	return runOnce(ctx, c, ro, stdout, stderr)
}

// cmdReport prints the access report: report access [--target T]
// [--privileged] [--output table|csv|json].
func cmdReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var o report.Options
	fs := newFlags("report", stderr)
	c.register(fs)
	fs.StringVar(&o.Target, "target", "", "only this target")
	fs.BoolVar(&o.Privileged, "privileged", false, "only accounts with an admin-like role")
	since := fs.String("since", "", "leavers: the period's start (2026-11-01, RFC 3339, or a duration back from now: 168h)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	const usage = "usage: dirsync report access [--target T] [--privileged] [--output table|csv|json]\n       dirsync report leavers --since DATE [--output table|csv|json]"
	if len(pos) != 1 || (pos[0] != "access" && pos[0] != "leavers") {
		return usageError{usage}
	}
	if pos[0] == "leavers" {
		return cmdReportLeavers(ctx, c, *since, stdout, stderr)
	}
	switch c.output {
	case "text", "table", "csv", "json":
	default:
		return usageError{fmt.Sprintf("--output: %q is not table, csv or json", c.output)}
	}
	a, err := openApp(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	var ts []report.Target
	for _, t := range a.cfg.Targets {
		ts = append(ts, report.Target{Name: t.Name, Privileged: t.PrivilegedRoles})
	}
	if o.Target != "" && !containsTarget(ts, o.Target) {
		return usageError{fmt.Sprintf("--target: no target named %q", o.Target)}
	}
	rows, err := report.Access(ctx, a.store, ts, o)
	if err != nil {
		return err
	}
	switch c.output {
	case "csv":
		return report.WriteCSV(stdout, rows)
	case "json":
		return report.WriteJSON(stdout, rows)
	}
	return report.WriteTable(stdout, rows)
}

// parseSince reads --since: a date, an RFC 3339 time, or a duration back
// from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, errors.New("--since is required (a date such as 2026-11-01, an RFC 3339 time, or a duration such as 168h)")
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("--since: %q is not a date (2026-11-01), an RFC 3339 time or a duration (168h)", v)
}

// cmdReportLeavers writes the leavers report: offboarding evidence for
// the period from --since until now.
func cmdReportLeavers(ctx context.Context, c common, since string, stdout, stderr io.Writer) error {
	switch c.output {
	case "text", "table", "csv", "json":
	default:
		return usageError{fmt.Sprintf("--output: %q is not table, csv or json", c.output)}
	}
	from, err := parseSince(since, time.Now())
	if err != nil {
		return usageError{err.Error()}
	}
	a, err := openApp(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	var srcs []string
	for _, s := range a.cfg.Sources {
		srcs = append(srcs, s.Name)
	}
	rep, err := report.Leavers(ctx, a.store, report.LeaversOptions{Since: from, Sources: srcs})
	if err != nil {
		return err
	}
	switch c.output {
	case "csv":
		return report.WriteLeaversCSV(stdout, rep)
	case "json":
		return report.WriteLeaversJSON(stdout, rep)
	}
	return report.WriteLeaversTable(stdout, rep)
}

func containsTarget(ts []report.Target, name string) bool {
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}
