"""The codec interface: a KV artifact to self-describing bytes and back.

A codec's blob must carry everything its decoder needs (shapes, dtypes, provenance, a
checksum), so a tier can store it as opaque bytes. Lossless codecs round-trip bitwise;
lossy ones say so with ``lossless = False``. Corrupt or truncated input raises
:class:`CodecError`, never returns wrong tensors.

``device`` says where decoding happens. ``"cpu"``: ``decode`` returns host tensors and the
caller copies them to the reader's device afterwards (the full KV crosses the bus).
``"cuda"``: ``decode`` takes the host blob, verifies it, copies the *compressed* payload to
``device`` and decodes there (for the torch-based lossy codecs this also works on CPU).
``encode`` takes the artifact wherever it is (a GPU codec wants it on the GPU).
"""

from __future__ import annotations

from typing import Protocol

import torch

from kvbench.kv.artifact import KVArtifact
from kvbench.kv.chunks import CHUNK_BYTES


class CodecError(ValueError):
    """Codec bytes are corrupt, truncated, or from another codec."""


class Codec(Protocol):
    name: str
    lossless: bool
    device: str  # where decode runs: "cpu" (then host-to-device) or "cuda" (after host-to-device)

    def encode(self, artifact: KVArtifact, chunk_bytes: int = CHUNK_BYTES) -> bytes | bytearray: ...

    def decode(self, blob: bytes | bytearray, device: torch.device) -> KVArtifact: ...
