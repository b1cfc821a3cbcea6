"""The fault rig: a real ferrokv cluster, a load of checked workloads through every node, a
nemesis injecting faults, then healing, final reads, checks and a report.

    python3 bench/faults/run.py --binary target/release/ferrokv --nemesis kill --seconds 60
        [--nodes 3|5] [--seed N] [--out DIR] [--workloads bank,list-append,register,ack-writes]

Writes `history.jsonl` (every operation), `faults.json`, `report.json`, `report.txt` and the
nodes' logs to the results directory, prints one summary line, and exits 1 on any anomaly
(or when the cluster cannot be read back at the end), 2 on a usage or set-up error.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import checkers  # noqa: E402
import workloads  # noqa: E402
from client import Client, ReplyError  # noqa: E402
from cluster import Cluster, have_namespaces  # noqa: E402

NEMESES = ("none", "kill", "pause", "partition", "leader", "membership", "mixed")
# Worker threads per workload.
WORKERS = {"bank": 3, "list-append": 4, "register": 4, "ack-writes": 3}
# Faults last FAULT_S seconds (a range), with QUIET_S seconds between them.
FAULT_S = (4.0, 10.0)
QUIET_S = (4.0, 8.0)
# Small regions, so that the load also splits regions while faults happen.
CLUSTER_YAML = """region:
  max_size_bytes: 4194304
  split_size_bytes: 2097152
  split_check_interval_secs: 5
"""


class Nemesis(threading.Thread):
    def __init__(self, kind, cluster, rng, clock, log):
        super().__init__(daemon=True)
        self.kind, self.cluster, self.rng, self.clock, self.log = kind, cluster, rng, clock, log
        self.stop = threading.Event()
        self.faults = []
        self.error = None
        self.added = 0

    def choices(self):
        if self.kind != "mixed":
            return [self.kind]
        kinds = ["kill", "pause", "leader", "membership"]
        if self.cluster.namespaces:
            kinds.append("partition")
        return kinds

    def run(self):
        try:
            if self.stop.wait(self.rng.uniform(*QUIET_S)):
                return
            while not self.stop.is_set():
                kind = self.rng.choice(self.choices())
                start = self.clock()
                what, heal = getattr(self, "fault_" + kind.replace("-", "_"))()
                fault = {"what": what, "kind": kind, "start": start}
                self.faults.append(fault)
                self.log("%7.1fs fault: %s" % (start, what))
                self.stop.wait(self.rng.uniform(*FAULT_S))
                heal()
                fault["end"] = self.clock()
                self.log("%7.1fs healed: %s" % (fault["end"], what))
                self.stop.wait(self.rng.uniform(*QUIET_S))
        except Exception as e:  # a nemesis that cannot act is a failed run, not a silent one
            self.error = "%s: %s" % (type(e).__name__, e)
            self.log("nemesis failed: %s" % self.error)

    def targets(self):
        return [n for n in self.cluster.live() if n.alive and not n.paused]

    # Each fault returns (description, heal).

    def fault_kill(self, node=None):
        node = node or self.rng.choice(self.targets())
        self.cluster.kill(node)

        def heal():
            self.cluster.start(node)
            self.cluster.wait_ready(node)

        return "kill -9 %s" % node.name, heal

    def fault_pause(self):
        node = self.rng.choice(self.targets())
        self.cluster.pause(node)
        return "SIGSTOP %s" % node.name, lambda: self.cluster.resume(node)

    def fault_partition(self, shape=None, isolated=None):
        if not self.cluster.namespaces:
            raise RuntimeError("the partition nemesis needs network namespaces (run as root with `ip`)")
        nodes = list(self.cluster.live())
        self.rng.shuffle(nodes)
        shape = shape or self.rng.choice(["isolate", "halves", "bridge"])
        if shape == "isolate" or (shape == "halves" and len(nodes) < 4):
            one = isolated or nodes[0]
            sides = [[one], [n for n in nodes if n is not one]]
            cuts = [(one, n) for n in sides[1]]
            what = "isolate %s" % one.name
        elif shape == "halves":
            small = nodes[: len(nodes) // 2]
            big = nodes[len(nodes) // 2 :]
            cuts = [(a, b) for a in small for b in big]
            what = "partition %s | %s" % (",".join(n.name for n in small), ",".join(n.name for n in big))
        else:
            # A bridge: the middle node sees both sides, which cannot see each other.
            mid = len(nodes) // 2
            left, bridge, right = nodes[:mid], nodes[mid], nodes[mid + 1 :]
            cuts = [(a, b) for a in left for b in right]
            what = "bridge %s | %s | %s" % (",".join(n.name for n in left), bridge.name, ",".join(n.name for n in right))
        for a, b in cuts:
            self.cluster.cut(a, b)
        return what, self.cluster.heal_network

    def fault_leader(self):
        """Kill or isolate the node leading the most regions, or the scheduler's leader."""
        by_name = {n.name: n for n in self.targets()}
        target = None
        if self.rng.random() < 0.5:
            target = by_name.get(self.cluster.scheduler_leader())
            role = "scheduler leader"
        if target is None:
            stores = self.cluster.admin("CLUSTER", "STORES")
            best = -1
            for store in stores:
                fields = dict(zip(store[0::2], store[1::2]))
                count = int(fields.get("leader_count") or 0)
                if fields.get("name") in by_name and count > best:
                    best, target = count, by_name[fields["name"]]
            role = "leader of %d regions" % best
        if self.cluster.namespaces and self.rng.random() < 0.5:
            what, heal = self.fault_partition("isolate", target)
        else:
            what, heal = self.fault_kill(target)
        return "%s (%s)" % (what, role), heal

    def fault_membership(self):
        """Adds a node, or deletes one (CLUSTER STORE DELETE) and stops it once Tombstone."""
        live = [n for n in self.cluster.live()]
        removable = [n for n in live[3:] if n.alive]
        if removable and (len(live) > 3 + 1 or self.rng.random() < 0.5) and len(live) > 3:
            node = self.rng.choice(removable)
            store_id = self.cluster.store_ids()[node.name][0]
            self.cluster.admin("CLUSTER", "STORE", "DELETE", store_id)

            def heal():
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:
                    state = self.cluster.store_ids().get(node.name, (0, None))[1]
                    if state == "Tombstone":
                        break
                    time.sleep(1)
                else:
                    raise RuntimeError("store %d (%s) was not Tombstone 180 s after CLUSTER STORE DELETE" % (store_id, node.name))
                node.removed = True
                self.cluster.kill(node)

            return "delete store %d (%s)" % (store_id, node.name), heal
        node = self.cluster.add_node()
        self.added += 1
        return "add %s" % node.name, lambda: None

    def heal_all(self):
        self.cluster.heal_network()
        for node in self.cluster.live():
            if node.paused:
                self.cluster.resume(node)
            if not node.alive:
                self.cluster.start(node)
        for node in self.cluster.live():
            self.cluster.wait_ready(node)


