#!/usr/bin/env bash
# Runs every benchmark present and writes one results table.
#
#   bench/run-all.sh                      # everything (~6 minutes on 2 cores)
#   ONLY="apply plan" bench/run-all.sh    # a subset: ldap-pull scim-load apply plan
#   STRICT=1 bench/run-all.sh             # exit 1 when a figure misses its goal
#
# Each bench script runs with OUT=bench/results/NAME.md (its own Markdown
# table) and SUMMARY=bench/results/NAME.summary: a script that writes
# summary rows there ("| figure | dirsync | reference | reference value |
# ratio | goal | pass |") has them used as they are; for the others the
# rows are parsed from their output. The plan benchmark is
# `go test -run '^$' -bench Plan100k -benchmem ./sync/`. Sizes are the
# scripts' own defaults; their environment variables (N, USERS, ...) pass
# through. The table goes to bench/results/summary.md (git-ignored) and
# stdout, followed by every script's own table; each script's log is
# bench/results/NAME.log. Exit status: 1 when a benchmark could not run
# (or, with STRICT=1, when a figure misses its goal).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
res=$repo/bench/results
ONLY=${ONLY:-ldap-pull scim-load apply plan}
STRICT=${STRICT:-0}
mkdir -p "$res"
rows=$res/rows.md
: >"$rows"
details=$res/details.md
: >"$details"
failed=0

wanted() { [[ " $ONLY " == *" $1 "* ]]; }

