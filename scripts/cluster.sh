#!/usr/bin/env bash
# Starts the example three-node cluster of cluster.yaml on this machine: builds like
# scripts/run.sh, then runs nodes n1, n2 and n3 as child processes, each logging to
# ferrokv-nX/ferrokv.log. Redis clients connect to any of 127.0.0.1:6379, :6380, :6381.
# Ctrl-C (or SIGTERM) stops them all. Extra arguments go to every node (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
cargo build --release --quiet
binary="${CARGO_TARGET_DIR:-target}/release/ferrokv"
pids=()
stop() {
  trap - INT TERM
  echo "stopping the cluster..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
  exit 0
}
trap stop INT TERM
for node in n1 n2 n3; do
  mkdir -p "ferrokv-$node"
  "$binary" --config cluster.yaml --node "$node" "$@" >"ferrokv-$node/ferrokv.log" 2>&1 &
  pids+=("$!")
done
echo "starting n1, n2, n3 (logs in ferrokv-n1/ferrokv.log ...)"
for node in n1 n2 n3; do
  until grep -q "ferrokv is ready" "ferrokv-$node/ferrokv.log" 2>/dev/null; do
    for pid in "${pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "a node exited during start-up; its log:" >&2
        tail -n 20 ferrokv-n*/ferrokv.log >&2
        stop
      fi
    done
    sleep 0.2
  done
done
echo "cluster ready: redis-cli -p 6379, -p 6380 or -p 6381 (Ctrl-C stops all three)"
wait
