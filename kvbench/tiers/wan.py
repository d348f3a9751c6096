"""Tier ``wan``: a remote read over an emulated wide-area link, paced on a real loopback socket.

A server thread holds the blob (the remote store's memory) and answers ranged requests, a
thread per connection. The serial read asks for the whole object on one connection; a
streaming read asks for chunks over one connection per worker. The link is emulated with
delays and pacing, not with a kernel qdisc (which needs root and a network namespace):

* one RTT before connecting (the TCP handshake) and one before each answer's first byte
  (the request going out, the answer coming back);
* every connection's payload leaves through one shared :class:`Pacer` at the profile's
  bandwidth, one 1 MiB slice at a time, so parallel streams share the link's rate.

Not modelled: TCP slow start and loss (which make real short transfers slower than
bandwidth x time), TLS, and jitter. The read is therefore a floor: ``2 RTT + bytes / bandwidth``.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
import threading
import time
from typing import Any

import torch

from kvbench.config.schema import WanProfile
from kvbench.measure.links import HostLinks
from kvbench.tiers.base import BlobTier, LinkPath, TierError

SEND_SLICE = 1 << 20
HEADER = struct.Struct("<Q")  # payload length
REQUEST = struct.Struct("<4sQQ")  # b"GET ", offset, length

log = logging.getLogger(__name__)


class Pacer:
    """One link's bandwidth, shared by every connection on it: a slice waits its turn on the wire.

    Each slice reserves ``len / rate`` seconds from the moment the link is next free, so
    parallel streams share the configured rate instead of each getting all of it.
    """

    def __init__(self, rate_bytes_s: float):
        self.rate, self._free_at, self._lock = rate_bytes_s, 0.0, threading.Lock()

    def send(self, conn: socket.socket, payload: memoryview) -> None:
        for at in range(0, len(payload), SEND_SLICE):
            piece = payload[at : at + SEND_SLICE]
            if math.isfinite(self.rate):
                with self._lock:
                    self._free_at = max(self._free_at, time.perf_counter()) + len(piece) / self.rate
                    done = self._free_at
                wait = done - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
            conn.sendall(piece)


def _recv_exact(conn: socket.socket, buf: memoryview) -> None:
    got = 0
    while got < len(buf):
        n = conn.recv_into(buf[got:])
        if n == 0:
            raise TierError(f"wan tier: connection closed after {got} of {len(buf)} bytes")
        got += n


def link_floor_s(nbytes: int, profile: WanProfile) -> float:
    """The least time a read of ``nbytes`` can take over ``profile``: two RTTs plus serialisation."""
    return 2 * profile.rtt_ms / 1e3 + nbytes / (profile.bandwidth_mb_s * 1e6)


class LinkServer:
    """Serves one blob on 127.0.0.1 over a paced link: ranged requests, several connections at once."""

    def __init__(self, profile: WanProfile):
        self.profile = profile
        self.blob = memoryview(b"")
        self.pacer = Pacer(profile.bandwidth_mb_s * 1e6)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)  # lets the accept loop notice stop
        self.address = self.sock.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="kvbench-wan", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._connection, args=(conn,), name="kvbench-wan-conn", daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(None)
            try:
                while self._answer(conn):
                    pass
            except (OSError, TierError):
                pass  # the reader went away; it reports its own error

    def _answer(self, conn: socket.socket) -> bool:
        """Answer one ranged request; False when the reader has closed the connection."""
        request = bytearray(REQUEST.size)
        if not conn.recv_into(memoryview(request)[:1]):
            return False
        _recv_exact(conn, memoryview(request)[1:])
        _, offset, length = REQUEST.unpack(request)
        blob = self.blob
        part = blob[min(offset, len(blob)) : min(offset + length, len(blob))]
        time.sleep(self.profile.rtt_ms / 1e3)  # request out + first byte back
        conn.sendall(HEADER.pack(len(part)))
        self.pacer.send(conn, part)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class WanTier(BlobTier):
    name = "wan"

    def __init__(self, codec, device: torch.device, *, profile_name: str, profile: WanProfile):
        super().__init__(codec, device)
        self.profile_name, self.profile = profile_name, profile
        self.server = LinkServer(profile)

    def store(self, blob: bytes) -> None:
        # The publisher's upload is not the reader's question: the remote store takes the
        # bytes directly, and one reference assignment leaves either the old or the new object.
        self.server.blob = memoryview(blob)

    def connect(self) -> socket.socket:
        time.sleep(self.profile.rtt_ms / 1e3)  # TCP handshake
        return socket.create_connection(self.server.address)

    def _request(self, conn: socket.socket, offset: int, length: int, out: memoryview | None = None) -> memoryview:
        conn.sendall(REQUEST.pack(b"GET ", offset, length))
        header = bytearray(HEADER.size)
        _recv_exact(conn, memoryview(header))
        (nbytes,) = HEADER.unpack(header)
        buf = self.staging(nbytes) if out is None else out[:nbytes]
        _recv_exact(conn, buf)
        return buf

    def fetch(self) -> memoryview:
        start = time.perf_counter()
        with self.connect() as conn:
            buf = self._request(conn, 0, len(self.server.blob))
        elapsed, nbytes = time.perf_counter() - start, len(buf)
        floor = link_floor_s(nbytes, self.profile)
        paced = math.isfinite(self.profile.bandwidth_mb_s)
        if paced and nbytes and elapsed - floor > max(0.1 * floor, 0.01):  # ignore the fixed costs of tiny reads
            # On a slow host the loopback itself can be the bottleneck; the row's fetch_gbps shows it.
            log.warning(
                "wan tier: %s read ran at %.2f GB/s, below its configured %.2f GB/s",
                self.profile_name,
                nbytes / max(elapsed - 2 * self.profile.rtt_ms / 1e3, 1e-9) / 1e9,
                self.profile.bandwidth_mb_s / 1e3,
            )
        return buf

    def fetch_range(self, offset: int, nbytes: int, out: memoryview) -> int:
        """One ranged request on this thread's connection (opened at its first request of a read)."""
        got = self._request(self.connection(), offset, nbytes, out)
        if len(got) != nbytes:
            raise TierError(f"wan tier: asked for {nbytes} bytes at {offset}, got {len(got)}")
        return 0

    def stored_bytes(self) -> int:
        return len(self.server.blob)

    def info(self) -> dict[str, Any]:
        return {
            "link_gbps": self.profile.bandwidth_mb_s / 1e3,
            "wan_rtt_ms": self.profile.rtt_ms,
            "egress_usd": len(self.server.blob) * self.profile.egress_usd_per_gb / 1e9,
        }

    def link_path(self, links: HostLinks) -> LinkPath:
        return LinkPath(
            cpu={"hash": links.hash_gbps},
            dma={"storage": self.profile.bandwidth_mb_s / 1e3, "h2d": links.h2d_gbps},  # the paced link overlaps
            fixed_ms=2 * self.profile.rtt_ms,
        )

    def close(self) -> None:
        self.server.stop()
