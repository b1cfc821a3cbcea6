"""The fault rig's workloads. Each runs worker threads against the cluster's nodes, records
every operation it invokes with its outcome, reads the final state once the faults are
healed, and checks the history (see checkers.py).

Outcomes: `ok` (the reply says it happened), `fail` (it definitely did not: `TRYAGAIN`, which
ferrokv sends only when nothing was written; `EXEC` answering nil after a `WATCH`; a read that
got no answer), `info` (it may have: a timeout, a dropped connection, or ferrokv's "outcome is
unknown" error). After an `info` a worker continues as a new process (as Jepsen does), on the
next node if its node stopped answering.
"""

import random
import threading
import time

import checkers
from client import Client, ReplyError

CLIENT_TIMEOUT_S = 5.0
# How long a worker stays away from its home node after that node stopped answering it.
AWAY_S = 10.0


class Recorder:
    def __init__(self, clock):
        self.clock = clock
        self.ops = []
        self.lock = threading.Lock()
        self.next_process = 0

    def new_process(self):
        with self.lock:
            self.next_process += 1
            return self.next_process

    def add(self, op):
        with self.lock:
            self.ops.append(op)


def classify_error(reply_or_exc, write):
    text = str(reply_or_exc)
    if isinstance(reply_or_exc, ReplyError):
        if text.startswith("TRYAGAIN") or text.startswith("EXECABORT"):
            return "fail"
        if not write:
            return "fail"
        return "info"
    return "info" if write else "fail"


class Worker(threading.Thread):
    """One thread of a workload: a connection to one node at a time."""

    def __init__(self, workload, cluster, recorder, stop, index, seed):
        super().__init__(daemon=True)
        self.workload, self.cluster, self.recorder, self.stop = workload, cluster, recorder, stop
        self.rng = random.Random(seed)
        # Workers are spread over the nodes by index (their home). One whose node stops
        # answering moves on to the next, and goes home again after AWAY_S: otherwise every
        # fault would push its node's workers onto the next node, until all of them share one
        # node and isolating it stops every client at once, which measures the rig, not the
        # cluster.
        self.home = index
        self.away = 0
        self.back_at = 0.0
        self.process = recorder.new_process()
        self.client = None

    def node(self):
        live = self.cluster.live()
        return live[(self.home + self.away) % len(live)]

    def connect(self):
        if self.away and time.monotonic() >= self.back_at:
            # Home again (between operations, so nothing is in flight on the old connection).
            self.away = 0
            if self.client is not None:
                self.client.close()
                self.client = None
        if self.client is None:
            node = self.node()
            self.client = Client(node.host, node.resp_port, timeout=CLIENT_TIMEOUT_S)
            self.client_node = node.name
        return self.client

    def crashed(self, move):
        if self.client is not None:
            self.client.close()
        self.client = None
        self.process = self.recorder.new_process()
        if move:
            self.away += 1
            self.back_at = time.monotonic() + AWAY_S

    def run(self):
        while not self.stop.is_set():
            try:
                client = self.connect()
            except OSError:
                self.crashed(move=True)
                time.sleep(0.2)
                continue
            op = self.workload.generate(self.rng)
            op.update(workload=self.workload.name, process=self.process, node=self.client_node)
            op["start"] = self.recorder.clock()
            try:
                self.workload.invoke(client, op)
            except (OSError, ConnectionError) as e:
                op["outcome"] = "fail" if not op.get("write") else "info"
                op["error"] = str(e)
            except Exception as e:  # a reply the rig did not expect: keep it, keep going
                op["outcome"] = "fail" if not op.get("write") else "info"
                op["error"] = "unexpected: %s: %s" % (type(e).__name__, e)
                op["unexpected"] = True
            op["end"] = self.recorder.clock()
            self.recorder.add(op)
            if "error" in op and not op.get("reply_error"):
                # No answer: the connection is in an unknown state. Start over, elsewhere.
                self.crashed(move=True)
                time.sleep(0.1)
            elif op["outcome"] == "info":
                self.crashed(move=False)
            elif op["outcome"] == "fail":
                time.sleep(0.01)


