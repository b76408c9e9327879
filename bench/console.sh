#!/usr/bin/env bash
# What the web console costs the work it sits beside, measured with the
# console off and on, interleaved (off/on, then on/off, ...), ROUNDS times
# each, on the same machine in the same run:
#
#  1. SCIM load: bench/scim-load.sh with SERVER=daemon, i.e. a whole
#     `dirsync run` daemon on Redis taking USERS creates and PATCHES PATCH
#     requests (every push a targeted run); figures: creates/s and PATCH/s.
#  2. A first sync of SYNC_USERS users: a `dirsync run` daemon (file source,
#     memory target, embedded state) from start until /metrics shows every
#     account created; with the console on, an operator's browser is
#     simulated: signed in (admin token), it reloads the overview and the
#     runs page every second throughout.
#
# Prints and writes (OUT) a Markdown table with each figure's median per mode.
#
#   bench/console.sh
#   ROUNDS=5 SYNC_USERS=20000 bench/console.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
SYNC_USERS=${SYNC_USERS:-10000}
export USERS=${USERS:-2000} PATCHES=${PATCHES:-20000} CONC=${CONC:-16}
OUT=${OUT:-$repo/bench/results/console.md}
command -v python3 >/dev/null || { echo "console.sh: python3 is needed to write the users file" >&2; exit 2; }
command -v curl >/dev/null || { echo "console.sh: curl is needed" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
(cd "$repo" && go build -o "$tmp/dirsync" ./cmd/dirsync && go build -o "$tmp/scimload" ./bench/scimload)
python3 - "$SYNC_USERS" >"$tmp/hr.json" <<'PY'
import json, sys
n = int(sys.argv[1])
print(json.dumps({"users": [{"id": "e%06d" % i, "username": "user%06d" % i, "email": "user%06d@example.test" % i,
  "active": True, "groups": ["staff"]} for i in range(n)]}))
PY

# sync_once MODE: seconds from daemon start to all SYNC_USERS accounts created.
sync_once() {
  local mode=$1 dir port enabled=false viewer=""
  dir=$(mktemp -d -p "$tmp")
  port=$("$tmp/scimload" -freeport)
  [ "$mode" = on ] && enabled=true
  cat >"$dir/dirsync.yaml" <<YAML
log: {level: warn}
state: {backend: embedded, path: $dir/state.db}
http:
  listen: 127.0.0.1:$port
  console: {enabled: $enabled, base_url: "http://localhost:$port/ui/", admin_token: "bench-admin-token-$port"}
schedule: {full: "0 0 1 1 *", incremental: 0}
safety: {max_suspend: 0, max_delete: 0}
sources: [{name: hr, type: file, path: $tmp/hr.json}]
targets: [{name: app, type: memory, scope: [staff], concurrency: 8, rate_limit: 100000}]
YAML
  local start end
  start=$(date +%s.%N)
  "$tmp/dirsync" run --config "$dir/dirsync.yaml" >"$dir/daemon.log" 2>&1 &
  local dpid=$!
  pids+=("$dpid")
  until curl -s -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.02; done
  if [ "$mode" = on ]; then
    (
      jar="$dir/cookies"
      csrf=$(curl -s -c "$jar" "http://localhost:$port/ui/login" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n 1)
      curl -s -b "$jar" -c "$jar" -o /dev/null --data-urlencode "csrf=$csrf" --data-urlencode "token=bench-admin-token-$port" "http://localhost:$port/ui/login/token"
      curl -s -b "$jar" "http://localhost:$port/ui/" | grep -q "<h1>Overview</h1>" || { echo "console.sh: the simulated viewer could not sign in" >&2; exit 1; }
      while :; do
        curl -s -b "$jar" -o /dev/null "http://localhost:$port/ui/"
        curl -s -b "$jar" -o /dev/null "http://localhost:$port/ui/runs"
        sleep 1
      done
    ) &
    viewer=$!
    pids+=("$viewer")
  fi
  local want="dirsync_actions_total{action=\"create\",outcome=\"applied\",target=\"app\"} $SYNC_USERS"
  until curl -s "http://127.0.0.1:$port/metrics" | grep -qF "$want"; do sleep 0.05; done
  end=$(date +%s.%N)
  [ -n "$viewer" ] && kill "$viewer" 2>/dev/null && wait "$viewer" 2>/dev/null || true
  kill "$dpid"; wait "$dpid" 2>/dev/null || true
  python3 -c "print(f'{$end - $start:.2f}')"
}

# scim_once MODE: "creates/s PATCH/s" of the SCIM load on the daemon.
scim_once() {
  local out="$tmp/scim-$1-$RANDOM.md"
  SERVER=daemon CONSOLE=$1 PEER=off OUT="$out" "$repo/bench/scim-load.sh" >/dev/null 2>"$tmp/scim.log" || { cat "$tmp/scim.log" >&2; exit 1; }
  awk -F'|' '/dirsync daemon/ {gsub(/ /,"",$4); gsub(/ /,"",$8); print $4, $8}' "$out"
}

declare -A syncs creates patches
for r in $(seq 1 "$ROUNDS"); do
  order="off on"
  [ $((r % 2)) -eq 0 ] && order="on off"
  for mode in $order; do
    echo "console.sh: round $r, console $mode: SCIM load" >&2
    read -r c p < <(scim_once "$mode")
    creates[$mode]+="$c "
    patches[$mode]+="$p "
    echo "console.sh: round $r, console $mode: first sync of $SYNC_USERS users" >&2
    s=$(sync_once "$mode")
    syncs[$mode]+="$s "
    echo "console.sh:   creates/s $c, PATCH/s $p, sync ${s}s" >&2
  done
done

median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" $1; }
mkdir -p "$(dirname "$OUT")"
{
  echo "## Console cost: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPU, load average $(cut -d' ' -f1-3 /proc/loadavg), $(go version | cut -d' ' -f3). $ROUNDS rounds, console off and on interleaved."
  echo "SCIM: $USERS creates, $PATCHES PATCH, $CONC connections against \`dirsync run\` on Redis. Sync: first full run of $SYNC_USERS users (file source, memory target, embedded state), daemon start to all accounts created; console on = a signed-in viewer reloading the overview and runs pages every second."
  echo "Command: \`ROUNDS=$ROUNDS SYNC_USERS=$SYNC_USERS USERS=$USERS PATCHES=$PATCHES bench/console.sh\`"
  echo
  echo "| figure | console off (median) | console on (median) | on / off | all off | all on |"
  echo "|---|---|---|---|---|---|"
  for fig in "SCIM creates/s:creates" "SCIM PATCH/s:patches" "first sync of $SYNC_USERS users, s:syncs"; do
    name=${fig%%:*}; var=${fig##*:}
    declare -n arr=$var
    off=$(median "${arr[off]}"); on=$(median "${arr[on]}")
    ratio=$(python3 -c "print(f'{$on/$off:.3f}')")
    echo "| $name | $off | $on | $ratio | ${arr[off]}| ${arr[on]}|"
    unset -n arr
  done
} >"$OUT"
cat "$OUT"
