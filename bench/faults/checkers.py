"""Checkers for the histories the fault rig records.

An operation is a dict: `workload`, `process`, `node`, `f`, `value` (what was asked),
`result` (what came back, for `ok` operations), `outcome` (`ok`, `fail`: it definitely did not
take effect, or `info`: it may have), `start` and `end` (seconds, one monotonic clock).

Each checker returns a list of anomalies: dicts with a `type`, a `detail` and the operations
that show it. An empty list means the history passed.
"""

from collections import defaultdict

INFINITY = float("inf")
# Reported, but not anomalies: what snapshot isolation allows (see the README's isolation notes).
ALLOWED_G2 = "G2-snapshot-isolation"
ALLOWED = {ALLOWED_G2}
# Examples kept per anomaly type: one is enough to start from, the count says how many.
EXAMPLES = 5


def anomaly(kind, detail, ops=()):
    return {"type": kind, "detail": detail, "ops": [brief(op) for op in ops]}


def brief(op):
    keys = ("workload", "process", "node", "f", "value", "result", "outcome", "start", "end")
    return {k: op.get(k) for k in keys if k in op}


def limit(anomalies):
    """At most EXAMPLES anomalies of each type, with the number of the rest."""
    seen = defaultdict(int)
    kept = []
    for a in anomalies:
        seen[a["type"]] += 1
        if seen[a["type"]] <= EXAMPLES:
            kept.append(a)
    for kind, n in seen.items():
        if n > EXAMPLES:
            kept.append({"type": kind, "detail": "%d more of this type" % (n - EXAMPLES), "ops": []})
    return kept


# --- register: linearizability per key ------------------------------------------------------


class _Entry:
    __slots__ = ("index", "call", "time", "match", "prev", "next")

    def __init__(self, index, call, time):
        self.index, self.call, self.time = index, call, time
        self.match = self.prev = self.next = None


def _register_step(state, op):
    """(allowed, next state) of one register operation at `state`."""
    f, outcome = op["f"], op["outcome"]
    if f == "write":
        return True, op["value"]["v"]
    if f == "read":
        return op["result"] == state, state
    if f == "swap":  # SET k v GET: reads the old value and writes v in one step
        if outcome == "ok" and op["result"] != state:
            return False, state
        return True, op["value"]["v"]
    raise ValueError("unknown register operation %r" % f)


def linearizable(ops, initial=None):
    """Whether one key's register history is linearizable (Wing & Gong's search with Lowe's
    memoisation, as in Porcupine). `ok` operations end when they returned; `info` ones may
    take effect at any point after their start, or never; `fail` ones and `info` reads are
    left out. Returns (True, None) or (False, the operations pending where the search got
    furthest)."""
    ops = [op for op in ops if op["outcome"] == "ok" or (op["outcome"] == "info" and op["f"] != "read")]
    events = []
    for i, op in enumerate(ops):
        call = _Entry(i, True, op["start"])
        ret = _Entry(i, False, op["end"] if op["outcome"] == "ok" else INFINITY)
        call.match = ret
        events.extend((call, ret))
    # Calls before returns at the same instant: the more permissive reading.
    events.sort(key=lambda e: (e.time, 0 if e.call else 1))
    head = _Entry(-1, True, -INFINITY)
    prev = head
    for e in events:
        prev.next, e.prev = e, prev
        prev = e

    def lift(e):
        e.prev.next = e.next
        e.next.prev = e.prev
        m = e.match
        m.prev.next = m.next
        if m.next is not None:
            m.next.prev = m.prev

    def unlift(e):
        m = e.match
        m.prev.next = m
        if m.next is not None:
            m.next.prev = m
        e.prev.next = e
        e.next.prev = e

    cache = set()
    stack = []
    state, done = initial, 0
    deepest, stuck_at = -1, None
    entry = head.next
    while head.next is not None:
        if entry.call:
            allowed, after = _register_step(state, ops[entry.index])
            if allowed:
                marked = done | (1 << entry.index)
                if (marked, after) not in cache:
                    cache.add((marked, after))
                    stack.append((entry, state))
                    state, done = after, marked
                    lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            if len(stack) > deepest:
                deepest, stuck_at = len(stack), entry
            if not stack:
                break
            entry, state = stack.pop()
            done &= ~(1 << entry.index)
            unlift(entry)
            entry = entry.next
    else:
        return True, None
    # The operations still open when the deepest attempt could go no further.
    t = stuck_at.time
    pending = [op for op in ops if op["start"] <= t and (op["outcome"] != "ok" or op["end"] >= t)]
    return False, pending[:12]


