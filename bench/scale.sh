#!/usr/bin/env bash
# Scale benchmark: whole runs of `dirsync sync` (a process per run) at each
# size in SIZES, on slapd loaded offline (slapadd) with that many people in
# n/100 groups (three each, some nested: bench/ldap gen), state on a
# throwaway Redis, one memory target whose scope is everyone. Per size, in
# the same run: ldapsearch paging through the same users and groups (the
# reference), dirsync's first full run (every account created), a no-op
# full run, and a full run after 1 % of the people changed (sn, an update
# each; a dry run, as the memory target's accounts do not outlive its
# process). Wall time, CPU time and peak RSS (GNU time) of each, and the load
# average. A step that takes longer than STEP_TIMEOUT is stopped and its row
# says so.
#
#   bench/scale.sh                         # SIZES="100000 300000 1000000"
#   SIZES=100000 bench/scale.sh
#
# Needs slapd, slapadd, ldapsearch, ldapmodify, redis-server, GNU time, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-100000 300000 1000000}
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
OUT=${OUT:-bench/results/scale.md}
export PATH="$PATH:/usr/sbin"
for bin in slapd slapadd ldapsearch ldapmodify redis-server go python3; do
  command -v "$bin" >/dev/null 2>&1 || { echo "scale.sh: $bin is not installed" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "scale.sh: /usr/bin/time (GNU time) is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d /tmp/dirsync-scale.XXXXXX)
SLAPD_PID= REDIS_PID=
stop_slapd() { if [ -n "$SLAPD_PID" ]; then kill "$SLAPD_PID" 2>/dev/null || true; wait "$SLAPD_PID" 2>/dev/null || true; SLAPD_PID=; fi; }
cleanup() {
  stop_slapd
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== building" >&2
go build -o "$WORK/dirsync" ./cmd/dirsync
go build -o "$WORK/ldapbench" ./bench/ldap
RPORT=$(port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

table=$WORK/table.md
{
  echo "## Whole runs: dirsync sync on slapd and Redis"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPU, \`SIZES=\"$SIZES\" bench/scale.sh\`"
  echo
  echo "| people | step | wall s | CPU s | peak RSS MB | result | load avg |"
  echo "|---|---|---|---|---|---|---|"
} >"$table"

# measure SIZE STEP CMD...: one row.
measure() {
  local n=$1 step=$2
  shift 2
  local load rc=0
  load=$(cut -d' ' -f1 /proc/loadavg)
  timeout "$STEP_TIMEOUT" /usr/bin/time -o "$WORK/time.txt" -f '%e %U %S %M' "$@" >"$WORK/out.txt" 2>"$WORK/err.txt" || rc=$?
  local wall user sys rss
  read -r wall user sys rss < <(tail -n 1 "$WORK/time.txt" 2>/dev/null || echo "- 0 0 0")
  local result
  result=$(tail -n 1 "$WORK/out.txt" | head -c 120)
  if [ "$rc" = 124 ]; then result="stopped after ${STEP_TIMEOUT}s"; elif [ "$rc" != 0 ]; then result="exit $rc: $(tail -n 1 "$WORK/err.txt" | head -c 120)"; fi
  local cpu
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  printf '| %d | %s | %s | %s | %d | %s | %s |\n' "$n" "$step" "$wall" "$cpu" $((rss / 1024)) "$result" "$load" >>"$table"
  echo "scale: $n $step: wall $wall s, cpu $cpu s, peak RSS $((rss / 1024)) MB: $result (load $load)" >&2
  return "$rc"
}

for n in $SIZES; do
  groups=$((n / 100))
  echo "== $n people in $groups groups: generating, slapadd" >&2
  "$WORK/ldapbench" gen -users "$n" -groups "$groups" -per-user 3 >"$WORK/data.ldif"
  rm -rf "$WORK/slapd"
  CONF=$("$WORK/ldapbench" setup -dir "$WORK/slapd" -ldif "$WORK/data.ldif")
  rm -f "$WORK/data.ldif"
  LPORT=$(port)
  URL="ldap://127.0.0.1:$LPORT"
  slapd -d 0 -h "$URL/" -f "$CONF" >"$WORK/slapd.log" 2>&1 &
  SLAPD_PID=$!
  for _ in $(seq 100); do ldapsearch -x -H "$URL" -b "" -s base >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$RPORT" flushall >/dev/null
  cat >"$WORK/dirsync.yaml" <<YAML
log: {level: warn}
state:
  backend: redis
  redis: {addrs: ["127.0.0.1:$RPORT"]}
sources:
  - name: directory
    type: ldap
    urls: ["$URL"]
    flavour: openldap
    bind_dn: cn=admin,dc=example,dc=test
    bind_password: admin-secret
    users: {base_dn: "ou=people,dc=example,dc=test"}
    groups: {base_dn: "ou=groups,dc=example,dc=test"}
targets:
  - name: app
    type: memory
    rate_limit: 1000000
    concurrency: 8
YAML
  measure "$n" "ldapsearch (reference)" bench/ldap/reference.sh "$URL" || true
  measure "$n" "first full run" "$WORK/dirsync" sync --config "$WORK/dirsync.yaml" || { stop_slapd; continue; }
  measure "$n" "no-op full run" "$WORK/dirsync" sync --config "$WORK/dirsync.yaml" || true
  # 1 % changed: a new surname for every hundredth person.
  awk -v n="$n" 'BEGIN { for (i = 0; i < n; i += 100) printf "dn: uid=user%06d,ou=people,dc=example,dc=test\nchangetype: modify\nreplace: sn\nsn: Changed%06d\n\n", i, i }' >"$WORK/change.ldif"
  ldapmodify -x -H "$URL" -D "cn=admin,dc=example,dc=test" -w admin-secret -f "$WORK/change.ldif" >/dev/null
  # A dry run: the memory target keeps its accounts only as long as its
  # process, so the updates themselves cannot be sent from a new one.
  measure "$n" "1 % changed (dry run)" "$WORK/dirsync" sync --dry-run --config "$WORK/dirsync.yaml" || true
  stop_slapd
done
cat "$table"
cp "$table" "$OUT"
