#!/usr/bin/env bash
# Fuzzes the LDAP reader (ldapsrc/internal/wire): each fuzz target in turn,
# FUZZTIME in all (default 10m, split evenly), then prints each target's
# executions and whether it found a failure. A failing input is written by
# `go test` to ldapsrc/internal/wire/testdata/fuzz/<target>/ and becomes a
# regular test case: fix the reader, keep the file.
#
#   scripts/fuzz-ldap.sh                 # 10 minutes
#   FUZZTIME=90s scripts/fuzz-ldap.sh    # a quick pass
#   FUZZ_WORKERS=2 scripts/fuzz-ldap.sh  # parallel workers (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=./ldapsrc/internal/wire
total=${FUZZTIME:-10m}
workers=${FUZZ_WORKERS:-1}
targets=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
[ -n "$targets" ] || { echo "fuzz-ldap: no fuzz targets in $pkg" >&2; exit 1; }
n=$(echo "$targets" | wc -l)
# Split the total (Go duration: h, m, s) evenly, in whole seconds.
secs=$(python3 -c 'import re,sys
t=sys.argv[1]; s=0
for v,u in re.findall(r"([0-9.]+)(h|m|s)", t): s+=float(v)*{"h":3600,"m":60,"s":1}[u]
print(max(1,int(s)))' "$total")
per=$((secs / n))
[ "$per" -ge 1 ] || per=1
logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
status=0
printf '%-16s %12s %10s  %s\n' target execs seconds result > "$logdir/table"
for t in $targets; do
  echo "fuzz-ldap: $t for ${per}s" >&2
  start=$(date +%s)
  if go test "$pkg" -run '^$' -fuzz "^${t}\$" -fuzztime "${per}s" -parallel "$workers" > "$logdir/$t.log" 2>&1; then
    result=ok
  else
    result="FAILED (see below)"
    status=1
  fi
  end=$(date +%s)
  execs=$(grep -o 'execs: [0-9]*' "$logdir/$t.log" | tail -1 | awk '{print $2}')
  printf '%-16s %12s %10s  %s\n' "$t" "${execs:-?}" "$((end - start))" "$result" >> "$logdir/table"
  if [ "$result" != ok ]; then
    sed -n '1,60p' "$logdir/$t.log" >&2
  fi
done
cat "$logdir/table"
exit $status