def check_register(ops):
    by_key = defaultdict(list)
    for op in ops:
        by_key[op["value"]["key"]].append(op)
    anomalies = []
    for key in sorted(by_key):
        ok, pending = linearizable(by_key[key])
        if not ok:
            anomalies.append(
                anomaly(
                    "nonlinearizable",
                    "key %s: no order of its %d operations is consistent with real time and a register"
                    % (key, len(by_key[key])),
                    pending,
                )
            )
    return limit(anomalies)


# --- bank: every read sums to the total -------------------------------------------------------


def check_bank(ops, total):
    anomalies = []
    for op in ops:
        if op["f"] in ("read", "final-read") and op["outcome"] == "ok":
            balances = op["result"]
            if any(b is None for b in balances.values()):
                anomalies.append(anomaly("missing-account", "a read found an account missing", [op]))
            elif sum(balances.values()) != total:
                anomalies.append(
                    anomaly(
                        "wrong-total",
                        "a read of every account sums to %d, not %d" % (sum(balances.values()), total),
                        [op],
                    )
                )
    return limit(anomalies)


# --- acknowledged writes ----------------------------------------------------------------------


def check_acks(ops, final):
    """`final` maps a node name to {key: value read there at the end}. Every acknowledged SET
    must be there on every node; an unknown one may be absent but nothing else."""
    anomalies = []
    for op in ops:
        if op["f"] != "set" or op["outcome"] == "fail":
            continue
        key, value = op["value"]["key"], op["value"]["v"]
        for node, seen in sorted(final.items()):
            got = seen.get(key)
            if op["outcome"] == "ok" and got != value:
                anomalies.append(
                    anomaly("lost-write", "%s acknowledged, read %r through %s" % (key, got, node), [op])
                )
            elif op["outcome"] == "info" and got not in (None, value):
                anomalies.append(anomaly("garbage-read", "%s holds %r through %s" % (key, got, node), [op]))
    return limit(anomalies)


# --- list-append: an Elle-style dependency-graph check ----------------------------------------


