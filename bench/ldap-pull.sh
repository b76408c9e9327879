#!/usr/bin/env bash
# Pull benchmark: 100,000 users in 1,000 groups (about 3 groups each, some
# nested) loaded offline (slapadd) into a throwaway slapd on loopback, then,
# in the same run and interleaved, RUNS times each:
#   - ldapsearch paging through the same users and groups with the same
#     attributes (output discarded): the reference;
#   - dirsync (bench/ldap, using ldapsrc) pulling them into the canonical
#     model, groups resolved;
#   - go-ldap: the same searches, attributes and page sizes as ldapsearch
#     through go-ldap's paged search, page by page, entries counted and
#     dropped (the reason dirsync has its own reader, measured each time).
# Reports the median wall time, CPU time and peak RSS (/usr/bin/time -v) of
# each and the wall-time ratio. Goal: dirsync <= 1.5x ldapsearch, peak RSS
# <= 400 MB.
#
#   bench/ldap-pull.sh
#   NUSERS=20000 NGROUPS=200 RUNS=5 PARALLEL=1 bench/ldap-pull.sh
set -euo pipefail
cd "$(dirname "$0")/.."

NUSERS=${NUSERS:-100000}
NGROUPS=${NGROUPS:-1000}
PER_USER=${PER_USER:-3}
RUNS=${RUNS:-3}
PAGE=${PAGE:-1000}
GROUP_PAGE=${GROUP_PAGE:-100}
PARALLEL=${PARALLEL:-2}

export PATH="$PATH:/usr/sbin"
for bin in slapd slapadd ldapsearch go; do
  command -v "$bin" >/dev/null 2>&1 || { echo "ldap-pull.sh: $bin is not installed" >&2; exit 1; }
done
[ -x /usr/bin/time ] || { echo "ldap-pull.sh: /usr/bin/time (GNU time) is not installed" >&2; exit 1; }

WORK=$(mktemp -d /tmp/dirsync-ldap-bench.XXXXXX)
SLAPD_PID=
cleanup() {
  if [ -n "$SLAPD_PID" ]; then kill "$SLAPD_PID" 2>/dev/null || true; wait "$SLAPD_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building; generating $NUSERS users in $NGROUPS groups; slapadd" >&2
go build -o "$WORK/ldapbench" ./bench/ldap
"$WORK/ldapbench" gen -users "$NUSERS" -groups "$NGROUPS" -per-user "$PER_USER" >"$WORK/data.ldif"
CONF=$("$WORK/ldapbench" setup -dir "$WORK/slapd" -ldif "$WORK/data.ldif")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="ldap://127.0.0.1:$PORT"
slapd -d 0 -h "$URL/" -f "$CONF" >"$WORK/slapd.log" 2>&1 &
SLAPD_PID=$!
for _ in $(seq 100); do
  ldapsearch -x -H "$URL" -b "" -s base >/dev/null 2>&1 && break
  sleep 0.1
done

# The reference reader: the same searches, attributes and page sizes.
REF=(bench/ldap/reference.sh "$URL" "$PAGE" "$GROUP_PAGE")
PULL=("$WORK/ldapbench" pull -url "$URL" -parallel "$PARALLEL" -page "$PAGE" -group-page "$GROUP_PAGE" -expect-users "$NUSERS")
GOLDAP=("$WORK/ldapbench" goldap -url "$URL" -page "$PAGE" -group-page "$GROUP_PAGE" -expect-users "$NUSERS")

# measure NAME CMD...: records wall seconds, user+sys CPU seconds, peak RSS (MB).
measure() {
  local name=$1
  shift
  /usr/bin/time -v -o "$WORK/time.txt" "$@" >"$WORK/out.txt"
  local wall cpu rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.txt")
  cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$WORK/time.txt")
  rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2/1024}' "$WORK/time.txt")
  echo "$name $wall $cpu $rss" >>"$WORK/results.txt"
  printf '   %-10s wall %6.2f s   cpu %6.2f s   peak RSS %4s MB   %s\n' "$name" "$wall" "$cpu" "$rss" "$(head -c 160 "$WORK/out.txt")" >&2
}

echo "== warm-up" >&2
"${REF[@]}" >/dev/null
"${PULL[@]}" >/dev/null
"${GOLDAP[@]}" >/dev/null
: >"$WORK/results.txt"
echo "== $RUNS runs each, interleaved (parallel=$PARALLEL, page=$PAGE, group page=$GROUP_PAGE)" >&2
for _ in $(seq "$RUNS"); do
  measure ldapsearch "${REF[@]}"
  measure dirsync "${PULL[@]}"
  measure go-ldap "${GOLDAP[@]}"
done

median() {
  grep "^$1 " "$WORK/results.txt" | awk -v c="$2" '{print $c}' | sort -g |
    awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
LW=$(median ldapsearch 2) DW=$(median dirsync 2)
LC=$(median ldapsearch 3) DC=$(median dirsync 3)
LR=$(median ldapsearch 4) DR=$(median dirsync 4)
GW=$(median go-ldap 2) GC=$(median go-ldap 3) GR=$(median go-ldap 4)
echo
echo "ldap pull benchmark: $NUSERS users, $NGROUPS groups, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), median of $RUNS"
printf '  %-10s wall %6.2f s   cpu %6.2f s   peak RSS %4s MB\n' ldapsearch "$LW" "$LC" "$LR"
printf '  %-10s wall %6.2f s   cpu %6.2f s   peak RSS %4s MB\n' dirsync "$DW" "$DC" "$DR"
printf '  %-10s wall %6.2f s   cpu %6.2f s   peak RSS %4s MB   (reads only: no model, no group resolution)\n' go-ldap "$GW" "$GC" "$GR"
awk -v d="$DW" -v l="$LW" 'BEGIN {printf "  ratio (dirsync / ldapsearch, wall): %.2f   goal: <= 1.5, peak RSS <= 400 MB\n", d/l}'
awk -v g="$GW" -v l="$LW" 'BEGIN {printf "  ratio (go-ldap / ldapsearch, wall): %.2f\n", g/l}'
