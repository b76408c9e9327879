#!/usr/bin/env bash
# The long form of the fault-injection proof suite (issue #8, test/faults),
# writing a results table.
#
#   scripts/faults-long.sh [OUT]        default OUT: bench/results/faults.md
#
# It runs `go test ./test/faults` with DIRSYNC_FAULTS_LONG=1 (20 crash
# trials, 3 Redis-loss trials, 5 failover trials of each kind, 300-person
# application-fault runs, the slow-body SCIM client), then fuzzes each SCIM
# fuzz target (scim/fuzz_test.go) for FUZZTIME, and writes one table row
# per item: trials, pass/fail and the figures measured.
#
# Environment:
#   FUZZTIME             per fuzz target (default 10m; e.g. 30s for a quick look)
#   DIRSYNC_FAULTS_SEED  replay a run's random choices (printed in the log)
#   DIRSYNC_FAULTS_BUGS  1 (default here): also run the tests of known bugs,
#                        which are skipped in the short form; their rows show
#                        FAIL until the bugs are fixed. 0 skips them.
#
# The full log goes to OUT with .log instead of .md. A fuzz target that
# finds a crash leaves its input under scim/testdata/fuzz/ (go test's
# behaviour): that input is the finding.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results/faults.md}
log=${out%.md}.log
fuzztime=${FUZZTIME:-10m}
mkdir -p "$(dirname "$out")"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
: > "$log"

start=$(date +%s)
echo "faults-long: go test ./test/faults (long form); log: $log" >&2
DIRSYNC_FAULTS_LONG=1 DIRSYNC_FAULTS_RESULTS=$rows DIRSYNC_FAULTS_BUGS=${DIRSYNC_FAULTS_BUGS:-1} \
  go test ./test/faults -count=1 -v -timeout 120m >> "$log" 2>&1
suite=$?
suite_secs=$(( $(date +%s) - start ))

# Fuzzing: each target alone (go test -fuzz takes one).
fuzz_rows=()
for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' scim/*_test.go | sed 's/^func //'); do
  echo "faults-long: fuzzing scim $f for $fuzztime" >&2
  flog=$(mktemp)
  go test ./scim -run '^$' -fuzz "^${f}\$" -fuzztime "$fuzztime" > "$flog" 2>&1
  st=$?
  cat "$flog" >> "$log"
  # The last progress line: "elapsed: 10m0s, execs: N (R/sec), new interesting: I (total: T)".
  last=$(grep -o 'elapsed: [^,]*, execs: [0-9]*' "$flog" | tail -1)
  interesting=$(grep -o 'new interesting: [0-9]* (total: [0-9]*)' "$flog" | tail -1)
  [ -n "$interesting" ] && last="$last, $interesting"
  result=pass
  if [ $st -ne 0 ]; then result=FAIL; fi
  fuzz_rows+=("| 6 hostile SCIM input: fuzzing | scim $f | $fuzztime | $result | ${last:-no progress line} |")
  rm -f "$flog"
done

{
  echo "# Fault-injection proof suite: long form"
  echo
  echo "Produced by \`scripts/faults-long.sh\` on $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(go version | cut -d' ' -f3)."
  echo "Suite: \`DIRSYNC_FAULTS_LONG=1 go test ./test/faults\` (exit $suite, ${suite_secs}s); fuzzing: \`go test ./scim -run '^\$' -fuzz FuzzX -fuzztime $fuzztime\` per target."
  echo
  echo "| Item | Test | Trials | Result | Figures |"
  echo "|---|---|---|---|---|"
  grep -v '^7 secrets' "$rows" | sort | while IFS=$'\t' read -r item name trials status figs; do
    printf '| %s | %s | %s | %s | %s |\n' "$item" "$name" "$trials" "$status" "${figs//|//}"
  done
  for r in "${fuzz_rows[@]}"; do echo "$r"; done
  scans=$(grep -c '^7 secrets' "$rows" || true)
  leaky=$(grep '^7 secrets' "$rows" | awk -F'\t' '$4 != "pass"' | wc -l)
  echo "| 7 secrets | every scenario above | $scans scans | $([ "$leaky" = 0 ] && echo pass || echo FAIL) | $leaky scans found a secret; each scan below |"
  echo
  echo "## Secret scans (item 7), one per scenario"
  echo
  echo "| Scenario | Result | Secrets and outputs scanned |"
  echo "|---|---|---|"
  grep '^7 secrets' "$rows" | sort -t$'\t' -k2 | while IFS=$'\t' read -r item name trials status figs; do
    printf '| %s | %s | %s |\n' "$name" "$status" "${figs//|//}"
  done
  echo
  skipped=$(grep -c -- '--- SKIP' "$log" || true)
  failed=$(grep -c -- '--- FAIL' "$log" || true)
  echo "Go test verdicts in the log: $failed FAIL lines, $skipped SKIP lines (a SKIP line names a known bug, or a missing server)."
  grep -- '--- SKIP\|BUG:' "$log" | sed 's/^ */- /' | sort -u | head -20
} > "$out"
echo "faults-long: wrote $out" >&2
cat "$out"
exit $suite
