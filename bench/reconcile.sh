#!/usr/bin/env bash
# Reconcile benchmark, on loopback: one reconcile run of N accounts on the
# Netmaker fake behind a 50 ms answer time and a 50 req/s rate limit, with
# hand-made drift (leavers re-enabled, roles raised) and orphan accounts.
# Prints the time taken and the requests sent against the minimum the API
# allows (list pages + one write per fix), and writes them to OUT.
#
#   bench/reconcile.sh                 # N=10000 (about a minute)
#   N=2000 bench/reconcile.sh          # quick look
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-10000}
RATE=${RATE:-50}
LATENCY=${LATENCY:-50ms}
OUT=${OUT:-$repo/bench/results/reconcile.md}
mkdir -p "$(dirname "$OUT")"
cd "$repo"
go build -o "${TMPDIR:-/tmp}/dirsync-bench-apply" ./bench/apply
"${TMPDIR:-/tmp}/dirsync-bench-apply" -mode reconcile -n "$N" -rate "$RATE" -latency "$LATENCY" \
  -reenabled "${REENABLED:-100}" -raised "${RAISED:-50}" -orphans "${ORPHANS:-20}" \
  -command "N=$N bench/reconcile.sh" -out "$OUT"
