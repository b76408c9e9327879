#!/usr/bin/env bash
# First-run benchmark: `dirsync plan` on a fresh embedded state (no links, no
# cached accounts) reading an HR export through the file source, JSON and
# CSV, at each size in SIZES. The export has every person in staff (the
# target's scope) and two of n/100 teams; one in 50 terminated. Prints, per
# format and size: wall time, CPU time, peak RSS (GNU time), microseconds of
# CPU per person and that figure against the smallest size's (1.0 = linear).
#
#   bench/firstrun.sh                          # SIZES="10000 100000 1000000"
#   SIZES="10000 20000 40000" bench/firstrun.sh
#   FORMATS=csv SIZES=100000 bench/firstrun.sh
#
# Needs GNU time (/usr/bin/time). Scratch files go to WORK (default a
# temporary directory, removed at the end); 1,000,000 people are ~300 MB of
# JSON.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-10000 100000 1000000}
FORMATS=${FORMATS:-json csv}
OUT=${OUT:-$repo/bench/results/firstrun.md}
mkdir -p "$(dirname "$OUT")"
if [ ! -x /usr/bin/time ]; then
  echo "firstrun: needs GNU time (/usr/bin/time; apt-get install time)" >&2
  exit 1
fi
work=${WORK:-$(mktemp -d)}
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
bin=$work/bin
mkdir -p "$bin"
(cd "$repo" && go build -o "$bin/dirsync" ./cmd/dirsync && go build -o "$bin/firstrun" ./bench/firstrun)

table=$work/table.md
{
  echo "## First run: dirsync plan, fresh state, file source"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPU, \`SIZES=\"$SIZES\" FORMATS=\"$FORMATS\" bench/firstrun.sh\`"
  echo
  echo "| format | people | planned | wall s | CPU s | peak RSS MB | CPU µs/person | ÷ smallest (1 = linear) | load avg |"
  echo "|---|---|---|---|---|---|---|---|---|"
} >"$table"
for fmt in $FORMATS; do
  base=""
  for n in $SIZES; do
    d=$work/$fmt-$n
    rm -rf "$d"
    mkdir -p "$d"
    "$bin/firstrun" -n "$n" -format "$fmt" -dir "$d"
    load=$(cut -d' ' -f1 /proc/loadavg)
    (cd "$d" && /usr/bin/time -o time.txt -f '%e %U %S %M' "$bin/dirsync" plan --config dirsync.yaml >plan.txt 2>err.txt) || {
      echo "firstrun: $fmt $n failed:" >&2
      cat "$d/err.txt" >&2
      exit 1
    }
    read -r wall user sys rss <"$d/time.txt"
    planned=$(sed -n 's/^\([0-9]*\) planned actions$/\1/p' "$d/plan.txt")
    read -r cpu per < <(awk -v u="$user" -v s="$sys" -v n="$n" 'BEGIN { c = u + s; printf "%.2f %.1f\n", c, c * 1e6 / n }')
    [ -n "$base" ] || base=$per
    ratio=$(awk -v a="$per" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
    printf '| %s | %d | %s | %s | %s | %d | %s | %s | %s |\n' "$fmt" "$n" "$planned" "$wall" "$cpu" $((rss / 1024)) "$per" "$ratio" "$load" >>"$table"
    echo "firstrun: $fmt $n: wall $wall s, cpu $cpu s, peak RSS $((rss / 1024)) MB (load average $load)" >&2
    rm -rf "$d"
  done
done
cat "$table"
cp "$table" "$OUT"
