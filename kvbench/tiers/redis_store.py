"""Tier ``redis``: the codec's blob in a real Redis (or Valkey) server over TCP.

The blob is split into values of ``chunk_mib`` (Redis refuses values over 512 MiB, and
big values stall the server's event loop), written with a manifest key in one MULTI/EXEC
transaction, so a put cut off half-way (server gone, connection dropped) applies nothing:
the server discards a transaction whose EXEC never arrived. A read gets the manifest, then
every chunk in one pipelined round trip.

Security. AUTH: the password comes from the environment variable ``tier.password_env``
names (``KVBENCH_REDIS_PASSWORD``), so it never lands in a run folder; a password in the URL
(``redis://user:secret@host``) works too and is redacted from everything kvbench writes. TLS:
a ``rediss://`` URL; redis-py takes its TLS options from the URL's query, e.g.
``rediss://host:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem``. Faults: with a configured URL, a
server that cannot be reached or drops mid-read fails the point (``TierError``); only the
lack of any server binary for kvbench's own server skips it (``TierUnavailableError``).
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import redis
import torch
from redis.utils import HIREDIS_AVAILABLE

from kvbench.measure.links import HostLinks
from kvbench.tiers.base import BlobTier, LinkPath, TierError, TierUnavailableError
from kvbench.tiers.frames import payload_layout
from kvbench.tiers.redis_bulk import BulkConnection
from kvbench.tiers.redis_server import LocalRedisServer, find_server_binary

READ_SIZE = 1 << 20  # per recv; redis-py's 64 KiB default costs ~3x on large values


def _where(url: str) -> str:
    """``host:port`` of a URL, without any credentials in it."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


