#!/usr/bin/env bash
# SCIM pull source benchmark, on loopback: dirsync's own SCIM server
# (scim/cmd/scimserve, in-memory store) is loaded through SCIM with SIZES
# users, then read in full RUNS times by the scim_pull source and by a bare
# paging loop that only decodes the pages (the reference, same run, same
# server). Prints a Markdown table: wall time (median of RUNS) and peak RSS
# of the reading process.
#
#   bench/scim-pull.sh                    # SIZES="10000 100000" RUNS=3
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-"10000 100000"}
RUNS=${RUNS:-3}
PAGE=${PAGE:-100}
export SCIM_TOKEN=bench-$RANDOM$RANDOM
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
(cd "$repo" && go build -o "$tmp/scimserve" ./scim/cmd/scimserve && go build -o "$tmp/scimpull" ./bench/scimpull)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tmp/scimserve" -listen "127.0.0.1:$port" -source corp > "$tmp/serve.log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port/scim/corp/v2"
for _ in $(seq 1 100); do grep -q "listening on" "$tmp/serve.log" && break; sleep 0.1; done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| users | reference (page + decode) | scim_pull source | ratio | source peak RSS |"
echo "|---|---|---|---|---|"
have=0
for n in $SIZES; do
  "$tmp/scimpull" -base "$base" -create $((n - have)) -from "$have"
  have=$n
  raw=(); src=(); rss=()
  for _ in $(seq 1 "$RUNS"); do
    r=$("$tmp/scimpull" -base "$base" -mode raw -page "$PAGE")
    s=$("$tmp/scimpull" -base "$base" -mode source -page "$PAGE")
    raw+=("$(echo "$r" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')")
    src+=("$(echo "$s" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')")
    rss+=("$(echo "$s" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_mb"])')")
  done
  mr=$(printf '%s\n' "${raw[@]}" | median); ms=$(printf '%s\n' "${src[@]}" | median); mm=$(printf '%s\n' "${rss[@]}" | median)
  printf '| %s | %.2f s | %.2f s | %.2f× | %.0f MB |\n' "$n" "$mr" "$ms" "$(python3 -c "print($ms/$mr)")" "$mm"
done
