package main

import (
	"context"
	"fmt"
	"io"

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
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) != 1 || pos[0] != "access" {
		return usageError{"usage: dirsync report access [--target T] [--privileged] [--output table|csv|json]"}
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

func containsTarget(ts []report.Target, name string) bool {
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}
