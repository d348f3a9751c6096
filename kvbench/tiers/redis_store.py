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

import json
import os
import uuid
from typing import Any
from urllib.parse import urlsplit

import redis
import torch
from redis.utils import HIREDIS_AVAILABLE

from kvbench.tiers.base import BlobTier, TierError, TierUnavailableError
from kvbench.tiers.redis_server import LocalRedisServer, find_server_binary
from kvbench.tiers.wan import loopback_peak_gbps

SOCKET_TIMEOUT_S = 120.0  # a 64 MiB chunk over a slow link still arrives well within this
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
    ):
        super().__init__(codec, device)
        self.server = self.client = None
        self.chunk = chunk_mib << 20
        self.key = f"kvbench:kv:{uuid.uuid4().hex}"
        self.data_key: str | None = None  # chunks of the stored object: data_key:0 .. data_key:count-1
        self.count = self.nbytes = 0
        if url is None:
            self.server = LocalRedisServer(find_server_binary(server_bin))
            url = self.server.url
        self.where = _where(url)
        self.client = redis.Redis.from_url(
            url,
            password=os.environ.get(password_env) or None,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=SOCKET_TIMEOUT_S,
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

    def _chunk_keys(self, data_key: str, count: int) -> list[str]:
        return [f"{data_key}:{i}" for i in range(count)]

    def _query_buffer_limit(self) -> int | None:
        """The server's ``client-query-buffer-limit`` in bytes, or None where CONFIG is not allowed."""
        try:
            return int(self.client.config_get("client-query-buffer-limit")["client-query-buffer-limit"])
        except (redis.ResponseError, KeyError, ValueError):
            return None

    def store(self, blob: bytes) -> None:
        view = memoryview(blob)
        count = max(1, -(-len(view) // self.chunk))
        data_key = f"{self.key}:{uuid.uuid4().hex}"
        manifest = json.dumps({"data": data_key, "chunks": count, "nbytes": len(view)})
        try:
            limit = self._query_buffer_limit()
            if limit is not None and view.nbytes > limit:
                raise TierError(
                    f"redis tier: a {view.nbytes} byte object is over the client-query-buffer-limit "
                    f"({limit} bytes) of {self.where}, which a put's MULTI counts against: raise it"
                )
            with self.client.pipeline(transaction=True) as pipe:
                for i, key in enumerate(self._chunk_keys(data_key, count)):
                    pipe.set(key, view[i * self.chunk : (i + 1) * self.chunk])
                pipe.set(self.key, manifest)
                if self.data_key is not None:  # replace, never leave the old object's chunks behind
                    pipe.delete(*self._chunk_keys(self.data_key, self.count))
                pipe.execute()
        except redis.RedisError as exc:  # a server gone mid-sweep included: the point fails, the sweep goes on
            raise TierError(f"redis tier: put to {self.where} failed, nothing stored: {exc}") from exc
        self.data_key, self.count, self.nbytes = data_key, count, len(view)

    def fetch(self) -> memoryview:
        try:
            raw = self.client.get(self.key)
            if raw is None:
                raise TierError(f"redis tier: no object at {self.key} on {self.where}")
            manifest = json.loads(raw)
            with self.client.pipeline(transaction=False) as pipe:
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

    def stored_bytes(self) -> int:
        return self.nbytes

    def info(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"tier_reader": "hiredis" if HIREDIS_AVAILABLE else "python"}
        if self.server is not None:  # our own server on loopback: the socket is the link
            fields["link_gbps"] = loopback_peak_gbps()
        return fields

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
