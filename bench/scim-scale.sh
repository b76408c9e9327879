#!/usr/bin/env bash
# SCIM server at the size of a real tenant, on loopback, reference in the
# same run.
#
# Builds scim/cmd/scimserve and bench/scimscale, then for dirsync on the
# embedded store (bbolt file), dirsync on a throwaway redis-server (AOF,
# everysec) and the scimmy peer (.cache/scimmy-server, scripts/npm-peers.sh):
# grows the users through SCIM creates to each of STEPS and there times
#   (a) paging through every user with count=100, without and with FILTER,
#   (c) LOOKUPS `userName eq` lookups,
# then, on dirsync, (b) PATCHes adding 10,000 members at a time to a group
# up to 50,000 members, one more add of 10,000 and a remove of 10,000 by
# value list, and a group of every user (100,000 members) read back.
# The server's resident memory is read from /proc at each step. Writes
# Markdown tables to OUT and prints them.
#
#   bench/scim-scale.sh
#   STEPS=2000,5000 PEER_STEPS=2000 bench/scim-scale.sh     # quick
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${STEPS:-10000,50000,100000}
PEER_STEPS=${PEER_STEPS:-10000}     # scimmy creates ~100-400 users/s here
FILTER=${FILTER:-active eq true}
LOOKUPS=${LOOKUPS:-500}
CONC=${CONC:-16}
PAGE_LIMIT=${PAGE_LIMIT:-180s}
BACKENDS=${BACKENDS:-bolt redis}
PEER=${PEER:-on}
OUT=${OUT:-$repo/bench/scimscale/results.md}
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

echo "scim-scale: building" >&2
(cd "$repo" && go build -o "$tmp/scimserve" ./scim/cmd/scimserve && go build -o "$tmp/scimscale" ./bench/scimscale)

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null -m 1 "$1"; then return 0; fi
    sleep 0.1
  done
  echo "scim-scale: $1 did not come up" >&2
  return 1
}

{
  echo "## SCIM server at tenant size: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Machine: $(nproc) CPU ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(go version | cut -d' ' -f3); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo "Users created through SCIM ($CONC connections), 3 of 4 active; paging is sequential, count=100, until the last page; filter: \`$FILTER\`; $LOOKUPS \`userName eq\` lookups per step."
  echo "Command: \`STEPS=$STEPS PEER_STEPS=$PEER_STEPS bench/scim-scale.sh\`"
  echo
  echo "### Paging and lookups (ms per request)"
  echo
  echo "| server | users | pages read/total | page avg | page p99 | last page | filtered pages/matches | filtered avg | filtered p99 | lookup avg | lookup p99 | server RSS MB |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$tmp/table.md"

for backend in $BACKENDS; do
  sport=$(freeport)
  case $backend in
    bolt)
      SCIM_TOKEN=$TOKEN "$tmp/scimserve" -listen "127.0.0.1:$sport" -source bench -bolt "$tmp/state.db" >"$tmp/serve-bolt.log" 2>&1 &
      spid=$!; label="dirsync (embedded bbolt)" ;;
    redis)
      command -v redis-server >/dev/null || { echo "| dirsync (Redis) | not run: no redis-server |" >>"$tmp/table.md"; continue; }
      rport=$(freeport)
      mkdir -p "$tmp/redis"
      redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
        --dir "$tmp/redis" --logfile "$tmp/redis/redis.log" &
      pids+=($!)
      for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$rport") 2>/dev/null && break; sleep 0.1; done
      SCIM_TOKEN=$TOKEN "$tmp/scimserve" -listen "127.0.0.1:$sport" -source bench -redis "127.0.0.1:$rport" >"$tmp/serve-redis.log" 2>&1 &
      spid=$!; label="dirsync (Redis, AOF)" ;;
  esac
  pids+=($spid)
  wait_http "http://127.0.0.1:$sport/scim/bench/v2/ServiceProviderConfig"
  echo "scim-scale: $label" >&2
  "$tmp/scimscale" -base "http://127.0.0.1:$sport/scim/bench/v2" -token "$TOKEN" -label "$label" -steps "$STEPS" \
    -filter "$FILTER" -lookups "$LOOKUPS" -c "$CONC" -page-limit "$PAGE_LIMIT" -pid "$spid" -md "$tmp/table.md" >&2
  mv "$tmp/table.md.groups" "$tmp/groups-$backend.md"
  kill "$spid" 2>/dev/null || true
done

if [ "$PEER" = off ]; then
  :
elif command -v node >/dev/null && [ -d "$SCIMMY_DIR/node_modules/scimmy" ]; then
  pport=$(freeport)
  (cd "$SCIMMY_DIR" && PORT=$pport TOKEN=$TOKEN QUIET=1 exec node server.mjs) >"$tmp/peer.log" 2>&1 &
  ppid=$!
  pids+=($ppid)
  wait_http "http://127.0.0.1:$pport/scim/v2/ServiceProviderConfig"
  echo "scim-scale: scimmy peer" >&2
  "$tmp/scimscale" -base "http://127.0.0.1:$pport/scim/v2" -token "$TOKEN" -label "scimmy peer (node, in memory)" \
    -steps "$PEER_STEPS" -filter "$FILTER" -lookups "$LOOKUPS" -c "$CONC" -page-limit "$PAGE_LIMIT" -groups=false \
    -pid "$ppid" -md "$tmp/table.md" >&2 || echo "| scimmy peer | failed or timed out: see above |" >>"$tmp/table.md"
else
  echo "| scimmy peer | not run: node or $SCIMMY_DIR missing (scripts/npm-peers.sh) |" >>"$tmp/table.md"
fi

{
  echo
  echo "### Group membership PATCH (ms per request)"
  echo
  echo "| server | PATCH | members after | ms |"
  echo "|---|---|---|---|"
  cat "$tmp"/groups-*.md 2>/dev/null || true
  echo
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} >>"$tmp/table.md"

mkdir -p "$(dirname "$OUT")"
cp "$tmp/table.md" "$OUT"
cat "$OUT"
