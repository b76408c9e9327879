#!/usr/bin/env bash
# Runs the engine's model-based test (sync/model_test.go) for a long time
# with fresh seeds: random sequences of directory events, operator actions
# and faults checked against the reference model. It prints how many
# sequences and steps ran and how long it took, and the shortest failing
# sequence of each kind of failure found.
#
#   scripts/model-long.sh            # 10 minutes, a random first seed, under -race
#   DIRSYNC_MODEL_TIME=30m DIRSYNC_MODEL_SEED=42 scripts/model-long.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DIRSYNC_MODEL_TIME="${DIRSYNC_MODEL_TIME:-10m}"
export DIRSYNC_MODEL_SEED="${DIRSYNC_MODEL_SEED:-random}"
race=-race
[[ "${DIRSYNC_MODEL_RACE:-1}" == 0 ]] && race=
start=$(date +%s)
set +e
go test $race -count=1 -timeout 0 -run 'TestModel$' -v ./sync 2>&1 | tee /tmp/dirsync-model-long.$$.log | grep -v '^=== RUN'
status=${PIPESTATUS[0]}
set -e
echo "model-long: $(grep -o 'model: [0-9]* sequences, [0-9]* steps, [^ ]*' /tmp/dirsync-model-long.$$.log | head -1); wall $(( $(date +%s) - start ))s; exit status $status"
rm -f /tmp/dirsync-model-long.$$.log
exit "$status"
