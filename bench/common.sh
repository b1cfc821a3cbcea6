# What the benchmark scripts share; sourced from the repository's root. It sets up the machine
# (scripts/setup.sh --bench), builds the release binary, and gives:
#   $binary, $work (a temporary directory, removed on exit), pids (ended on exit),
#   free_port, wait_ready PORT,
#   start_cluster: a three-node cluster on loopback, each node its own process; fills
#     cluster_ports and cluster_pids (index 0 is node n1, store 1),
#   region1_leader: the store (= node number) leading region 1 once there is one, or "".

scripts/setup.sh --bench >/dev/null
. scripts/env.sh
cargo build --release --quiet
binary="${CARGO_TARGET_DIR:-target}/release/ferrokv"
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_ready() {
    for _ in $(seq 1 200); do
        if redis-cli -p "$1" PING >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    echo "server on port $1 did not start" >&2
    exit 1
}

start_cluster() {
    {
        echo "nodes:"
        for n in 1 2 3; do
            echo "  - {name: n$n, resp_addr: 127.0.0.1:$(free_port), peer_addr: 127.0.0.1:$(free_port), data_dir: n$n}"
        done
    } >"$work/cluster.yaml"
    cluster_ports=()
    cluster_pids=()
    local n port
    for n in 1 2 3; do
        "$binary" --config "$work/cluster.yaml" --node "n$n" --log-level warn &
        pids+=($!)
        cluster_pids+=($!)
        cluster_ports+=("$(awk -v n="n$n" '$0 ~ "name: " n "," { sub(/.*resp_addr: 127.0.0.1:/, ""); sub(/,.*/, ""); print }' "$work/cluster.yaml")")
    done
    for port in "${cluster_ports[@]}"; do wait_ready "$port"; done
    # A first write, so that region 1 has been used and reported.
    redis-cli -p "${cluster_ports[0]}" SET bench-ready 1 >/dev/null
}

region1_leader() {
    local leader="" _
    for _ in $(seq 1 100); do
        leader=$(redis-cli -p "${cluster_ports[0]}" CLUSTER REGION 1 | grep -A1 '^leader$' | tail -n 1)
        [ -n "$leader" ] && break
        sleep 0.1
    done
    echo "$leader"
}

# The requests per second of a `redis-benchmark -q` run on stdin: the figure on its last line
# (LRANGE_100 first runs an LPUSH to fill its list, and its name holds a number of its own).
last_rate() {
    tr '\r' '\n' | grep -a 'requests per second' | tail -n 1 \
        | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/'
}
