package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/dirsync/dirsync/connector"
	"github.com/dirsync/dirsync/progress"
	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"
)

// newProgress returns the progress reporter of a one-shot command: bars
// when stderr is a terminal, periodic log lines otherwise.
func newProgress(stderr io.Writer) *progress.Reporter {
	term := false
	if f, ok := stderr.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		// A terminal that reports no width (a pty nobody sized) would show
		// no bar at all: log lines instead.
		ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
		term = err != nil || ws.Col > 0
	}
	return progress.New(progress.Options{Out: stderr, Terminal: term})
}

// openAppWithProgress is openApp with the command's log lines routed
// through the progress reporter and every decision counted by it.
func openAppWithProgress(ctx context.Context, c common, prog *progress.Reporter) (*app, error) {
	cfg, err := loadConfig(c.config)
	if err != nil {
		return nil, exitError{code: exitFailed, err: fmt.Errorf("%s:\n%w", c.config, err)}
	}
	a, err := newApp(ctx, cfg, appOptions{logOut: prog.Writer(), onDecision: prog.Decision, progress: prog})
	if err != nil {
		return nil, err
	}
	prog.SetLogger(a.log)
	return a, nil
}

// plannedFromHeld tells the reporter how many held steps an approval may
// apply, per target (an upper bound: steps no longer wanted are skipped).
func plannedFromHeld(ctx context.Context, a *app, prog *progress.Reporter, runID string, only []connector.Action) {
	hps, err := (&consoleAPI{a: a}).heldOfRun(ctx, runID)
	if err != nil {
		return
	}
	for _, hp := range hps {
		for _, p := range hp.Plans {
			n := 0
			for _, s := range p.Steps {
				if len(only) == 0 || slices.Contains(only, s.Action) {
					n++
				}
			}
			prog.Planned(p.Target, n)
		}
	}
}
