"""The identity codec: the artifact's own safetensors blob, checksum verified on decode."""

from __future__ import annotations

import torch

from kvbench.codecs.base import CodecError
from kvbench.kv.artifact import ArtifactCorruptError, KVArtifact
from kvbench.kv.chunks import CHUNK_BYTES


class IdentityCodec:
    name = "identity"
    lossless = True
    device = "cpu"

    def encode(self, artifact: KVArtifact, chunk_bytes: int = CHUNK_BYTES) -> bytearray:
        return artifact.to_bytes(chunk_bytes)

    def decode(self, blob, device: torch.device) -> KVArtifact:
        """Views of ``blob`` (bytes-like or a uint8 CPU tensor) on the CPU, else copies on ``device``."""
        try:
            artifact = KVArtifact.from_bytes(blob)
        except ArtifactCorruptError as exc:
            raise CodecError(str(exc)) from exc
        return artifact if torch.device(device).type == "cpu" else artifact.to(device)
