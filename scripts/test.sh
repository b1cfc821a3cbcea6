#!/usr/bin/env bash
# The test command of the README: installs what is missing, then runs every test: the cargo
# tests, then (when called without arguments, which would filter the cargo tests) Redis's own
# test suite against a ferrokv (scripts/redis-tests.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo test "$@"
if [ $# -eq 0 ]; then
    scripts/redis-tests.sh
fi
