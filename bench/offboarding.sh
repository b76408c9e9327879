#!/usr/bin/env bash
# Offboarding benchmark: how long until a leaver has lost all four
# applications, measured as a user would see it. `dirsync run` runs as its
# own process against a real slapd (syncrepl) and a real Samba AD DC
# (change notifications, then USN polling at its default interval), with the
# SCIM source for the IdP and the fakes of Ezeelogin, Netmaker, ezeep Blue
# and Allthenticate. For each trigger, TRIALS times: make the change, wait
# until every application shows it (p50/p95/max), undo it, wait again (the
# re-enable column). Then the burst row: BURST (1000) people disabled at
# once in OpenLDAP from four connections: how many runs the daemon made and
# the time until the last of them is suspended everywhere (and the same for
# re-enabling them). Prints a Markdown table.
#
#   bench/offboarding.sh                       # 20 trials per trigger
#   TRIALS=5 TRIGGERS=ldap-disable,ad-notify-disable bench/offboarding.sh
#   TRIALS=5 TRIGGERS=burst BURST=10000 bench/offboarding.sh
#
# Triggers: ldap-disable, scim-idp-only, scim-merged, ldap-group-removal,
# ad-notify-disable, ad-expiry, scim-pull (a remote SCIM provider, dirsync's
# own SCIM server as its own process, read by a scim_pull source polling every
# PULL_POLL, default 500ms), ad-usn-disable, burst (BURST=0: none). Needs slapd, Samba (root)
# and Go; scripts/test.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"
for bin in slapd samba samba-tool go; do
  command -v "$bin" >/dev/null 2>&1 || { echo "offboarding.sh: $bin is not installed (scripts/test.sh installs it)" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/dirsync-offboarding.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
echo "== building" >&2
go build -o "$WORK/dirsync" ./cmd/dirsync
go build -o "$WORK/offboarding" ./bench/offboarding
go build -o "$WORK/scimserve" ./scim/cmd/scimserve
# The burst row runs on its own daemon and directories: its people would
# otherwise be in every targeted run of the other rows.
{
  if [ "${TRIGGERS:-}" != burst ]; then
    "$WORK/offboarding" -dirsync "$WORK/dirsync" -scimserve "$WORK/scimserve" -pull-poll "${PULL_POLL:-500ms}" -trials "${TRIALS:-20}" -burst 0 -timeout "${TIMEOUT:-20s}" -triggers "${TRIGGERS:-}"
  fi
  if [ "${BURST:-1000}" != 0 ] && { [ -z "${TRIGGERS:-}" ] || [[ ",$TRIGGERS," == *,burst,* ]]; }; then
    echo
    "$WORK/offboarding" -dirsync "$WORK/dirsync" -trials 1 -burst "${BURST:-1000}" -timeout "${TIMEOUT:-20s}" -triggers burst
  fi
} | tee "${OUT:-/dev/null}"
