"""A real ferrokv cluster for the fault rig: nodes as child processes, each (when the rig runs
as root with `ip` at hand) in a network namespace of its own.

With namespaces, every node gets an address 10.<net>.<run>.<i> on a bridge in the host's
namespace, where the rig and its clients run. A partition is a set of blackhole routes: in
node a's namespace a route that drops everything for node b, and the reverse, so neither side
can reach the other while both still answer clients. Healing deletes the routes. Without
namespaces (no root), nodes listen on loopback ports and the `partition` nemesis is refused.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

from client import Client, ReplyError

RESP_PORT = 6379
PEER_PORT = 20160


def have_namespaces():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = "fkprobe%d" % (os.getpid() % 100000)
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Node:
    def __init__(self, name, host, resp_port, peer_port, data_dir):
        self.name, self.host = name, host
        self.resp_port, self.peer_port = resp_port, peer_port
        self.data_dir = data_dir
        self.process = None
        self.paused = False
        self.removed = False

    @property
    def alive(self):
        return self.process is not None and self.process.poll() is None


class Cluster:
    def __init__(self, binary, workdir, node_count, namespaces, extra_yaml="", log=print):
        self.binary, self.workdir = binary, workdir
        self.namespaces = namespaces
        self.extra_yaml = extra_yaml
        self.log = log
        self.run_id = os.getpid() % 250 + 1
        self.nodes = []
        self.cuts = set()  # (a, b) pairs with a < b by name
        self.bridge = "fkb%d" % self.run_id
        if namespaces:
            self._make_bridge()
        for _ in range(node_count):
            self._add_node_config()
        self.write_config()

    # --- network -------------------------------------------------------------------------

    def _subnet(self):
        return "10.213.%d" % self.run_id

    def _make_bridge(self):
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", "%s.254/24" % self._subnet(), "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def _namespace(self, node):
        return "fk%d%s" % (self.run_id, node.name)

    def _make_namespace(self, node, index):
        ns, veth = self._namespace(node), "fk%dv%d" % (self.run_id, index)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", veth], capture_output=True)
        ip("netns", "add", ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", veth, "master", self.bridge, "up")
        ip("-n", ns, "addr", "add", "%s/24" % node.host, "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")

    def _add_node_config(self):
        index = len(self.nodes) + 1
        name = "n%d" % index
        data_dir = os.path.join(self.workdir, name)
        if self.namespaces:
            node = Node(name, "%s.%d" % (self._subnet(), index), RESP_PORT, PEER_PORT, data_dir)
            self._make_namespace(node, index)
        else:
            taken = {p for n in self.nodes for p in (n.resp_port, n.peer_port)}
            ports = []
            while len(ports) < 2:
                p = free_port()
                if p not in taken and p not in ports:
                    ports.append(p)
            node = Node(name, "127.0.0.1", ports[0], ports[1], data_dir)
        self.nodes.append(node)
        return node

    def write_config(self):
        lines = ["nodes:"]
        for n in self.nodes:
            lines.append(
                "  - {name: %s, resp_addr: %s:%d, peer_addr: %s:%d, data_dir: %s}"
                % (n.name, n.host, n.resp_port, n.host, n.peer_port, n.data_dir)
            )
        lines.append(self.extra_yaml)
        self.config = os.path.join(self.workdir, "cluster.yaml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def cut(self, a, b):
        """Drops everything between nodes a and b, both ways."""
        pair = tuple(sorted((a.name, b.name)))
        if pair in self.cuts:
            return
        ip("-n", self._namespace(a), "route", "add", "blackhole", "%s/32" % b.host)
        ip("-n", self._namespace(b), "route", "add", "blackhole", "%s/32" % a.host)
        self.cuts.add(pair)

    def heal_network(self):
        by_name = {n.name: n for n in self.nodes}
        for a, b in sorted(self.cuts):
            for x, y in ((by_name[a], by_name[b]), (by_name[b], by_name[a])):
                subprocess.run(
                    ["ip", "-n", self._namespace(x), "route", "del", "blackhole", "%s/32" % y.host],
                    capture_output=True,
                )
        self.cuts.clear()

    # --- processes -----------------------------------------------------------------------

    def start(self, node):
        command = [self.binary, "--config", self.config, "--node", node.name, "--log-level", "info"]
        if self.namespaces:
            command = ["ip", "netns", "exec", self._namespace(node)] + command
        log = open(os.path.join(self.workdir, "%s.log" % node.name), "ab")
        # `ip netns exec` execs the program, so the child's pid is ferrokv's own.
        node.process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        node.paused = False
        log.close()

    def kill(self, node):
        if node.alive:
            if node.paused:
                node.process.send_signal(signal.SIGCONT)
            node.process.send_signal(signal.SIGKILL)
            node.process.wait()
        node.paused = False

    def pause(self, node):
        if node.alive and not node.paused:
            node.process.send_signal(signal.SIGSTOP)
            node.paused = True

    def resume(self, node):
        if node.alive and node.paused:
            node.process.send_signal(signal.SIGCONT)
            node.paused = False

    def wait_ready(self, node, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not node.alive:
                raise RuntimeError("%s exited while starting (see %s.log)" % (node.name, node.name))
            try:
                c = Client(node.host, node.resp_port, timeout=2)
                try:
                    if c.call("PING") == "PONG":
                        return
                finally:
                    c.close()
            except (OSError, ConnectionError):
                pass
            time.sleep(0.1)
        raise RuntimeError("%s did not answer PING within %d s" % (node.name, timeout))

    def live(self):
        return [n for n in self.nodes if not n.removed]

    def admin(self, *args, node=None, timeout=30):
        """A command run on the first node that answers it (or on `node`)."""
        last = None
        for n in [node] if node else [n for n in self.live() if n.alive and not n.paused]:
            try:
                c = Client(n.host, n.resp_port, timeout=timeout)
                try:
                    reply = c.call(*args)
                finally:
                    c.close()
                if isinstance(reply, ReplyError):
                    last = reply
                    continue
                return reply
            except (OSError, ConnectionError) as e:
                last = e
        raise RuntimeError("%s failed on every node: %s" % (" ".join(map(str, args)), last))

    def admin_retry(self, *args, within=60):
        """`admin`, retried while it fails (a region busy with an operator, an election)."""
        deadline = time.monotonic() + within
        while True:
            try:
                return self.admin(*args)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def add_node(self):
        node = self._add_node_config()
        self.write_config()
        self.start(node)
        self.wait_ready(node)
        return node

    def store_ids(self):
        """Store id of each node name, from CLUSTER STORES."""
        reply = self.admin("CLUSTER", "STORES")
        ids = {}
        for store in reply:
            fields = dict(zip(store[0::2], store[1::2]))
            ids[fields.get("name")] = (int(fields["id"]), fields.get("state"))
        return ids

    def leaders(self):
        """Number of region leaders per store id, from CLUSTER REGIONS."""
        counts = {}
        for region in self.admin("CLUSTER", "REGIONS"):
            fields = dict(zip(region[0::2], region[1::2]))
            leader = fields.get("leader")
            if leader not in (None, ""):
                counts[int(leader)] = counts.get(int(leader), 0) + 1
        return counts

    def scheduler_leader(self):
        for n in self.live():
            if not n.alive or n.paused:
                continue
            try:
                info = self.admin("INFO", "ferrokv", node=n, timeout=5)
            except RuntimeError:
                continue
            for line in info.splitlines():
                if line.startswith("ferrokv_scheduler_leader:"):
                    return line.split(":", 1)[1].strip()
        return None

    def stop_all(self):
        for n in self.nodes:
            if n.alive:
                self.resume(n)
                n.process.send_signal(signal.SIGTERM)
        for n in self.nodes:
            if n.process is not None:
                try:
                    n.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    n.process.kill()
                    n.process.wait()

    def destroy_network(self):
        if not self.namespaces:
            return
        for n in self.nodes:
            subprocess.run(["ip", "netns", "del", self._namespace(n)], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