def wait_writable(cluster, timeout=90):
    """Until a write succeeds through every live node."""
    for node in cluster.live():
        deadline = time.monotonic() + timeout
        while True:
            try:
                c = Client(node.host, node.resp_port, timeout=10)
                try:
                    reply = c.call("SET", "faults:probe:%s" % node.name, "1")
                finally:
                    c.close()
                if reply == "OK":
                    break
            except (OSError, ConnectionError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("no write succeeded through %s within %d s of healing" % (node.name, timeout))
            time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--nemesis", choices=NEMESES, default="mixed")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--workloads", default=",".join(WORKERS))
    parser.add_argument("--keep-data", action="store_true", help="keep the nodes' data directories (in DIR/data)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    rng = random.Random(seed)
    names = args.workloads.split(",")
    if any(n not in workloads.ALL for n in names) or args.nodes < 3:
        parser.error("workloads are %s; at least 3 nodes" % ", ".join(workloads.ALL))
    namespaces = have_namespaces()
    if args.nemesis == "partition" and not namespaces:
        print("faults: the partition nemesis needs network namespaces: run as root with `ip`", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or os.path.join("bench", "results", "faults-%s-%s-n%d-s%d" % (stamp, args.nemesis, args.nodes, seed))
    os.makedirs(out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="ferrokv-faults-")
    log_file = open(os.path.join(out, "run.log"), "w")
    t0 = time.monotonic()

    def clock():
        return round(time.monotonic() - t0, 4)

    def log(line):
        print(line, file=log_file, flush=True)
        if os.environ.get("FAULTS_VERBOSE"):
            print(line, file=sys.stderr)

    log("seed %d, nemesis %s, %d nodes, %s s, namespaces: %s" % (seed, args.nemesis, args.nodes, args.seconds, namespaces))
    cluster = Cluster(os.path.abspath(args.binary), workdir, args.nodes, namespaces, CLUSTER_YAML, log)
    stop = threading.Event()
    recorder = workloads.Recorder(clock)
    loads = [workloads.ALL[n]() for n in names]
    nemesis = Nemesis(args.nemesis, cluster, random.Random(rng.random()), clock, log)
    problems = []
    finals = {}
    try:
        for node in cluster.nodes:
            cluster.start(node)
        for node in cluster.nodes:
            cluster.wait_ready(node)
        for load in loads:
            for key in load.split_keys():
                cluster.admin_retry("CLUSTER", "SPLIT", key)
            load.setup(cluster)
        log("%7.1fs cluster ready; load starts" % clock())
        threads = []
        for load in loads:
            for _ in range(WORKERS[load.name]):
                # Home nodes round-robin over all workers, so each node serves every workload.
                home = len(threads)
                threads.append(workloads.Worker(load, cluster, recorder, stop, home, rng.random()))
        for t in threads:
            t.start()
        if args.nemesis != "none":
            nemesis.start()
        time.sleep(args.seconds)
        nemesis.stop.set()
        if nemesis.is_alive():
            nemesis.join(timeout=240)
        if nemesis.error:
            problems.append("nemesis: " + nemesis.error)
        nemesis.heal_all()
        load_end = clock()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        log("%7.1fs load stopped, faults healed" % clock())
        wait_writable(cluster)
        log("%7.1fs writes succeed through every node" % clock())
        for load in loads:
            try:
                finals[load.name] = load.final(cluster)
            except RuntimeError as e:  # the others are still read and checked
                problems.append("%s: %s" % (load.name, e))
        log("%7.1fs final reads done" % clock())
    except Exception as e:
        problems.append("%s: %s" % (type(e).__name__, e))
        load_end = clock()
        stop.set()
    finally:
        try:
            nemesis.stop.set()
            cluster.heal_network()
            cluster.stop_all()
        finally:
            cluster.destroy_network()
            for node in cluster.nodes:
                src = os.path.join(workdir, "%s.log" % node.name)
                if os.path.exists(src):
                    shutil.copy(src, out)
            shutil.copy(cluster.config, out)
            if args.keep_data:
                shutil.move(workdir, os.path.join(out, "data"))
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    ops = sorted(recorder.ops, key=lambda op: op["start"])
    anomalies, notes = [], []
    for load in loads:
        mine = [op for op in ops if op["workload"] == load.name]
        # Without its final reads (already a problem) a workload cannot be checked.
        found = load.check(mine, finals[load.name]) if load.name in finals else []
        for a in found:
            a["workload"] = load.name
            (notes if a["type"] in checkers.ALLOWED else anomalies).append(a)
    windows = checkers.unavailability(ops, nemesis.faults, load_end)
    outcomes = {load.name: dict(Counter(op["outcome"] for op in ops if op["workload"] == load.name)) for load in loads}
    lost = sum(1 for a in anomalies if a["type"] in ("lost-write", "lost-append"))
    worst = max((w["longest_no_write_s"] for w in windows), default=0.0)
    passed = not anomalies and not problems
    report = {
        "seed": seed,
        "nemesis": args.nemesis,
        "nodes": args.nodes,
        "seconds": args.seconds,
        "namespaces": namespaces,
        "binary": args.binary,
        "outcomes": outcomes,
        "anomalies": anomalies,
        "allowed": notes,
        "problems": problems,
        "faults": windows,
        "passed": passed,
    }
    with open(os.path.join(out, "history.jsonl"), "w") as f:
        for op in ops:
            f.write(json.dumps(op) + "\n")
    with open(os.path.join(out, "faults.json"), "w") as f:
        json.dump(nemesis.faults, f, indent=1)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    total = Counter(op["outcome"] for op in ops)
    summary = (
        "faults: %s nemesis=%s nodes=%d seconds=%g seed=%d ops=%d ok=%d fail=%d info=%d faults=%d "
        "anomalies=%d lost=%d longest_no_write=%.1fs%s -> %s"
        % (
            "PASS" if passed else "FAIL",
            args.nemesis,
            args.nodes,
            args.seconds,
            seed,
            len(ops),
            total["ok"],
            total["fail"],
            total["info"],
            len(nemesis.faults),
            len(anomalies),
            lost,
            worst,
            "" if not problems else " problems=%d" % len(problems),
            out,
        )
    )
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(summary + "\n\n")
        for name, counts in outcomes.items():
            f.write("%-12s %s\n" % (name, " ".join("%s=%d" % kv for kv in sorted(counts.items()))))
        f.write("\nfaults (longest stretch with no successful write, from each fault's start to the next):\n")
        for w in windows:
            f.write("  %8.1fs  %-50s %6.2fs\n" % (w["start"], w["what"], w["longest_no_write_s"]))
        for title, items in (("anomalies", anomalies), ("allowed under snapshot isolation", notes)):
            f.write("\n%s: %d\n" % (title, len(items)))
            for a in items:
                f.write("  [%s] %s: %s\n" % (a["workload"], a["type"], a["detail"]))
                for op in a["ops"]:
                    f.write("      %s\n" % json.dumps(op))
        for p in problems:
            f.write("\nproblem: %s\n" % p)
    print(summary)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
