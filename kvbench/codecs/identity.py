"""The identity codec: the artifact's own safetensors blob, checksum verified on decode."""

from __future__ import annotations

import torch

from kvbench.artifact import ArtifactCorruptError, KVArtifact
from kvbench.codecs.base import CodecError


class IdentityCodec:
    name = "identity"
    lossless = True
    device = "cpu"

    def encode(self, artifact: KVArtifact) -> bytes:
        return artifact.to_bytes()

    def decode(self, blob, device: torch.device) -> KVArtifact:
        if isinstance(blob, torch.Tensor):  # a uint8 tensor view of the blob
            blob = blob.cpu().numpy().tobytes()
        try:
            artifact = KVArtifact.from_bytes(blob)
        except ArtifactCorruptError as exc:
            raise CodecError(str(exc)) from exc
        return artifact if torch.device(device).type == "cpu" else artifact.to(device)
