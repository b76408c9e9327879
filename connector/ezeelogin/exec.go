package ezeelogin

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"time"
)

// maxOutput bounds what is kept of a child's stdout and stderr.
const maxOutput = 64 << 10

// limitedBuffer keeps the first maxOutput bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// execRun runs argv as a child process in its own process group, with no
// shell in between. When ctx ends (the per-call timeout) the whole group
// is killed, so an ssh hop or a php child cannot outlive the call.
func execRun(ctx context.Context, argv []string) (stdout, stderr []byte, exitCode int, err error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var o, e limitedBuffer
	cmd.Stdout, cmd.Stderr = &o, &e
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return o.Bytes(), e.Bytes(), 0, nil
	case ctx.Err() != nil:
		return o.Bytes(), e.Bytes(), -1, ctx.Err()
	case errors.As(err, &exitErr) && exitErr.Exited():
		return o.Bytes(), e.Bytes(), exitErr.ExitCode(), nil
	default:
		return o.Bytes(), e.Bytes(), -1, err
	}
}
