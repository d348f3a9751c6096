"""Redis bulk replies received straight into a caller's buffer: one raw connection per reading thread.

redis-py (with hiredis) parses a 16 MiB GET into a new ``bytes`` and the caller copies it
again into a pinned slot, both under the GIL, so sixteen reading threads queue behind each
other. This reader speaks the two replies a chunk read needs (RESP bulk strings and simple
statuses) and ``recv_into``s the payload where it is going, with the GIL released. It is used
for plain TCP connections; TLS and Unix sockets keep redis-py (:class:`RedisTier`).
"""

from __future__ import annotations

import socket

from kvbench.tiers.base import TierError


def command(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class BulkConnection:
    """A plain TCP connection to a Redis server that reads bulk replies into given buffers."""

    def __init__(self, host: str, port: int, db: int, username: str | None, password: str | None, timeout_s: float):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        if password:
            self._call(*(("AUTH", username, password) if username else ("AUTH", password)))
        if db:
            self._call("SELECT", db)

    def _call(self, *args) -> None:
        self.sock.sendall(command(*args))
        line = self._line()
        if not line.startswith(b"+"):
            raise TierError(f"redis tier: {args[0]} answered {line[:80]!r}")

    def _line(self) -> bytes:
        """One CRLF-terminated reply line (a few bytes: a status or a bulk length)."""
        while b"\r\n" not in self._buf:
            more = self.sock.recv(64)
            if not more:
                raise TierError("redis tier: the server closed the connection")
            self._buf += more
        line, _, rest = bytes(self._buf).partition(b"\r\n")
        self._buf = bytearray(rest)
        return line

    def read_into(self, out: memoryview, *args) -> int:
        """Send ``args`` (a GET or GETRANGE) and receive the bulk reply into ``out``; its length, -1 for nil."""
        self.sock.sendall(command(*args))
        line = self._line()
        if not line.startswith(b"$"):
            raise TierError(f"redis tier: {args[0]} answered {line[:80]!r}")
        n = int(line[1:])
        if n < 0:
            return -1
        if n > len(out):
            raise TierError(f"redis tier: a {n} byte value does not fit the {len(out)} byte buffer")
        got = min(len(self._buf), n)  # bytes already read past the length line
        out[:got] = self._buf[:got]
        del self._buf[:got]
        while got < n:
            k = self.sock.recv_into(out[got:n])
            if k == 0:
                raise TierError(f"redis tier: connection closed after {got} of {n} bytes")
            got += k
        self._buf += self.sock.recv(2) if len(self._buf) < 2 else b""
        while len(self._buf) < 2:
            self._buf += self.sock.recv(2 - len(self._buf))
        if self._buf[:2] != b"\r\n":
            raise TierError("redis tier: a bulk reply did not end with CRLF")
        del self._buf[:2]
        return n

    def close(self) -> None:
        self.sock.close()