def transaction(client, commands, watch=()):
    """WATCH (if any), MULTI, the commands, EXEC in one write. Returns EXEC's reply: a list of
    results, None when a watched key changed, or a ReplyError."""
    pipeline = []
    if watch:
        pipeline.append(["WATCH", *watch])
    pipeline.append(["MULTI"])
    pipeline.extend(commands)
    pipeline.append(["EXEC"])
    replies = client.pipeline(pipeline)
    exec_reply = replies[-1]
    if isinstance(exec_reply, ReplyError):
        return exec_reply
    for r in replies[:-1]:
        if isinstance(r, ReplyError):
            return r
    for r in exec_reply or []:
        if isinstance(r, ReplyError):
            # A command that failed inside EXEC: nothing this rig sends should, so the whole
            # transaction's outcome is taken as unknown, with the error kept.
            return ReplyError("inside EXEC: %s" % r)
    return exec_reply


def settle(op, reply, write):
    """Fills `outcome` (and `reply_error`) for a reply that may be an error."""
    if isinstance(reply, ReplyError):
        op["outcome"] = classify_error(reply, write)
        op["error"] = str(reply)
        op["reply_error"] = True
        return False
    return True


def read_everywhere(cluster, commands):
    """Runs read commands on every live node; {node name: [replies]}. Retries a node for up
    to a minute (the cluster may still be electing after the heal)."""
    out = {}
    for node in cluster.live():
        deadline = time.monotonic() + 60
        while True:
            try:
                c = Client(node.host, node.resp_port, timeout=30)
                try:
                    replies = [c.call(*cmd) for cmd in commands]
                finally:
                    c.close()
                bad = [r for r in replies if isinstance(r, ReplyError)]
                if bad:
                    raise ConnectionError(str(bad[0]))
                out[node.name] = replies
                break
            except (OSError, ConnectionError) as e:
                if time.monotonic() > deadline:
                    raise RuntimeError("final reads through %s failed: %s" % (node.name, e))
                time.sleep(0.5)
    return out


class Bank:
    """Accounts moved by MULTI transfers; every MULTI read of all accounts sums to the total."""

    name = "bank"
    ACCOUNTS = 8
    START = 100

    def __init__(self):
        self.keys = ["bank:%d" % i for i in range(self.ACCOUNTS)]
        self.total = self.ACCOUNTS * self.START

    def setup(self, cluster):
        args = []
        for k in self.keys:
            args += [k, self.START]
        cluster.admin_retry("MSET", *args)

    def split_keys(self):
        return ["bank:4"]

    def generate(self, rng):
        if rng.random() < 0.5:
            return {"f": "read", "value": None}
        a, b = rng.sample(self.keys, 2)
        return {"f": "transfer", "value": {"from": a, "to": b, "amount": rng.randint(1, 5)}, "write": True}

    def invoke(self, client, op):
        if op["f"] == "read":
            reply = transaction(client, [["GET", k] for k in self.keys])
            if settle(op, reply, False):
                if reply is None:
                    op["outcome"] = "fail"
                else:
                    op["outcome"] = "ok"
                    op["result"] = {k: (int(v) if v is not None else None) for k, v in zip(self.keys, reply)}
        else:
            v = op["value"]
            reply = transaction(client, [["DECRBY", v["from"], v["amount"]], ["INCRBY", v["to"], v["amount"]]])
            if settle(op, reply, True):
                op["outcome"] = "ok" if reply is not None else "fail"

    def final(self, cluster):
        reads = read_everywhere(cluster, [["MGET", *self.keys]])
        return {node: replies[0] for node, replies in reads.items()}

    def check(self, ops, final):
        finals = [
            {"f": "final-read", "node": node, "outcome": "ok", "result": {k: (int(v) if v is not None else None) for k, v in zip(self.keys, values)}}
            for node, values in final.items()
        ]
        return checkers.check_bank(ops + finals, self.total)


class KeyPool:
    """A few active keys; a key that has had `limit` writes is retired for a fresh one, which
    keeps each key's history short for the checkers."""

    def __init__(self, prefix, active, limit):
        self.prefix, self.limit = prefix, limit
        self.lock = threading.Lock()
        self.next = active
        self.slots = list(range(active))
        self.writes = {i: 0 for i in range(active)}
        self.used = set(self.slots)

    def pick(self, rng, write):
        with self.lock:
            slot = rng.randrange(len(self.slots))
            key = self.slots[slot]
            if write:
                self.writes[key] += 1
                if self.writes[key] >= self.limit:
                    self.slots[slot] = self.next
                    self.writes[self.next] = 0
                    self.used.add(self.next)
                    self.next += 1
            return "%s%d" % (self.prefix, key)

    def all_keys(self):
        with self.lock:
            return ["%s%d" % (self.prefix, k) for k in sorted(self.used)]


