#!/usr/bin/env bash
# Measures ferrokv against Debian's redis-server with redis-benchmark, side by side in one run,
# and prints the ratios:
#
#   SET, INCR, MSET (writes) against redis with `appendfsync always` (every write fsync'd
#   before the reply, as ferrokv does), GET against redis in memory (no persistence). Both
#   redis baselines are printed for every test.
#
# Then, unless CLUSTER=0, it starts a three-node ferrokv cluster on loopback and runs the
# CLUSTER_TESTS against each node alone, then with the clients spread over the three nodes at
# once (a third each, their rates summed), printing each ratio to the single node's figure.
#
# Usage: bench/redis-benchmark.sh            (defaults below; env vars override)
#   REQUESTS=100000 CLIENTS=50 PIPELINES="1 16" TESTS="set get incr mset" KEYSPACE=100000
#   CLUSTER=1 CLUSTER_TESTS="set get"
# KEYSPACE=none leaves out `-r`: every request of a test then hits one key (the hot-key case).
# ROUNDS=N (default 1) runs each single-node test N times against the three servers in turn
# and prints the medians, and the lowest and highest of the N per-round ratios to each redis:
# on a shared, noisy machine one run's ratio can be off by a tenth either way.
set -euo pipefail
cd "$(dirname "$0")/.."

REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"1 16"}
TESTS=${TESTS:-"set get incr mset"}
KEYSPACE=${KEYSPACE:-100000}
CLUSTER=${CLUSTER:-1}
CLUSTER_TESTS=${CLUSTER_TESTS:-"set get"}
ROUNDS=${ROUNDS:-1}

. bench/common.sh

ferrokv_port=$(free_port)
"$binary" --port "$ferrokv_port" --peer-port 0 --data-dir "$work/ferrokv" --log-level warn &
pids+=($!)
memory_port=$(free_port)
redis-server --port "$memory_port" --save "" --appendonly no --dir "$work" --logfile "" >/dev/null &
pids+=($!)
mkdir -p "$work/aof"
always_port=$(free_port)
redis-server --port "$always_port" --save "" --appendonly yes --appendfsync always --dir "$work/aof" \
    --logfile "" >/dev/null &
pids+=($!)
wait_ready "$ferrokv_port"; wait_ready "$memory_port"; wait_ready "$always_port"

keyspace=(-r "$KEYSPACE")
[ "$KEYSPACE" != none ] || keyspace=()
# requests per second of one test against one server
rps() {
    local port=$1 test=$2 pipeline=$3
    redis-benchmark -p "$port" -t "$test" -n "$REQUESTS" -c "$CLIENTS" -P "$pipeline" "${keyspace[@]}" -q \
        | last_rate
}

# The median of the numbers given, one per argument.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# "lowest-highest" of the ratios a[i] / b[i] of two equally long lists, given as "a1 a2 .. / b1 b2 ..".
ratio_range() {
    awk '{ n = 0; for (i = 1; $i != "/"; i++) a[++n] = $i; for (j = 1; j <= n; j++) { r = a[j] / $(i + j)
        if (j == 1 || r < lo) lo = r; if (j == 1 || r > hi) hi = r }; printf "%.2f-%.2f", lo, hi }' <<<"$*"
}

echo "redis-benchmark -n $REQUESTS -c $CLIENTS ${keyspace[*]:-(one key)}, $(nproc) cores, $(redis-server --version | awk '{print $3}'), $ROUNDS round(s)"
printf '%-6s %3s %12s %12s %12s %8s %8s %10s %10s\n' test P ferrokv redis-mem redis-always vs-mem vs-always \
    mem-range always-range
for pipeline in $PIPELINES; do
    for test in $TESTS; do
        ours_all=() memory_all=() always_all=()
        for _ in $(seq 1 "$ROUNDS"); do
            ours_all+=("$(rps "$ferrokv_port" "$test" "$pipeline")")
            memory_all+=("$(rps "$memory_port" "$test" "$pipeline")")
            always_all+=("$(rps "$always_port" "$test" "$pipeline")")
        done
        ours=$(median "${ours_all[@]}")
        memory=$(median "${memory_all[@]}")
        always=$(median "${always_all[@]}")
        printf '%-6s %3s %12s %12s %12s %8s %8s %10s %10s\n' "$test" "$pipeline" "$ours" "$memory" "$always" \
            "$(awk -v a="$ours" -v b="$memory" 'BEGIN { printf "%.2f", a / b }')" \
            "$(awk -v a="$ours" -v b="$always" 'BEGIN { printf "%.2f", a / b }')" \
            "$(ratio_range "${ours_all[@]}" / "${memory_all[@]}")" \
            "$(ratio_range "${ours_all[@]}" / "${always_all[@]}")"
    done
done

[ "$CLUSTER" = 1 ] || exit 0
start_cluster
# Who leads: a node that leads region 1 runs its clients' writes in process, the others forward
# them; a region leader that also leads the scheduler takes its timestamps in process, the
# others over gRPC (see bench/cpu-per-write.sh for what that costs).
leaders() {
    local region scheduler
    region=$(region1_leader)
    scheduler=$(redis-cli -p "${cluster_ports[0]}" CLUSTER SCHEDULER | sed -n 2p)
    echo "region 1 led by n${region:-?}, the scheduler by ${scheduler:-?}"
}
# The CLIENTS clients spread over the three nodes at once (a third each, and a third of the
# requests each): the cluster's requests per second, all requests over the wall-clock time.
spread() {
    local test=$1 jobs=() i started ended
    started=$(date +%s.%N)
    for i in 0 1 2; do
        redis-benchmark -p "${cluster_ports[$i]}" -t "$test" -n $((REQUESTS / 3)) \
            -c $(((CLIENTS + 2 - i) / 3)) -P 1 "${keyspace[@]}" -q >/dev/null 2>&1 &
        jobs+=($!)
    done
    wait "${jobs[@]}"
    ended=$(date +%s.%N)
    awk -v n=$((REQUESTS / 3 * 3)) -v a="$started" -v b="$ended" 'BEGIN { printf "%.2f", n / (b - a) }'
}

echo
echo "3-node cluster on loopback (P=1): each node alone, the clients spread over all three at"
echo "once (all requests over the wall-clock time), and their ratios to the single node above"
echo "before: $(leaders)"
printf '%-6s %12s %12s %12s %12s %12s %8s %8s %8s %8s\n' test single n1 n2 n3 spread \
    n1/single n2/single n3/single spread/single
for test in $CLUSTER_TESTS; do
    single=$(rps "$ferrokv_port" "$test" 1)
    r1=$(rps "${cluster_ports[0]}" "$test" 1)
    r2=$(rps "${cluster_ports[1]}" "$test" 1)
    r3=$(rps "${cluster_ports[2]}" "$test" 1)
    all=$(spread "$test")
    ratio() { awk -v a="$1" -v b="$single" 'BEGIN { printf "%.2f", a / b }'; }
    printf '%-6s %12s %12s %12s %12s %12s %8s %8s %8s %8s\n' "$test" "$single" "$r1" "$r2" "$r3" "$all" \
        "$(ratio "$r1")" "$(ratio "$r2")" "$(ratio "$r3")" "$(ratio "$all")"
done
echo "after: $(leaders)"
