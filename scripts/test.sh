#!/usr/bin/env bash
# The whole test suite. Installs what the tests need when it is missing
# (slapd, ldap-utils, Samba AD DC, redis-server, node/npm, curl, promtool and
# headless Chromium through apt-get; the SCIM peer suites' npm packages), then
# runs gofmt, go vet and go test -race.
#
# DIRSYNC_INTEGRATION=1 makes tests that need a real server fail instead of
# skip when the server is missing (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need_pkgs+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need_pkgs+=(ldap-utils)
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
[ -x /usr/sbin/samba ] || need_pkgs+=(samba samba-ad-dc winbind)
command -v node >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl) # the SCIM peer suites' script
# promtool (Debian's prometheus package) checks and unit-tests the alerting
# rules; headless Chromium drives the web console's browser tests. Installed
# without their recommended packages (desktop and exporter extras).
lean_pkgs=()
command -v promtool >/dev/null 2>&1 || lean_pkgs+=(prometheus)
command -v chromium >/dev/null 2>&1 || lean_pkgs+=(chromium)
if [ ${#need_pkgs[@]} -gt 0 ] || [ ${#lean_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # Keep packaged daemons from starting on the standard ports: the tests
    # start their own instances on random loopback ports.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
    fi
    echo "test.sh: installing ${need_pkgs[*]} ${lean_pkgs[*]}" >&2
    apt-get update -q >/dev/null
    if [ ${#need_pkgs[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null
    fi
    if [ ${#lean_pkgs[@]} -gt 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${lean_pkgs[@]}" >/dev/null
    fi
  else
    echo "test.sh: missing ${need_pkgs[*]} ${lean_pkgs[*]} (not root or no apt-get): tests that need them will skip" >&2
  fi
fi

# npm packages for the SCIM peer server (scimmy), installed once into a cache.
if [ -f scripts/npm-peers.sh ]; then
  scripts/npm-peers.sh
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...
go test -race -timeout 20m "$@" ./...
