package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
)

type common struct {
	config string
	output string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", defaultConfigPath(), "config file")
	fs.StringVar(&c.output, "output", "text", "output format: text or json")
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("dirsync "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func openApp(ctx context.Context, c common, stderr io.Writer) (*app, error) {
	cfg, err := loadConfig(c.config)
	if err != nil {
		return nil, exitError{code: exitFailed, err: fmt.Errorf("%s:\n%w", c.config, err)}
	}
	return newApp(ctx, cfg, appOptions{logOut: stderr})
}

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintln(stdout, "dirsync", version)
	return nil
}

func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("validate", stderr)
	c.register(fs)
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError{err.Error()}
	}
	cfg, err := config.Load(c.config)
	var problems, warnings []string
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		if err := cfg.Validate(); err != nil {
			problems = append(problems, err.Error())
		}
		for _, sc := range cfg.Sources {
			if sc.Type == "" {
				continue
			}
			if _, err := buildSource(sc, sourceDepsNop(), nil); err != nil {
				problems = append(problems, err.Error())
			}
		}
		for _, tc := range cfg.Targets {
			if tc.Type == "" {
				continue
			}
			t, err := buildTargetNop(tc)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			if w, ok := t.(connector.Warner); ok {
				warnings = append(warnings, w.Warnings()...)
			}
			warnings = append(warnings, connector.FallbackWarnings(tc, t)...)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: invalid:\n", c.config)
		for _, p := range problems {
			for _, l := range strings.Split(p, "\n") {
				fmt.Fprintf(stderr, "  %s\n", l)
			}
		}
		return exitError{code: exitFailed}
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: ok (%d sources, %d targets)\n", c.config, len(cfg.Sources), len(cfg.Targets))
	return nil
}

func runExit(res *dsync.Result, err error) error {
	if err != nil {
		return exitError{code: exitFailed, err: err}
	}
	switch res.Status {
	case "partial":
		return exitError{code: exitPartial, err: fmt.Errorf("run %s finished with failures: see `dirsync decisions --run %s`", res.RunID, res.RunID)}
	case "held":
		return exitError{code: exitHeld, err: fmt.Errorf("run %s: destructive actions held by the safety guard: review with `dirsync decisions --run %s`, then `dirsync approve %s`", res.RunID, res.RunID, res.RunID)}
	case "failed":
		return exitError{code: exitFailed, err: fmt.Errorf("run %s failed", res.RunID)}
	}
	return nil
}

func cmdSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var ro dsync.RunOptions
	var targets string
	fs := newFlags("sync", stderr)
	c.register(fs)
	fs.BoolVar(&ro.DryRun, "dry-run", false, "decide and log, but change nothing")
	fs.BoolVar(&ro.AllowMassChange, "allow-mass-change", false, "apply even past the safety guard's thresholds")
	fs.BoolVar(&ro.RetryQuarantined, "retry-quarantined", false, "retry accounts quarantined after repeated failures")
	fs.StringVar(&targets, "target", "", "comma-separated target names (default all)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError{err.Error()}
	}
	ro.Targets = splitList(targets)
	ro.Trigger = "cli"
	return runOnce(ctx, c, ro, stdout, stderr)
}

// runOnce is a one-shot run (sync, reconcile): progress on stderr, the
// leader lock for the run's length, the result and its exit code.
func runOnce(ctx context.Context, c common, ro dsync.RunOptions, stdout, stderr io.Writer) error {
	prog := newProgress(stderr)
	defer prog.Close()
	a, err := openAppWithProgress(ctx, c, prog)
	if err != nil {
		return err
	}
	defer a.close()
	release, err := a.leadOnce(ctx)
	if err != nil {
		return err
	}
	defer release()
	res, err := a.engine.Run(ctx, ro)
	if res != nil {
		printResult(stdout, c.output, res)
	}
	return runExit(res, err)
}

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var ro dsync.RunOptions
	var out, targets string
	fs := newFlags("plan", stderr)
	c.register(fs)
	fs.StringVar(&out, "out", "", "write the plan to this file for `dirsync apply`")
	fs.StringVar(&targets, "target", "", "comma-separated target names (default all)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError{err.Error()}
	}
	ro.Targets = splitList(targets)
	a, err := openApp(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	pf, err := a.engine.MakePlanFile(ctx, ro)
	if err != nil {
		return err
	}
	if c.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(pf)
	} else {
		printPlans(stdout, pf.Plans)
	}
	if out != "" {
		b, _ := json.MarshalIndent(pf, "", "  ")
		if err := os.WriteFile(out, b, 0o600); err != nil {
			return fmt.Errorf("write plan: %w", err)
		}
		fmt.Fprintf(stderr, "plan written to %s; apply it with `dirsync apply %s`\n", out, out)
	}
	return nil
}

func cmdApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var ro dsync.RunOptions
	fs := newFlags("apply", stderr)
	c.register(fs)
	fs.BoolVar(&ro.AllowMassChange, "allow-mass-change", false, "apply even past the safety guard's thresholds")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	if len(pos) != 1 {
		return usageError{"usage: dirsync apply PLANFILE"}
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	var pf dsync.PlanFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return fmt.Errorf("read plan %s: %w", pos[0], err)
	}
	prog := newProgress(stderr)
	defer prog.Close()
	a, err := openAppWithProgress(ctx, c, prog)
	if err != nil {
		return err
	}
	defer a.close()
	for _, p := range pf.Plans {
		prog.Planned(p.Target, len(p.Steps))
	}
	release, err := a.leadOnce(ctx)
	if err != nil {
		return err
	}
	defer release()
	res, err := a.engine.ApplyPlanFile(ctx, &pf, ro)
	if errors.Is(err, dsync.ErrStalePlan) {
		return exitError{code: exitStale, err: err}
	}
	if res != nil {
		printResult(stdout, c.output, res)
	}
	return runExit(res, err)
}

