#!/usr/bin/env bash
# Apply throughput benchmark, on loopback.
#
# Builds bench/apply and runs it: the sync engine with the netmaker
# connector applies N creates, then N suspensions, to the Netmaker fake
# behind a 50 ms answer time and a rate limit of RATE requests/s (429 +
# Retry-After beyond it), with rate_limit = RATE, on the embedded bbolt
# state and on a throwaway Redis (AOF everysec; skipped when redis-server
# is missing); then once more on bbolt with rate_limit = MISCONFIG × RATE
# (too high: Retry-After must keep it converging); then a naive client
# making the same calls one at a time. Writes a Markdown results table to
# OUT and prints it; SUMMARY=path also writes the rows bench/run-all.sh
# collects.
#
#   bench/apply.sh                          # defaults below (~4 minutes)
#   N=200 BACKENDS=bolt bench/apply.sh      # quick look
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-1000}
RATE=${RATE:-50}
LATENCY=${LATENCY:-50ms}
BACKENDS=${BACKENDS:-bolt,redis}
MISCONFIG=${MISCONFIG:-2}
CONCURRENCY=${CONCURRENCY:-0}   # 0: dirsync's default
STATE_DIR=${STATE_DIR:-${TMPDIR:-/tmp}}  # the embedded store's disk decides its speed
OUT=${OUT:-$repo/bench/apply/results.md}
SUMMARY=${SUMMARY:-}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "apply: building" >&2
(cd "$repo" && go build -o "$tmp/apply" ./bench/apply)

cmd="N=$N RATE=$RATE LATENCY=$LATENCY BACKENDS=$BACKENDS MISCONFIG=$MISCONFIG bench/apply.sh"
args=(-n "$N" -rate "$RATE" -latency "$LATENCY" -backends "$BACKENDS" -misconfig "$MISCONFIG"
  -concurrency "$CONCURRENCY" -state-dir "$STATE_DIR" -out "$tmp/results.md" -command "$cmd")
if [ -n "$SUMMARY" ]; then args+=(-summary "$SUMMARY"); fi
"$tmp/apply" "${args[@]}" >/dev/null
mkdir -p "$(dirname "$OUT")"
cp "$tmp/results.md" "$OUT"
cat "$OUT"
