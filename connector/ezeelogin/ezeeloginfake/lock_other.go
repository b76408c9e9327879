//go:build !unix

package ezeeloginfake

// withLock runs fn; without flock, parallel invocations are not serialised
// on this platform.
func withLock(path string, fn func() error) error { return fn() }
