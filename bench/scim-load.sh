#!/usr/bin/env bash
# SCIM server load benchmark, on loopback, bounded in count and time.
#
# Starts a throwaway redis-server (AOF on, appendfsync everysec, as
# recommended for SCIM data) and dirsync's SCIM server on it
# (scim/cmd/scimserve), then the scimmy peer server
# (.cache/scimmy-server, installed by scripts/npm-peers.sh), and runs the
# same load against both with bench/scimload: USERS creates (POST /Users),
# then PATCHES disable/enable requests (PATCH /Users/{id} replacing active),
# CONC connections at once. Writes a Markdown results table to OUT and
# prints it.
#
#   bench/scim-load.sh                      # defaults below
#   USERS=5000 PATCHES=50000 CONC=32 bench/scim-load.sh
#
# SERVER=daemon runs the load against a whole `dirsync run` daemon instead
# (its SCIM source on the same Redis, a memory target, every push a targeted
# run), with the web console on or off (CONSOLE=on|off); PEER=off skips the
# scimmy peer. bench/console.sh uses these.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
USERS=${USERS:-2000}
PATCHES=${PATCHES:-20000}
CONC=${CONC:-16}
LIMIT=${LIMIT:-60s}           # per phase, dirsync
PEER_PATCHES=${PEER_PATCHES:-5000}
PEER_LIMIT=${PEER_LIMIT:-30s} # per phase, peer
OUT=${OUT:-$repo/bench/scimload/results.md}
SERVER=${SERVER:-scimserve}
CONSOLE=${CONSOLE:-off}
PEER=${PEER:-on}
SCIMMY_DIR=${DIRSYNC_SCIMMY_DIR:-$repo/.cache/scimmy-server}
TOKEN=bench-$RANDOM$RANDOM

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

command -v redis-server >/dev/null || { echo "scim-load: redis-server is not installed (scripts/test.sh installs it)" >&2; exit 2; }
echo "scim-load: building" >&2
(cd "$repo" && go build -o "$tmp/scimserve" ./scim/cmd/scimserve && go build -o "$tmp/scimload" ./bench/scimload)
if [ "$SERVER" = daemon ]; then
  (cd "$repo" && go build -o "$tmp/dirsync" ./cmd/dirsync)
fi

# wait_http URL: until the server answers (any status).
wait_http() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null -m 1 "$1"; then return 0; fi
    sleep 0.1
  done
  echo "scim-load: $1 did not come up" >&2
  return 1
}

rport=$("$tmp/scimload" -freeport)
mkdir -p "$tmp/redis"
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
  --dir "$tmp/redis" --logfile "$tmp/redis/redis.log" &
pids+=($!)
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/"$rport") 2>/dev/null; then break; fi
  sleep 0.1
done

sport=$("$tmp/scimload" -freeport)
if [ "$SERVER" = daemon ]; then
  console_enabled=false
  [ "$CONSOLE" = on ] && console_enabled=true
  cat >"$tmp/dirsync.yaml" <<YAML
log: {level: warn}
state: {backend: redis, redis: {addrs: ["127.0.0.1:$rport"], key_prefix: "bench:"}}
http:
  listen: 127.0.0.1:$sport
  console: {enabled: $console_enabled, base_url: "http://localhost:$sport/ui/", admin_token: "\${BENCH_ADMIN_TOKEN}"}
schedule: {full: "0 0 1 1 *", incremental: 0}
sources:
  - {name: bench, type: scim, tokens: ["\${SCIM_TOKEN}"], max_results: 100}
targets:
  - {name: app, type: memory}
YAML
  BENCH_ADMIN_TOKEN=bench-admin-$TOKEN SCIM_TOKEN=$TOKEN "$tmp/dirsync" run --config "$tmp/dirsync.yaml" >"$tmp/scimserve.log" 2>&1 &
  label="dirsync daemon (console $CONSOLE)"
else
  SCIM_TOKEN=$TOKEN "$tmp/scimserve" -listen "127.0.0.1:$sport" -source bench -redis "127.0.0.1:$rport" >"$tmp/scimserve.log" 2>&1 &
  label="dirsync scim (Redis)"
fi
pids+=($!)
wait_http "http://127.0.0.1:$sport/scim/bench/v2/ServiceProviderConfig"

{
  echo "## SCIM server load: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPU ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(go version | cut -d' ' -f3), redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')."
  echo "Load: $USERS creates then $PATCHES PATCH (active false/true) with $CONC connections, all on loopback; dirsync on Redis (AOF everysec)."
  echo "The peer gets $PEER_PATCHES PATCH and a $PEER_LIMIT limit per phase (it is much slower)."
  echo "Command: \`USERS=$USERS PATCHES=$PATCHES CONC=$CONC bench/scim-load.sh\`"
  echo
  echo "| server | creates | creates/s | create p50 ms | create p99 ms | PATCH | PATCH/s | PATCH p50 ms | PATCH p99 ms | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$tmp/table.md"

echo "scim-load: dirsync (redis)" >&2
"$tmp/scimload" -base "http://127.0.0.1:$sport/scim/bench/v2" -token "$TOKEN" -label "$label" \
  -users "$USERS" -patches "$PATCHES" -c "$CONC" -limit "$LIMIT" -md "$tmp/table.md" >&2

if [ "$PEER" = off ]; then
  :
elif command -v node >/dev/null && [ -d "$SCIMMY_DIR/node_modules/scimmy" ]; then
  pport=$("$tmp/scimload" -freeport)
  (cd "$SCIMMY_DIR" && PORT=$pport TOKEN=$TOKEN QUIET=1 exec node server.mjs) >"$tmp/peer.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$pport/scim/v2/ServiceProviderConfig"
  echo "scim-load: scimmy peer" >&2
  "$tmp/scimload" -base "http://127.0.0.1:$pport/scim/v2" -token "$TOKEN" -label "scimmy peer (node, in memory)" \
    -users "$USERS" -patches "$PEER_PATCHES" -c "$CONC" -limit "$PEER_LIMIT" -warmup 100 -md "$tmp/table.md" >&2
else
  echo "| scimmy peer | not run: node or $SCIMMY_DIR missing (scripts/npm-peers.sh) | | | | | | | | |" >>"$tmp/table.md"
fi

mkdir -p "$(dirname "$OUT")"
cp "$tmp/table.md" "$OUT"
cat "$OUT"