func cmdApprove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var only string
	fs := newFlags("approve", stderr)
	c.register(fs)
	fs.StringVar(&only, "only", "", "comma-separated actions to release (suspend, delete); the rest stays held")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError{err.Error()}
	}
	prog := newProgress(stderr)
	defer prog.Close()
	a, err := openAppWithProgress(ctx, c, prog)
	if err != nil {
		return err
	}
	defer a.close()
	if len(pos) == 0 {
		hps, err := a.engine.HeldPlans(ctx)
		if err != nil {
			return err
		}
		if len(hps) == 0 {
			fmt.Fprintln(stdout, "no held plans")
			return nil
		}
		fmt.Fprintln(stdout, "held plans (approve a run with `dirsync approve RUN`, or one target's part with `dirsync approve RUN/TARGET`):")
		for _, hp := range hps {
			n := 0
			for _, p := range hp.Plans {
				n += len(p.Steps)
			}
			what := fmt.Sprintf("%d steps", n)
			if len(hp.Sources) > 0 {
				what = "sources refused by the guard"
			}
			fmt.Fprintf(stdout, "  %s  %s: %s\n", hp.ID, what, hp.Reason)
		}
		return nil
	}
	var acts []connector.Action
	for _, s := range splitList(only) {
		if s != string(connector.ActSuspend) && s != string(connector.ActDelete) {
			return usageError{fmt.Sprintf("--only: %q is not suspend or delete", s)}
		}
		acts = append(acts, connector.Action(s))
	}
	var res *dsync.Result
	release, err := a.leadOnce(ctx)
	switch {
	case err == nil:
		defer release()
		plannedFromHeld(ctx, a, prog, pos[0], acts)
		res, err = a.engine.Approve(ctx, dsync.ApproveRequest{RunID: pos[0], Only: acts, By: approver()})
	case errors.Is(err, errDaemonLeads):
		// A daemon leads: ask it, rather than apply beside it.
		fmt.Fprintln(stderr, "a running dirsync holds the leader lock: asking it to apply the approval")
		res, err = askLeader(ctx, a.store, request{Op: "approve", RunID: pos[0], Only: acts, By: approver()}, 10*time.Minute)
	default:
		return err
	}
	if res != nil {
		printResult(stdout, c.output, res)
	}
	return runExit(res, err)
}

func cmdDecisions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var q state.DecisionQuery
	var since string
	fs := newFlags("decisions", stderr)
	c.register(fs)
	fs.StringVar(&q.User, "user", "", "only this user")
	fs.StringVar(&q.Target, "target", "", "only this target")
	fs.StringVar(&q.RunID, "run", "", "only this run")
	fs.StringVar(&since, "since", "", "only newer than this (e.g. 24h, 7d)")
	fs.IntVar(&q.Limit, "limit", 0, "at most this many, newest")
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError{err.Error()}
	}
	if since != "" {
		d, err := config.ParseDuration(since)
		if err != nil {
			return usageError{"--since: " + err.Error()}
		}
		q.Since = time.Now().Add(-d)
	}
	a, err := openApp(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	ds, err := a.store.Decisions(ctx, q)
	if err != nil {
		return err
	}
	printDecisions(stdout, c.output, ds)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func printResult(w io.Writer, format string, res *dsync.Result) {
	if format == "json" {
		enc := json.NewEncoder(w)
		_ = enc.Encode(map[string]any{"run_id": res.RunID, "status": res.Status, "counts": res.Counts, "held": res.Held})
		return
	}
	var parts []string
	for _, k := range []string{"applied", "skipped", "failed", "held", "dry_run"} {
		if n := res.Counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	if len(parts) == 0 {
		parts = []string{"nothing to do"}
	}
	fmt.Fprintf(w, "run %s: %s (%s)\n", res.RunID, res.Status, strings.Join(parts, ", "))
}

func printPlans(w io.Writer, plans []dsync.Plan) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tUSER\tACTION\tREASON")
	n := 0
	for _, p := range plans {
		for _, s := range p.Steps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Target, s.User, s.Action, s.Reason)
			n++
		}
		for _, s := range p.Skips {
			fmt.Fprintf(tw, "%s\t%s\t%s (skip)\t%s\n", p.Target, s.User, s.Action, s.Reason)
			n++
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "%d planned actions\n", n)
}

func printDecisions(w io.Writer, format string, ds []state.Decision) {
	if format == "json" {
		enc := json.NewEncoder(w)
		for _, d := range ds {
			_ = enc.Encode(d)
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tRUN\tTARGET\tUSER\tACTION\tOUTCOME\tREASON")
	for _, d := range ds {
		reason := d.Reason
		if d.Error != "" {
			reason += " [error: " + d.Error + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Time.Local().Format(time.DateTime), d.RunID, d.Target, d.User, d.Action, d.Outcome, reason)
	}
	tw.Flush()
}

// sortedKeys is a small helper for stable output.
func sortedKeys[M ~map[string]V, V any](m M) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