class ListAppend:
    """Transactions of RPUSH and LRANGE over a few keys, half of those that read WATCHing what
    they read; checked with the Elle-style checker."""

    name = "list-append"

    def __init__(self):
        self.pool = KeyPool("la:", 4, 150)
        self.counter = 0
        self.lock = threading.Lock()

    def split_keys(self):
        return ["la:2"]

    def setup(self, cluster):
        pass

    def unique(self):
        with self.lock:
            self.counter += 1
            return self.counter

    def generate(self, rng):
        mops = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                mops.append(["append", self.pool.pick(rng, True), self.unique()])
            else:
                mops.append(["r", self.pool.pick(rng, False), None])
        reads = sorted({m[1] for m in mops if m[0] == "r"})
        watched = bool(reads) and rng.random() < 0.5
        write = any(m[0] == "append" for m in mops)
        return {"f": "txn", "value": mops, "watched": watched, "watch": reads if watched else [], "write": write}

    def invoke(self, client, op):
        commands = []
        for mop in op["value"]:
            if mop[0] == "append":
                commands.append(["RPUSH", mop[1], mop[2]])
            else:
                commands.append(["LRANGE", mop[1], 0, -1])
        reply = transaction(client, commands, op["watch"])
        if not settle(op, reply, op["write"]):
            return
        if reply is None:
            op["outcome"] = "fail"
            return
        result = []
        for mop, r in zip(op["value"], reply):
            if mop[0] == "append":
                result.append(mop)
            else:
                result.append(["r", mop[1], [int(x) for x in r]])
        op["outcome"] = "ok"
        op["result"] = result

    def final(self, cluster):
        keys = self.pool.all_keys()
        reads = read_everywhere(cluster, [["LRANGE", k, 0, -1] for k in keys])
        final = {k: [] for k in keys}
        for replies in reads.values():
            for k, values in zip(keys, replies):
                final[k].append([int(x) for x in values])
        return final

    def check(self, ops, final):
        return checkers.check_list_append(ops, final)


class Register:
    """SET, GET and SET ... GET on a few keys, checked for linearizability per key."""

    name = "register"

    def __init__(self):
        self.pool = KeyPool("reg:", 2, 80)
        self.counter = 0
        self.lock = threading.Lock()

    def split_keys(self):
        return []

    def setup(self, cluster):
        pass

    def generate(self, rng):
        r = rng.random()
        if r < 0.4:
            return {"f": "read", "value": {"key": self.pool.pick(rng, False), "v": None}}
        with self.lock:
            self.counter += 1
            v = str(self.counter)
        f = "write" if r < 0.8 else "swap"
        return {"f": f, "value": {"key": self.pool.pick(rng, True), "v": v}, "write": True}

    def invoke(self, client, op):
        key, v = op["value"]["key"], op["value"]["v"]
        if op["f"] == "read":
            reply = client.call("GET", key)
        elif op["f"] == "write":
            reply = client.call("SET", key, v)
        else:
            reply = client.call("SET", key, v, "GET")
        if settle(op, reply, op["f"] != "read"):
            op["outcome"] = "ok"
            op["result"] = reply if op["f"] != "write" else None

    def final(self, cluster):
        return None

    def check(self, ops, final):
        return checkers.check_register(ops)


class AckWrites:
    """SETs of unique keys; every acknowledged one is read back through every node at the end."""

    name = "ack-writes"

    def __init__(self):
        self.counter = 0
        self.lock = threading.Lock()

    def split_keys(self):
        return ["ack:5"]

    def setup(self, cluster):
        pass

    def generate(self, rng):
        with self.lock:
            self.counter += 1
            n = self.counter
        return {"f": "set", "value": {"key": "ack:%d" % n, "v": "v%d" % n}, "write": True}

    def invoke(self, client, op):
        reply = client.call("SET", op["value"]["key"], op["value"]["v"])
        if settle(op, reply, True):
            op["outcome"] = "ok"

    def final(self, cluster):
        keys = ["ack:%d" % n for n in range(1, self.counter + 1)]
        batches = [keys[i : i + 500] for i in range(0, len(keys), 500)]
        reads = read_everywhere(cluster, [["MGET", *b] for b in batches])
        return {node: {k: v for b, r in zip(batches, replies) for k, v in zip(b, r) if v is not None} for node, replies in reads.items()}

    def check(self, ops, final):
        return checkers.check_acks(ops, final)


ALL = {w.name: w for w in (Bank, ListAppend, Register, AckWrites)}
