#!/usr/bin/env bash
# The test command of the README: installs what is missing, then runs every test: the cargo
# tests, then (when called without arguments, which would filter the cargo tests) Redis's own
# test suite against a ferrokv (scripts/redis-tests.sh) and a two-minute run of the fault rig
# (bench/faults.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo test "$@"
if [ $# -eq 0 ]; then
    scripts/redis-tests.sh
    # The fault rig: its checkers' own tests, then a short mixed run (kills, pauses,
    # partitions where network namespaces are available, leader faults, membership changes)
    # against the debug binary the cargo tests built.
    python3 -m unittest discover -s bench/faults -q
    FERROKV_BIN="${CARGO_TARGET_DIR:-target}/debug/ferrokv" bench/faults.sh --nemesis mixed \
        --seconds "${FAULTS_SECONDS:-120}" --out "$(mktemp -d)/faults"
fi