def check_list_append(ops, final_reads):
    """`ops` are transactions: `value` a list of micro-operations `["append", key, v]` and
    `["r", key, None]`, `result` the same with each read's list filled in. `final_reads` maps
    a key to the list read after the faults healed (through each node: a list of lists).

    Values appended are unique, so each key's longest read gives its version order, and from
    it the write-write, write-read and read-write dependencies between transactions. Reports
    duplicates, reads of unknown values, incompatible orders, aborted (G1a) and intermediate
    (G1b) reads, reads inconsistent with the transaction's own appends, lost appends, lost
    updates, and dependency cycles: G0 (write-write only), G1c (with write-read), G-single
    (exactly one read-write edge) and G2 (more)."""
    anomalies = []
    writer = {}  # (key, value) -> op
    appends_by = defaultdict(lambda: defaultdict(list))  # id(op) -> key -> [values]
    for op in ops:
        for mop in op["value"]:
            if mop[0] == "append":
                writer[(mop[1], mop[2])] = op
                appends_by[id(op)][mop[1]].append(mop[2])

    # Every read, with who read it: (op or None for a final read, key, list)
    reads = []
    for op in ops:
        if op["outcome"] != "ok":
            continue
        own = defaultdict(list)
        for mop in op["result"]:
            if mop[0] == "append":
                own[mop[1]].append(mop[2])
            else:
                key, values = mop[1], mop[2] or []
                reads.append((op, key, values))
                # A read must end with what this transaction appended to the key before it.
                if own[key] and values[-len(own[key]) :] != own[key]:
                    anomalies.append(
                        anomaly("internal", "a read of %s misses the transaction's own appends" % key, [op])
                    )
    for key, lists in final_reads.items():
        for values in lists:
            reads.append((None, key, values))

    for op, key, values in reads:
        if len(set(values)) != len(values):
            anomalies.append(anomaly("duplicate-elements", "a read of %s holds a value twice" % key, [op] if op else []))
        for v in values:
            w = writer.get((key, v))
            if w is None:
                anomalies.append(anomaly("garbage-read", "%s holds %r, which nobody appended" % (key, v), [op] if op else []))
            elif w["outcome"] == "fail":
                anomalies.append(anomaly("G1a", "a read of %s sees %r of a failed transaction" % (key, v), [w] + ([op] if op else [])))
        if values:
            w = writer.get((key, values[-1]))
            # A transaction's own appends are its business (checked as `internal` above).
            if w is not None and w is not op:
                mine = appends_by[id(w)][key]
                if values[-1] != mine[-1]:
                    anomalies.append(
                        anomaly(
                            "G1b",
                            "a read of %s ends at %r, an intermediate append of its transaction" % (key, values[-1]),
                            [w] + ([op] if op else []),
                        )
                    )

    # Version order: the longest read of each key; every other read must be a prefix of it.
    order = {}
    for op, key, values in reads:
        if len(values) > len(order.get(key, [])):
            order[key] = values
    for op, key, values in reads:
        longest = order.get(key, [])
        if longest[: len(values)] != values:
            anomalies.append(
                anomaly("incompatible-order", "a read of %s is not a prefix of its longest read" % key, [op] if op else [])
            )
    position = {key: {v: i for i, v in enumerate(values)} for key, values in order.items()}

    # Lost appends: acknowledged but absent from the final order.
    for op in ops:
        if op["outcome"] != "ok":
            continue
        for mop in op["value"]:
            if mop[0] == "append" and mop[2] not in position.get(mop[1], {}):
                anomalies.append(anomaly("lost-append", "%r appended to %s is missing at the end" % (mop[2], mop[1]), [op]))

    # Lost updates: two committed transactions that read the same version of a key and both
    # appended to it after reading it (WATCH on the key must stop the second).
    readers_of = defaultdict(list)
    for op in ops:
        if op["outcome"] != "ok":
            continue
        # Only a read before the transaction's own first append to the key counts.
        read_first, appended = {}, set()
        for mop in op["result"]:
            key = mop[1]
            if mop[0] == "r" and key not in read_first and key not in appended:
                read_first[key] = tuple(mop[2] or [])
            elif mop[0] == "append" and key not in appended:
                appended.add(key)
                if key in read_first:
                    readers_of[(key, read_first[key])].append(op)
    for (key, version), txns in readers_of.items():
        distinct = {id(t): t for t in txns}
        if len(distinct) > 1:
            anomalies.append(
                anomaly("lost-update", "%d transactions read the same version of %s and appended to it" % (len(distinct), key), list(distinct.values()))
            )

    # The dependency graph over transactions that took effect.
    nodes = {id(op): op for op in ops if op["outcome"] == "ok"}
    for (key, v), w in writer.items():
        if w["outcome"] == "info" and v in position.get(key, {}):
            nodes[id(w)] = w
    edges = defaultdict(dict)  # from -> to -> set of kinds

    def add(a, b, kind):
        if a is not None and b is not None and a is not b and id(a) in nodes and id(b) in nodes:
            edges[id(a)].setdefault(id(b), set()).add(kind)

    for key, values in order.items():
        for a, b in zip(values, values[1:]):
            add(writer.get((key, a)), writer.get((key, b)), "ww")
    for op, key, values in reads:
        if op is None:
            continue
        if values:
            add(writer.get((key, values[-1])), op, "wr")
        following = order.get(key, [])
        if len(values) < len(following):
            add(op, writer.get((key, following[len(values)])), "rw")
    anomalies.extend(_cycles(nodes, edges))
    return limit(anomalies)