# row FIGURE DIRSYNC REFERENCE REFVALUE RATIO GOAL RESULT
row() { printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$@" >>"$rows"; }

# ratio A B: A/B with two decimals, or "–".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "–" }'; }

# atleast X MIN: pass when X >= MIN; atmost X MAX: pass when X <= MAX.
atleast() { awk -v x="$1" -v m="$2" 'BEGIN { if (x != "–" && x + 0 >= m + 0) print "pass"; else print "FAIL" }'; }
atmost() { awk -v x="$1" -v m="$2" 'BEGIN { if (x != "–" && x + 0 > 0 && x + 0 <= m + 0) print "pass"; else print "FAIL" }'; }

# script NAME: run bench/NAME.sh, keep its table and summary rows.
script() {
  local name=$1 sh=$repo/bench/$1.sh
  rm -f "$res/$name.md" "$res/$name.summary"
  if [ ! -x "$sh" ]; then
    echo "run-all: bench/$name.sh is not there: skipped" >&2
    row "$name" "not run: bench/$name.sh missing" "" "" "" "" "–"
    return 1
  fi
  echo "run-all: $name (log: bench/results/$name.log)" >&2
  local start=$SECONDS
  if ! OUT=$res/$name.md SUMMARY=$res/$name.summary "$sh" >"$res/$name.log" 2>&1; then
    echo "run-all: $name failed; the end of its log:" >&2
    tail -n 20 "$res/$name.log" >&2
    row "$name" "failed (bench/results/$name.log)" "" "" "" "" "FAIL"
    failed=1
    return 1
  fi
  echo "run-all: $name took $((SECONDS - start))s" >&2
  {
    echo
    echo "### bench/$name.sh"
    echo
    if [ -s "$res/$name.md" ]; then
      sed 's/^## /#### /' "$res/$name.md"
    else
      echo '```'
      if grep -q 'benchmark:' "$res/$name.log"; then sed -n '/benchmark:/,$p' "$res/$name.log"; else tail -n 8 "$res/$name.log"; fi
      echo '```'
    fi
  } >>"$details"
  if [ -s "$res/$name.summary" ]; then
    cat "$res/$name.summary" >>"$rows"
    return 1 # rows already collected
  fi
  return 0
}

if wanted ldap-pull && script ldap-pull; then
  # It prints (stdout, into its log) a summary like
  #   ldap pull benchmark: 100000 users, 1000 groups, 2 cores, load average ..., median of 3
  #     ldapsearch wall   1.23 s   cpu   0.50 s   peak RSS   12 MB
  #     dirsync    wall   1.40 s   cpu   1.10 s   peak RSS  250 MB
  #     ratio (dirsync / ldapsearch, wall): 1.14   goal: <= 1.5, peak RSS <= 400 MB
  log=$res/ldap-pull.log
  read -r lw lc lr < <(awk '$1 == "ldapsearch" && $2 == "wall" { l = $3 " " $6 " " $10 } END { print l }' "$log")
  read -r dw dc dr < <(awk '$1 == "dirsync" && $2 == "wall" { l = $3 " " $6 " " $10 } END { print l }' "$log")
  size=$(sed -n 's/^ldap pull benchmark: \([0-9]* users, [0-9]* groups\).*/\1/p' "$log" | tail -n 1)
  gw=$(sed -n 's/.*goal: <= \([0-9.]*\).*/\1/p' "$log" | tail -n 1)
  gr=$(sed -n 's/.*peak RSS <= \([0-9.]*\) MB.*/\1/p' "$log" | tail -n 1)
  if [ -n "${dw:-}" ] && [ -n "${lw:-}" ]; then
    rw=$(ratio "$dw" "$lw")
    row "LDAP pull ($size), wall s (median)" "$dw" "ldapsearch, same searches" "$lw" "$rw" "≤ ${gw:-1.5} × ldapsearch" "$(atmost "$rw" "${gw:-1.5}")"
    row "LDAP pull, CPU s (median)" "$dc" "ldapsearch" "$lc" "$(ratio "$dc" "$lc")" "–" "–"
    row "LDAP pull, peak RSS MB" "$dr" "ldapsearch" "$lr" "$(ratio "$dr" "$lr")" "≤ ${gr:-400} MB" "$(atmost "$dr" "${gr:-400}")"
  else
    row "LDAP pull" "no summary found in bench/results/ldap-pull.log" "ldapsearch" "" "" "" "FAIL"
  fi
fi

if wanted scim-load && script scim-load; then
  t=$res/scim-load.md
  # | server | creates | creates/s | p50 | p99 | PATCH | PATCH/s | p50 | p99 | errors |
  read -r dc dp de < <(awk -F'|' '$2 ~ /^ *dirsync/ { print $4 + 0, $8 + 0, $11 + 0; exit }' "$t")
  read -r pc pp < <(awk -F'|' '$2 ~ /^ *scimmy/ && $3 ~ /[0-9]/ { print $4 + 0, $8 + 0; exit }' "$t")
  conc=$(sed -n 's/.* with \([0-9]*\) connections.*/\1/p' "$t" | head -n 1)
  if [ -z "${dc:-}" ]; then
    row "SCIM server" "no dirsync row in bench/results/scim-load.md" "" "" "" "" "FAIL"
  else
    peer="scimmy peer (node)"
    if [ -z "${pc:-}" ]; then pc="not run"; pp="not run"; fi
    rc=$(ratio "$dc" "$pc")
    rp=$(ratio "$dp" "$pp")
    v() { if [ "$1" = "–" ]; then echo "no reference"; else atleast "$1" 1; fi; }
    row "SCIM server creates/s (POST /Users, ${conc:-?} connections, Redis AOF)" "$dc" "$peer" "$pc" "$rc" "≥ 1 × peer" "$(v "$rc")"
    row "SCIM server PATCH/s (active false/true)" "$dp" "$peer" "$pp" "$rp" "≥ 1 × peer" "$(v "$rp")"
    if [ "$de" = 0 ]; then ok=pass; else ok=FAIL; fi
    row "SCIM server errors under load" "$de" "–" "–" "–" "0" "$ok"
  fi
fi

if wanted apply && script apply; then
  row "apply" "no summary rows (bench/results/apply.md)" "" "" "" "" "FAIL"
fi

if wanted plan; then
  echo "run-all: plan (log: bench/results/plan.log)" >&2
  if (cd "$repo" && go test -run '^$' -bench Plan100k -benchmem ./sync/) >"$res/plan.log" 2>&1; then
    read -r ns heap < <(awk '/^BenchmarkPlan100k/ { for (i = 2; i < NF; i++) { if ($(i + 1) == "ns/op") ns = $i; if ($(i + 1) == "peak-heap-MB") h = $i }; print ns, h; exit }' "$res/plan.log")
    secs=$(awk -v n="${ns:-0}" 'BEGIN { printf "%.2f", n / 1e9 }')
    row "plan 100k users (desired + diff + plan, 1% changed), s" "$secs" "–" "–" "–" "≤ 2 s" "$(awk -v s="$secs" 'BEGIN { print (s > 0 && s <= 2) ? "pass" : "FAIL" }')"
    row "plan 100k users, peak heap MB" "${heap:-?}" "–" "–" "–" "≤ 512 MB" "$(awk -v h="${heap:-0}" 'BEGIN { print (h > 0 && h <= 512) ? "pass" : "FAIL" }')"
    { echo; echo "### go test -run '^\$' -bench Plan100k -benchmem ./sync/"; echo; echo '```'; grep -E '^(goos|goarch|cpu|Benchmark)' "$res/plan.log"; echo '```'; } >>"$details"
  else
    echo "run-all: plan benchmark failed; the end of its log:" >&2
    tail -n 20 "$res/plan.log" >&2
    row "plan 100k users" "failed (bench/results/plan.log)" "" "" "" "" "FAIL"
    failed=1
  fi
fi

{
  echo "# dirsync benchmarks: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPU ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(go version | cut -d' ' -f3), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo "Command: \`ONLY=\"$ONLY\" bench/run-all.sh\`. How each figure is measured: bench/README.md."
  echo
  echo "| figure | dirsync | reference | reference value | ratio | goal | result |"
  echo "|---|---|---|---|---|---|---|"
  cat "$rows"
  echo
  echo "## Each benchmark's own results"
  cat "$details"
} >"$res/summary.md"
rm -f "$rows" "$details"
cat "$res/summary.md"

if [ "$failed" = 1 ]; then exit 1; fi
if [ "$STRICT" = 1 ] && grep -q '| FAIL |$' "$res/summary.md"; then exit 1; fi
exit 0
