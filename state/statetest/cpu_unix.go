//go:build unix

package statetest

import (
	"syscall"
	"time"
)

// CPUTime returns the process's user+system CPU time so far; benchmarks
// report CPU per operation, which a busy machine distorts less than wall time.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