def _sccs(vertices, successors):
    """Strongly connected components with more than one vertex (Tarjan, iterative)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in vertices:
        if root in index:
            continue
        work = [(root, iter(successors(root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(successors(w))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    out.append(component)
    return out


def _path(start, goal, allowed, edges, within):
    """A path start -> goal over edges of the allowed kinds inside `within` (BFS), or None."""
    parents = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w, kinds in edges.get(v, {}).items():
                if w in within and w not in parents and kinds & allowed:
                    parents[w] = v
                    if w == goal:
                        path = [w]
                        while parents[path[-1]] is not None:
                            path.append(parents[path[-1]])
                        return path[::-1]
                    nxt.append(w)
        frontier = nxt
    return None


def _cycles(nodes, edges):
    anomalies = []

    def succ(allowed):
        return lambda v: [w for w, kinds in edges.get(v, {}).items() if kinds & allowed]

    reported = set()
    for kinds, name in (({"ww"}, "G0"), ({"ww", "wr"}, "G1c")):
        for component in _sccs(list(nodes), succ(kinds)):
            key = frozenset(component)
            if key & reported:
                continue
            reported |= key
            ops = [nodes[v] for v in component[:8]]
            anomalies.append(anomaly(name, "a cycle of %d transactions over %s edges" % (len(component), "/".join(sorted(kinds))), ops))
    for component in _sccs(list(nodes), succ({"ww", "wr", "rw"})):
        within = set(component)
        if within & reported:
            continue
        single = None
        for a in component:
            for b, kinds in edges.get(a, {}).items():
                if b in within and "rw" in kinds:
                    back = _path(b, a, {"ww", "wr"}, edges, within)
                    if back is not None:
                        single = [a] + back
                        break
            if single:
                break
        if single:
            anomalies.append(anomaly("G-single", "a cycle with exactly one read-write edge", [nodes[v] for v in single[:8]]))
            continue
        # Several read-write edges: write skew, which snapshot isolation allows unless the
        # readers WATCHed what they read. A cycle whose every read-write edge leaves a
        # watching transaction is an anomaly; otherwise it is noted as allowed.
        def watched_succ(v):
            watched = nodes[v].get("watched", False)
            return [w for w, kinds in edges.get(v, {}).items() if w in within and (kinds & {"ww", "wr"} or watched)]

        strict = _sccs(component, watched_succ)
        if strict:
            anomalies.append(anomaly("G2", "a cycle of %d transactions, every read-write edge from a WATCHing reader" % len(strict[0]), [nodes[v] for v in strict[0][:8]]))
        else:
            anomalies.append(anomaly(ALLOWED_G2, "write skew among %d transactions that did not WATCH what they read (allowed under snapshot isolation)" % len(component), [nodes[v] for v in component[:8]]))
    return anomalies


# --- availability -----------------------------------------------------------------------------


def unavailability(ops, faults, end_time):
    """For each fault (dicts with `start`, `end`, `what`): the longest stretch, from the fault's
    start to the next fault's start (or the end of the load), with no write completing
    successfully. Writes are operations whose `write` field is true."""
    done = sorted(op["end"] for op in ops if op.get("write") and op["outcome"] == "ok")
    windows = []
    for i, fault in enumerate(faults):
        until = faults[i + 1]["start"] if i + 1 < len(faults) else end_time
        last, longest = fault["start"], 0.0
        for t in done:
            if t < fault["start"]:
                continue
            if t > until:
                break
            longest = max(longest, t - last)
            last = t
        longest = max(longest, until - last)
        windows.append({"what": fault["what"], "start": fault["start"], "longest_no_write_s": round(longest, 3)})
    return windows
