#!/usr/bin/env python3
"""Hostile clients at scale, measured: many connections that are idle, that sent the header of
a 512 MB bulk string and stop, or that trickle one byte a second, against one ferrokv node,
while a well-behaved client keeps working. Reports the server's memory per hostile connection
and the well-behaved client's latency and throughput before and during; exits non-zero if the
well-behaved client was ever refused or left waiting more than --max-wait seconds, or if a
hostile connection was refused.

    bench/hostile.py [--connections 10000] [--seconds 60] [--binary target/release/ferrokv]

Needs `ulimit -n` above the connection count (the node gets resp.max_clients = connections
+ 100) and redis-py (scripts/setup.sh installs it).
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import redis


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def probe(client, seconds):
    """PING latencies (ms) and SETs per second of the well-behaved client over `seconds`."""
    latencies = []
    end = time.monotonic() + seconds / 2
    while time.monotonic() < end:
        t = time.monotonic()
        client.ping()
        latencies.append((time.monotonic() - t) * 1000)
    sets = 0
    end = time.monotonic() + seconds / 2
    start = time.monotonic()
    while time.monotonic() < end:
        client.set(f"probe:{sets % 1000}", "v" * 100)
        sets += 1
    rate = sets / (time.monotonic() - start)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1],
        "sets_per_s": rate,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--binary", default="target/release/ferrokv")
    ap.add_argument("--max-wait", type=float, default=1.0)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ferrokv-hostile-")
    resp_port, peer_port = free_port(), free_port()
    config = os.path.join(work, "cluster.yaml")
    with open(config, "w") as f:
        f.write(
            f"nodes:\n  - {{name: n1, resp_addr: 127.0.0.1:{resp_port}, peer_addr: 127.0.0.1:{peer_port}, data_dir: data}}\n"
            f"resp:\n  max_clients: {args.connections + 100}\n"
        )
    server = subprocess.Popen(
        [args.binary, "--config", config, "--node", "n1"],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "log"), "w"),
    )
    failures = []
    hostile = []
    try:
        client = redis.Redis(port=resp_port, socket_timeout=args.max_wait * 10)
        for _ in range(300):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        before_rss = rss_bytes(server.pid)
        before = probe(client, 4)

        # The hostile connections: a third each.
        trickle_bytes = b"*1\r\n$4\r\nPING\r\n"
        opened = {"idle": 0, "big-header": 0, "trickle": 0}
        t0 = time.monotonic()
        for i in range(args.connections):
            kind = ("idle", "big-header", "trickle")[i % 3]
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", resp_port))
            except OSError as e:
                failures.append(f"hostile connection {i} refused: {e}")
                break
            if kind == "big-header":
                s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$536870912\r\n" + b"x" * 1024)
            s.setblocking(False)
            hostile.append((kind, s))
            opened[kind] += 1
        open_secs = time.monotonic() - t0

        stop = threading.Event()

        def trickle():
            step = 0
            while not stop.is_set():
                byte = trickle_bytes[step % len(trickle_bytes) : step % len(trickle_bytes) + 1]
                for kind, s in hostile:
                    if kind == "trickle":
                        try:
                            s.send(byte)
                        except OSError:
                            pass
                step += 1
                stop.wait(1.0)

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        during = []
        peak_rss = rss_bytes(server.pid)
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            try:
                sample = probe(client, 4)
            except redis.RedisError as e:
                failures.append(f"the well-behaved client failed: {e}")
                break
            during.append(sample)
            if sample["max_ms"] > args.max_wait * 1000:
                failures.append(f"the well-behaved client waited {sample['max_ms']:.0f} ms")
            peak_rss = max(peak_rss, rss_bytes(server.pid))
        stop.set()
        trickler.join()
        info = client.info("clients")
        per_connection = (peak_rss - before_rss) / max(1, len(hostile))
        print(
            f"hostile clients: {len(hostile)} connections ({opened['idle']} idle, {opened['big-header']} with a "
            f"512 MB bulk header and 1 KB of it, {opened['trickle']} trickling 1 byte/s), opened in {open_secs:.1f} s, "
            f"held {args.seconds} s; connected_clients {info['connected_clients']}"
        )
        print(
            f"server RSS: {before_rss / 2**20:.1f} MiB before, {peak_rss / 2**20:.1f} MiB peak: "
            f"{per_connection / 1024:.1f} KiB per hostile connection"
        )
        p50 = statistics.median(s["p50_ms"] for s in during) if during else float("nan")
        p99 = max(s["p99_ms"] for s in during) if during else float("nan")
        rate = statistics.median(s["sets_per_s"] for s in during) if during else float("nan")
        print(
            f"well-behaved client: PING p50 {before['p50_ms']:.3f} ms -> {p50:.3f} ms, p99 {before['p99_ms']:.3f} -> "
            f"{p99:.3f} ms (worst sample's p99); SET {before['sets_per_s']:.0f}/s -> {rate:.0f}/s (one connection)"
        )
    finally:
        for _, s in hostile:
            s.close()
        server.kill()
        server.wait()
    for failure in failures[:10]:
        print("FAIL:", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
