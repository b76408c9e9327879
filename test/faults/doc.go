// Package faults is dirsync's fault-injection proof suite (issue #8): the
// dirsync binary runs as a real process against a real redis-server, a real
// slapd and the applications' recording fakes, while the tests crash it,
// take Redis away, fail over between replicas, break the directory, make
// the applications misbehave and send the SCIM server hostile input — and
// check that the applications end up as the directory says, that nothing
// confirmed is sent twice, that every refusal leaves a decision saying why,
// and that no secret reaches any output.
//
// The short form runs with `go test ./test/faults` (a few trials of each
// item). The long form (20 crash trials, more of everything, and the
// results table) is `scripts/faults-long.sh`, which sets
// DIRSYNC_FAULTS_LONG=1 and DIRSYNC_FAULTS_RESULTS.
package faults
