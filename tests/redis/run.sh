#!/usr/bin/env bash
# Runs test files of Redis 7.0.15's own test suite (copied here unchanged, BSD-licensed: COPYING)
# against a server that is already listening, the way Redis's suite tests an external server.
# scripts/redis-tests.sh starts a ferrokv and runs this against it, for CI.
#
#   tests/redis/run.sh PORT [unit/type/list ...]   (default: every file below)
#
# Files here: unit/type/hash, unit/type/list, unit/type/set, unit/type/zset, unit/expire.
# The harness runs with --singledb (no SELECT 9) and --ignore-encoding (no OBJECT ENCODING
# checks), and skips tests tagged as needing DEBUG, replication, maxmemory or SAVE. Before each
# test it sends FLUSHALL and FUNCTION FLUSH. It prints [ok]/[err]/[exception] lines and a count.
# REDIS_TESTS_ARGS adds arguments for the harness (CI: `--tags -slow`).
# A test file stops at its first [exception] (an error reply the test did not expect).
# Needs tclsh (Debian: tcl).
set -u
PORT=${1:?usage: run.sh PORT [unit/... files]}; shift
FILES=("$@"); [ ${#FILES[@]} -eq 0 ] && FILES=(unit/type/hash unit/type/list unit/type/set unit/type/zset unit/expire)
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d); cp -r "$HERE/tests" "$WORK/"; chmod -R u+w "$WORK"; mkdir -p "$WORK/tests/tmp"; cd "$WORK"
total_ok=0; total_err=0; total_exc=0
mkdir -p logs
for f in "${FILES[@]}"; do
  log="logs/${f//\//_}.log"
  timeout "${REDIS_TESTS_TIMEOUT:-900}" tclsh tests/test_helper.tcl --host 127.0.0.1 --port "$PORT" \
    --singledb --ignore-encoding --tags -needs:debug --tags -needs:repl --tags -needs:config-maxmemory \
    --tags -needs:save ${REDIS_TESTS_ARGS:-} --single "$f" > "$log" 2>&1
  sed -i 's/\x1b\[[0-9;]*m//g' "$log"
  ok=$(grep -c '^\[ok\]' "$log"); err=$(grep -c '^\[err\]' "$log"); exc=$(grep -c '^\[exception\]' "$log")
  grep -E -A3 '^\[err\]|^\[exception\]' "$log" | head -20
  echo "$f: ok $ok err $err exception $exc (log: $WORK/$log)"
  total_ok=$((total_ok+ok)); total_err=$((total_err+err)); total_exc=$((total_exc+exc))
done
echo "redis-tests: $total_ok passed, $((total_err+total_exc)) failed"
