"""A small RESP2 client for the fault rig.

Written here rather than taken from redis-py on purpose: a fault test must know exactly what
was sent and must never resend a write by itself (redis-py retries on connection errors by
default, which would turn one append into two). One request goes out once; any error while
it is in flight is reported to the caller, who records the outcome as unknown.
"""

import socket


class ReplyError(Exception):
    """An error reply (`-ERR ...`, `-TRYAGAIN ...`): the server answered."""


class Client:
    def __init__(self, host, port, timeout=5.0):
        self.addr = (host, port)
        self.sock = socket.create_connection(self.addr, timeout=min(timeout, 2.0))
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def call(self, *args):
        """Sends one command and returns its reply (raises ReplyError for an error reply)."""
        return self.pipeline([args])[0]

    def pipeline(self, commands):
        """Sends several commands in one write and returns their replies, in order; an error
        reply is returned as a ReplyError object in its place, not raised."""
        out = bytearray()
        for args in commands:
            out += b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        replies = [self._reply() for _ in commands]
        return replies

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            self._fill()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.buf += data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ReplyError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data = bytes(self.buf[:n])
            del self.buf[: n + 2]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._reply() for _ in range(n)]
        raise ConnectionError("unexpected reply type %r" % line[:20])


def raise_errors(reply):
    """The reply itself, or its error raised."""
    if isinstance(reply, ReplyError):
        raise reply
    return reply
