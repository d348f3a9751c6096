"""Tier ``gpu``: the KV already decoded and resident in device memory, where the reader reads it.

A serving engine keeps a hot document's KV in its device KV pool; a reader's attach is then
a table update, not a copy. The tier decodes (and checksum-verifies) the blob once, at put,
and offers the result as the reader's pool (:meth:`resident`), so a read moves nothing.
"""

from __future__ import annotations

from kvbench.kv.artifact import KVArtifact
from kvbench.tiers.base import Read, StageTimer, Tier, TierError, decode_to_device


class GpuTier(Tier):
    name = "gpu"

    def put(self, blob: bytes) -> None:
        self.kv: KVArtifact | None = decode_to_device(self.codec, blob, self.device, StageTimer(self.device)).kv

    def resident(self) -> KVArtifact | None:
        return self.kv

    def _stored_kv(self) -> KVArtifact:
        """The decoded KV that :meth:`put` kept."""
        if self.kv is None:
            raise TierError("gpu tier: no KV stored (read before put, or after close)")
        return self.kv

    def get(self, timer: StageTimer | None = None, dest: KVArtifact | None = None) -> Read:
        kv = self._stored_kv()
        if dest is not None and dest is not kv:  # a reader whose pool is elsewhere: one device copy
            with (timer or StageTimer(self.device)).device("h2d"):
                dest.copy_(kv, non_blocking=True)
            dest.meta = dict(kv.meta)
            return Read(dest)
        return Read(kv)

    def stored_bytes(self) -> int:
        return self._stored_kv().nbytes

    def close(self) -> None:
        self.kv = None