class RedisTier(BlobTier):
    name = "redis"

    def __init__(
        self,
        codec,
        device: torch.device,
        *,
        url: str | None,
        password_env: str,
        server_bin: str | None,
        chunk_mib: int,
        connect_timeout_s: float,
        socket_timeout_s: float,
        io_threads: int = 1,
    ):
        super().__init__(codec, device)
        self.server: LocalRedisServer | None = None
        self.client: redis.Redis | None = None
        self.chunk = chunk_mib << 20
        self.key = f"kvbench:kv:{uuid.uuid4().hex}"
        self.data_key: str | None = None  # chunks of the stored object: data_key:0 .. data_key:count-1
        self.count = self.nbytes = 0
        self.cuts: list[int] = [0]
        self._link: float | None = None
        if url is None:
            self.server = LocalRedisServer(
                find_server_binary(server_bin), io_threads, configured=server_bin is not None
            )
            url = self.server.url
        self.where = _where(url)
        self.client = redis.Redis.from_url(
            url,
            password=os.environ.get(password_env) or None,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=socket_timeout_s,
            socket_read_size=READ_SIZE,
        )
        try:
            self.client.ping()
        except redis.RedisError as exc:
            # Our own server not answering means no usable backend here (skip the point); a
            # configured server that does not answer is a fault of the run (fail the point).
            error = TierUnavailableError if self.server is not None else TierError
            self.close()
            raise error(f"redis tier: cannot reach redis at {self.where}: {exc}") from exc

    def _client(self) -> redis.Redis:
        """The tier's client; a closed tier has none."""
        if self.client is None:
            raise TierError(f"redis tier: the client to {self.where} is closed")
        return self.client

    def _chunk_keys(self, data_key: str, count: int) -> list[str]:
        return [f"{data_key}:{i}" for i in range(count)]

    def _query_buffer_limit(self) -> int | None:
        """The server's ``client-query-buffer-limit`` in bytes, or None where CONFIG is not allowed."""
        try:
            limit = self._client().config_get("client-query-buffer-limit")["client-query-buffer-limit"]
            return None if limit is None else int(limit)
        except (redis.ResponseError, KeyError, ValueError):
            return None

    def _cuts(self, view: memoryview) -> list[int]:
        """Where the object's values start: every ``tier.chunk_mib`` (serial), or the header and then each
        verified chunk of its payload (stream), so that one chunk of a streaming read is one GET."""
        if not self.streams():
            return list(range(0, max(len(view), 1), self.chunk))
        start, chunk_bytes = payload_layout(self.codec, view)
        return [0, *range(start, len(view), chunk_bytes)] if start < len(view) else [0]

    def store(self, blob: bytes) -> None:
        view = memoryview(blob)
        cuts = self._cuts(view)
        count = len(cuts)
        data_key = f"{self.key}:{uuid.uuid4().hex}"
        manifest = json.dumps({"data": data_key, "chunks": count, "nbytes": len(view), "cuts": cuts})
        try:
            limit = self._query_buffer_limit()
            if limit is not None and view.nbytes > limit:
                raise TierError(
                    f"redis tier: a {view.nbytes} byte object is over the client-query-buffer-limit "
                    f"({limit} bytes) of {self.where}, which a put's MULTI counts against: raise it"
                )
            with self._client().pipeline(transaction=True) as pipe:
                for key, a, b in zip(self._chunk_keys(data_key, count), cuts, [*cuts[1:], len(view)]):
                    pipe.set(key, view[a:b])
                pipe.set(self.key, manifest)
                if self.data_key is not None:  # replace, never leave the old object's chunks behind
                    pipe.delete(*self._chunk_keys(self.data_key, self.count))
                pipe.execute()
        except redis.RedisError as exc:  # a server gone mid-sweep included: the point fails, the sweep goes on
            raise TierError(f"redis tier: put to {self.where} failed, nothing stored: {exc}") from exc
        self.data_key, self.count, self.nbytes, self.cuts = data_key, count, len(view), cuts

    def fetch(self) -> memoryview:
        try:
            client = self._client()
            raw = client.get(self.key)
            if raw is None:
                raise TierError(f"redis tier: no object at {self.key} on {self.where}")
            manifest = json.loads(raw)
            with client.pipeline(transaction=False) as pipe:
                for key in self._chunk_keys(manifest["data"], manifest["chunks"]):
                    pipe.get(key)
                chunks = pipe.execute()
        except redis.RedisError as exc:
            raise TierError(f"redis tier: read from {self.where} failed: {exc}") from exc
        if any(c is None for c in chunks):
            raise TierError(f"redis tier: object {self.key} lost chunks on {self.where}")
        got = sum(len(c) for c in chunks)
        if got != manifest["nbytes"]:
            raise TierError(
                f"redis tier: object {self.key} is {got} bytes, its manifest says {manifest['nbytes']}: truncated"
            )
        buf, offset = self.staging(got), 0
        for chunk in chunks:  # the one host copy, as b"".join would make, but into pinned memory
            buf[offset : offset + len(chunk)] = chunk
            offset += len(chunk)
        return buf

    def fetch_range(self, offset: int, nbytes: int, out: memoryview) -> int:
        """The bytes ``offset .. offset + nbytes`` from the values holding them: one GET per whole value,
        GETRANGE for part of one, received into ``out`` on this thread's own connection."""
        assert self.data_key is not None
        end, got = offset + nbytes, 0
        first = bisect.bisect_right(self.cuts, offset) - 1
        bounds = [*self.cuts[1:], self.nbytes]
        try:
            for i in range(first, len(self.cuts)):
                a, b = self.cuts[i], bounds[i]
                if a >= end:
                    break
                lo, hi = max(a, offset), min(b, end)
                key = f"{self.data_key}:{i}"
                args = ("GET", key) if (lo, hi) == (a, b) else ("GETRANGE", key, lo - a, hi - a - 1)
                n = self._read_into(out[got : got + hi - lo], *args)
                if n != hi - lo:
                    raise TierError(f"redis tier: value {i} of {self.key} on {self.where} is missing or short")
                got += n
        except (redis.RedisError, OSError) as exc:
            raise TierError(f"redis tier: read from {self.where} failed: {exc}") from exc
        return 0

    def _read_into(self, out: memoryview, *args) -> int:
        """One command's bulk reply into ``out``: raw and zero-copy on plain TCP, through redis-py otherwise."""
        client = self._client()
        if client.connection_pool.connection_class is not redis.Connection:  # TLS or a Unix socket
            data = client.execute_command(*args)
            if data is None:
                return -1
            out[: len(data)] = data
            return len(data)
        return self.connection().read_into(out, *args)

    def connect(self) -> BulkConnection:
        kwargs = self._client().connection_pool.connection_kwargs
        return BulkConnection(
            kwargs.get("host", "localhost"), kwargs.get("port", 6379), kwargs.get("db", 0),
            kwargs.get("username"), kwargs.get("password"), kwargs.get("socket_timeout") or 120.0,
        )  # fmt: skip

    def stored_bytes(self) -> int:
        return self.nbytes

    def info(self) -> dict[str, Any]:
        return {"tier_reader": "hiredis" if HIREDIS_AVAILABLE else "python", "link_gbps": self.link_gbps()}

    def link_path(self, links: HostLinks) -> LinkPath:
        # the server, its socket and the reading connections run on this host's cores, as the digests do
        return LinkPath(cpu={"storage": self.link_gbps(), "hash": links.hash_gbps}, dma={"h2d": links.h2d_gbps})

    def link_gbps(self, nbytes: int = 1 << 30, value_bytes: int = 16 << 20) -> float:
        """What this server delivers to ``workers`` parallel GETs of ``value_bytes`` values, GB/s, best of 3.

        The link as a streaming read uses it (the server, its socket and the reading connections,
        :meth:`_read_into`, together); measured once per tier on a scratch object, then removed.
        """
        if self._link is None:
            client = self._client()
            keys = [f"{self.key}:link:{i}" for i in range(max(1, nbytes // value_bytes))]
            value = os.urandom(value_bytes)
            buffers = threading.local()

            def get(key: str) -> int:
                if not hasattr(buffers, "out"):
                    buffers.out = memoryview(bytearray(value_bytes))
                return self._read_into(buffers.out, "GET", key)

            try:
                client.mset({k: value for k in keys})
                best = 0.0
                with self.reading_connections(), ThreadPoolExecutor(self.workers) as pool:
                    for _ in range(3):
                        start = time.perf_counter()
                        list(pool.map(get, keys))
                        best = max(best, len(keys) * value_bytes / (time.perf_counter() - start) / 1e9)
                self._link = best
            except (redis.RedisError, OSError) as exc:
                raise TierError(f"redis tier: cannot measure the link to {self.where}: {exc}") from exc
            finally:
                client.delete(*keys)
        return self._link

    def close(self) -> None:
        if self.client is not None:
            try:
                if self.data_key is not None:
                    self.client.delete(self.key, *self._chunk_keys(self.data_key, self.count))
            except redis.RedisError:
                pass  # the server is gone; so is the object
            self.client.close()
            self.client = None
        if self.server is not None:
            self.server.stop()
            self.server = None
