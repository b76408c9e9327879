// Command dirsync keeps application accounts in step with directories. See
// `dirsync --help` for the commands and exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the command failed: bad config, unreachable store, every source failed
	exitUsage   = 2 // bad command line
	exitPartial = 3 // the run finished, but some actions failed or a source or target was skipped
	exitHeld    = 4 // the safety guard held destructive actions: see `dirsync approve`
	exitStale   = 5 // apply: the state changed since the plan was made
)

const usage = `dirsync keeps application accounts in step with your directories.

Usage:
  dirsync <command> [flags]

Commands:
  run        start the daemon: scheduler, HTTP (/healthz, /readyz, /metrics, SCIM), leader election
  sync       one run now (--dry-run to only show what would happen)
  plan       show what a run would do; --out FILE writes a plan file
  apply      apply a plan file made by plan --out (refused if the state changed since)
  approve    apply a plan the safety guard held: approve RUN [--only suspend,delete]
  reconcile  read every live account back: fix drift, report or remove orphans, correct missing ones
  report     report access [--target T] [--privileged] [--output table|csv|json]: who has what, and why;
             report leavers --since DATE: who lost access, when the source said so, when each application confirmed
  explain    show why a user's accounts look the way they do: explain USER [--target T]
  decisions  query the decision journal
  validate   check a config file and print every problem
  demo       run everything in one process against built-in fakes
  version    print the version

Every command takes --config FILE (default ./dirsync.yaml, or $DIRSYNC_CONFIG).

Exit codes:
  0  success
  1  failure (bad config, state store unreachable, every source failed)
  2  bad command line
  3  partial: some actions failed, or a source/target was skipped (see decisions)
  4  held: the safety guard held destructive actions (dirsync approve RUN)
  5  apply: the state changed since the plan was made
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(runMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks a command-line error (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"run": cmdRun, "sync": cmdSync, "plan": cmdPlan, "apply": cmdApply, "approve": cmdApprove,
		"explain": cmdExplain, "decisions": cmdDecisions, "reconcile": cmdReconcile, "report": cmdReport, "validate": cmdValidate, "version": cmdVersion, "demo": cmdDemo,
		"__ezwapi-fake": cmdEzwapiFake,
	}
	f, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dirsync: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	err := f(ctx, args[1:], stdout, stderr)
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "dirsync %s: %v\n", args[0], err)
		return exitUsage
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(stderr, "dirsync %s: %v\n", args[0], ee.err)
		}
		return ee.code
	default:
		fmt.Fprintf(stderr, "dirsync %s: %v\n", args[0], err)
		return exitFailed
	}
}

// parseInterleaved parses flags that may come after positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func defaultConfigPath() string {
	if p := os.Getenv("DIRSYNC_CONFIG"); p != "" {
		return p
	}
	return "dirsync.yaml"
}
