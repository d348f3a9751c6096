"""The codec interface: a KV artifact to self-describing bytes and back.

A codec's blob must carry everything its decoder needs (shapes, dtypes, provenance, a
checksum), so a tier can store it as opaque bytes. Lossless codecs round-trip bitwise;
lossy ones say so with ``lossless = False``. Corrupt or truncated input raises
:class:`CodecError`, never returns wrong tensors.
"""

from __future__ import annotations

from typing import Protocol

import torch

from kvbench.artifact import KVArtifact


class CodecError(ValueError):
    """Codec bytes are corrupt, truncated, or from another codec."""


class Codec(Protocol):
    name: str
    lossless: bool
    device: str  # where encode/decode run: "cpu" or "cuda"

    def encode(self, artifact: KVArtifact) -> bytes: ...

    def decode(self, blob: bytes, device: torch.device) -> KVArtifact: ...
