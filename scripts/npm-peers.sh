#!/usr/bin/env bash
# Installs the npm packages the SCIM peer tests need, once, into .cache/:
#   .cache/scimmy-server  a copy of ../shared/peers/scim/scimmy-server with node_modules
#   .cache/scim-peers     newman, used by ../shared/peers/scim/run-suites.sh
# Tests find them through DIRSYNC_SCIMMY_DIR and SCIM_PEERS_CACHE (see
# internal/testenv), defaulting to these folders. Quiet on success.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
peers=${DIRSYNC_SCIM_PEERS:-$repo/../shared/peers/scim}
cache=$repo/.cache
command -v npm >/dev/null 2>&1 || { echo "npm-peers: npm missing; SCIM peer tests will skip" >&2; exit 0; }
[ -d "$peers" ] || { echo "npm-peers: $peers missing; SCIM peer tests will skip" >&2; exit 0; }
mkdir -p "$cache"
if [ ! -d "$cache/scimmy-server/node_modules/scimmy" ]; then
  rm -rf "$cache/scimmy-server"
  cp -r "$peers/scimmy-server" "$cache/scimmy-server"
  chmod -R u+w "$cache/scimmy-server"
  (cd "$cache/scimmy-server" && npm install --no-audit --no-fund >/dev/null 2>&1) || { echo "npm-peers: npm install scimmy failed" >&2; exit 1; }
fi
if [ ! -x "$cache/scim-peers/newman/node_modules/.bin/newman" ]; then
  mkdir -p "$cache/scim-peers/newman"
  (cd "$cache/scim-peers/newman" && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund newman@6.2.2 >/dev/null 2>&1) || { echo "npm-peers: npm install newman failed" >&2; exit 1; }
fi
