#!/usr/bin/env bash
# Console page times at scale, before and after, in the same run: builds
# dirsync at BASE (a git revision; default the last commit before the
# console issue's work, 0c75949) and at the working tree, and runs
# bench/pages against each: a `dirsync run` daemon with PEOPLE people
# (file source, memory target, embedded state, re-read every 10 s) and a
# held plan of HELD suspensions; the overview, the held plan's page and a
# person's page ROUNDS times each, and ROUNDS approvals (each of a freshly
# held plan): until the answer, and until the plan is gone. Prints (and
# writes to OUT) a Markdown table of medians.
#
#   bench/console-pages.sh                    # 10,000 people, 500 held, 5 rounds
#   PEOPLE=2000 ROUNDS=3 bench/console-pages.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE:-0c75949}
PEOPLE=${PEOPLE:-10000}
HELD=${HELD:-500}
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-$repo/bench/pages/results.md}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "console-pages: building the working tree and $BASE" >&2
(cd "$repo" && go build -o "$tmp/after" ./cmd/dirsync && go build -o "$tmp/pages" ./bench/pages)
mkdir -p "$tmp/base"
(cd "$repo" && git archive "$BASE" | tar -x -C "$tmp/base")
(cd "$tmp/base" && go build -o "$tmp/before" ./cmd/dirsync)
{
  echo "Console page times: $PEOPLE people, held plans of $HELD suspensions, daemon re-reading every 10 s; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
  echo
  echo "| build | measure | n | median | min | max |"
  echo "|---|---|---|---|---|---|"
  "$tmp/pages" -bin "$tmp/before" -label "before ($BASE)" -people "$PEOPLE" -held "$HELD" -rounds "$ROUNDS"
  "$tmp/pages" -bin "$tmp/after" -label "after (working tree)" -people "$PEOPLE" -held "$HELD" -rounds "$ROUNDS"
} | tee "$tmp/out.md"
mkdir -p "$(dirname "$OUT")"
cp "$tmp/out.md" "$OUT"
