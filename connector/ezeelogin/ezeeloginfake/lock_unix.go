//go:build unix

package ezeeloginfake

import (
	"fmt"
	"os"
	"syscall"
)

// withLock runs fn holding an exclusive flock on path+".lock", so parallel
// invocations of the fake (separate processes) serialise their updates.
func withLock(path string, fn func() error) error {
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("ezeeloginfake: lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("ezeeloginfake: lock: %w", err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
	return fn()
}
