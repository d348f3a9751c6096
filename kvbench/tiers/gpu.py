"""Tier ``gpu``: the KV already decoded and resident in device memory (nothing to move)."""

from __future__ import annotations

from kvbench.artifact import KVArtifact
from kvbench.tiers.base import Stages, Stopwatch, Tier, decode_to_device


class GpuTier(Tier):
    name = "gpu"

    def put(self, blob: bytes) -> None:
        # Decoded (and checksum-verified) once at put: a resident KV is served as is.
        self.kv, _ = decode_to_device(self.codec, blob, self.device, Stopwatch(self.device), Stages())

    def get(self) -> tuple[KVArtifact, Stages]:
        return self.kv, Stages()

    def stored_bytes(self) -> int:
        return self.kv.nbytes

    def close(self) -> None:
        self.kv = None
