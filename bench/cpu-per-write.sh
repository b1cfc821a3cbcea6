#!/usr/bin/env bash
# Where a write's CPU goes: runs redis-benchmark SET against a single node and against a
# three-node cluster on loopback (clients at region 1's leader), and prints the CPU time each
# kind of thread spent per request (user + system, from /proc, in microseconds), per node.
#
# The ratios bench/redis-benchmark.sh prints are throughput; on a machine whose cores are all
# busy they follow from these figures: a cluster on one machine does three nodes' raft and
# apply work for every write, so its CPU per write, not its fsyncs, decides its rate.
#
# Usage: bench/cpu-per-write.sh     (env: REQUESTS=60000 CLIENTS=50 KEYSPACE=100000 TEST=set
#   PLACE=as-is: with PLACE=together, region 1's leader is first moved to the scheduler's
#   leader, so the timestamps its writes take are served in process; with PLACE=apart, to
#   another node, so they go over gRPC)
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-60000}
CLIENTS=${CLIENTS:-50}
KEYSPACE=${KEYSPACE:-100000}
TEST=${TEST:-set}
PLACE=${PLACE:-as-is}

. bench/common.sh

bench() {
    redis-benchmark -p "$1" -t "$TEST" -n "$2" -c "$CLIENTS" -r "$KEYSPACE" -q | last_rate
}
# CPU ticks of every thread of the given processes: "pid thread-kind ticks" lines. Thread
# names end in a store id or a number (raft-1, apply-1); those are one kind.
cpu_ticks() {
    for pid in "$@"; do
        for stat in /proc/"$pid"/task/*/stat; do
            cat "$stat" 2>/dev/null || true
        done | python3 -c '
import re, sys
for line in sys.stdin:
    name = line[line.index("(") + 1:line.rindex(")")]
    fields = line[line.rindex(")") + 2:].split()
    print(sys.argv[1], re.sub(r"[-0-9]+$", "", name), int(fields[11]) + int(fields[12]))
' "$pid"
    done
}
# Runs the benchmark at PORT against the processes PIDS and prints the per-request CPU table.
measure() {
    local label=$1 port=$2
    shift 2
    bench "$port" 20000 >/dev/null
    cpu_ticks "$@" >"$work/before"
    local rate
    rate=$(bench "$port" "$REQUESTS")
    cpu_ticks "$@" >"$work/after"
    echo "$label: $rate requests/s"
    python3 - "$work/before" "$work/after" "$REQUESTS" "$(getconf CLK_TCK)" "$@" <<'EOF'
import collections, sys
before, after, requests, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
node = {pid: f"n{i + 1}" for i, pid in enumerate(sys.argv[5:])}
def load(path):
    totals = collections.Counter()
    for line in open(path):
        pid, kind, ticks = line.split()
        totals[(node[pid], kind)] += int(ticks)
    return totals
spent = load(after)
spent.subtract(load(before))
per = lambda ticks: ticks / hz * 1e6 / requests
for (who, kind), ticks in sorted(spent.items(), key=lambda kv: -kv[1]):
    if ticks > 0:
        print(f"  {who:3} {kind:18} {per(ticks):7.1f} us")
print(f"  all {'':18} {per(sum(spent.values())):7.1f} us per request")
EOF
}

port=$(free_port)
"$binary" --port "$port" --peer-port 0 --data-dir "$work/single" --log-level warn &
single=$!
pids+=("$single")
wait_ready "$port"
echo "redis-benchmark -t $TEST -n $REQUESTS -c $CLIENTS -r $KEYSPACE, $(nproc) cores"
measure "single node" "$port" "$single"
kill "$single"
wait "$single" 2>/dev/null || true

start_cluster
scheduler=$(redis-cli -p "${cluster_ports[0]}" CLUSTER SCHEDULER | sed -n 2p | tr -d n)
[ -n "$scheduler" ] || { echo "the scheduler has no leader" >&2; exit 1; }
case "$PLACE" in
    together) target=$scheduler ;;
    apart) target=$((scheduler % 3 + 1)) ;;
    as-is) target="" ;;
    *) echo "PLACE is together, apart or as-is" >&2; exit 1 ;;
esac
if [ -n "$target" ]; then
    redis-cli -p "${cluster_ports[0]}" CLUSTER TRANSFER-LEADER 1 "$target" >/dev/null
    sleep 1
fi
leader=$(region1_leader)
[ -n "$leader" ] || { echo "region 1 has no leader" >&2; exit 1; }
measure "3-node cluster, clients at n$leader (region 1's leader; the scheduler's: n$scheduler)" \
    "${cluster_ports[$((leader - 1))]}" "${cluster_pids[@]}"
after=$(region1_leader)
[ "$after" = "$leader" ] || echo "  (region 1's leader moved to n$after meanwhile: the figures mix both)"
