#!/usr/bin/env bash
# The fault rig (bench/faults/run.py): a real cluster, checked workloads, a nemesis.
#
#   bench/faults.sh --nemesis kill|pause|partition|leader|membership|mixed|none \
#       [--seconds 60] [--nodes 3|5] [--seed N] [--out DIR] [--workloads bank,list-append,...]
#
# Builds the release binary unless FERROKV_BIN names one. Partitions use network namespaces,
# so the `partition` nemesis (and partitions in `leader` and `mixed`) need root and `ip`.
# Results go to bench/results/ unless --out says otherwise; exit status 1 on any anomaly.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${FERROKV_BIN:-}" ]; then
    scripts/setup.sh >/dev/null
    . scripts/env.sh
    cargo build --release --quiet
    FERROKV_BIN="${CARGO_TARGET_DIR:-target}/release/ferrokv"
fi
exec python3 bench/faults/run.py --binary "$FERROKV_BIN" "$@"
