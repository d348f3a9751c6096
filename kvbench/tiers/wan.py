"""Tier ``wan``: a remote read over an emulated wide-area link, paced on a real loopback socket.

A server thread holds the blob (the remote store's memory) and answers each read on a new
TCP connection. The link is emulated with delays and pacing, not with a kernel qdisc
(which needs root and a network namespace):

* one RTT before connecting (the TCP handshake) and one before the first byte (the request
  going out, the answer coming back);
* the payload leaves through a token bucket at the profile's bandwidth whose depth is one
  1 MiB send, so the achieved rate matches the configured one on every slice of a read.

Not modelled: TCP slow start and loss (which make real short transfers slower than
bandwidth x time), TLS, and jitter. The read is therefore a floor: ``2 RTT + bytes / bandwidth``.
"""

from __future__ import annotations

import functools
import logging
import math
import socket
import struct
import threading
import time
from typing import Any

import torch

from kvbench.config.schema import WanProfile
from kvbench.tiers.base import BlobTier, TierError

SEND_SLICE = 1 << 20
HEADER = struct.Struct("<Q")  # payload length
REQUEST = b"GET\n"

log = logging.getLogger(__name__)


def paced_send(conn: socket.socket, payload: memoryview, rate_bytes_s: float) -> None:
    """Send ``payload`` no faster than ``rate_bytes_s``: each slice waits until the bucket holds its bytes."""
    start, sent = time.perf_counter(), 0
    while sent < len(payload):
        piece = payload[sent : sent + SEND_SLICE]
        wait = start + (sent + len(piece)) / rate_bytes_s - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        conn.sendall(piece)
        sent += len(piece)


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


@functools.cache
def loopback_peak_gbps(nbytes: int = 256 << 20) -> float:
    """Unpaced TCP over loopback, GB/s (1e9 B): what a local server's socket can deliver at best."""
    tier = WanTier(
        codec=None,
        device=torch.device("cpu"),
        profile_name="unpaced",
        profile=WanProfile(bandwidth_mb_s=float("inf"), rtt_ms=0.0, egress_usd_per_gb=0.0),
    )
    try:
        tier.store(bytes(nbytes))
        start = time.perf_counter()
        tier.fetch()
        return nbytes / (time.perf_counter() - start) / 1e9
    finally:
        tier.close()


class LinkServer:
    """Serves one blob on 127.0.0.1 over a paced link, one connection at a time."""

    def __init__(self, profile: WanProfile):
        self.profile = profile
        self.blob = memoryview(b"")
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
            with conn:
                try:
                    self._answer(conn)
                except OSError:
                    pass  # the reader went away; it reports its own error

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        request = bytearray(len(REQUEST))
        _recv_exact(conn, memoryview(request))
        blob = self.blob
        time.sleep(self.profile.rtt_ms / 1e3)  # request out + first byte back
        conn.sendall(HEADER.pack(len(blob)))
        paced_send(conn, blob, self.profile.bandwidth_mb_s * 1e6)

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

    def fetch(self) -> memoryview:
        start = time.perf_counter()
        time.sleep(self.profile.rtt_ms / 1e3)  # TCP handshake
        with socket.create_connection(self.server.address) as conn:
            conn.sendall(REQUEST)
            header = bytearray(HEADER.size)
            _recv_exact(conn, memoryview(header))
            (nbytes,) = HEADER.unpack(header)
            buf = self.staging(nbytes)
            _recv_exact(conn, buf)
        elapsed = time.perf_counter() - start
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

    def stored_bytes(self) -> int:
        return len(self.server.blob)

    def info(self) -> dict[str, Any]:
        return {
            "link_gbps": self.profile.bandwidth_mb_s / 1e3,
            "wan_rtt_ms": self.profile.rtt_ms,
            "egress_usd": len(self.server.blob) * self.profile.egress_usd_per_gb / 1e9,
        }

    def close(self) -> None:
        self.server.stop()
