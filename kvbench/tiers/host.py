"""Tier ``host``: the KV in pinned CPU memory, copied to the device over the host link.

A host cache serves the GPU by DMA, so with a CPU codec it keeps the decoded KV pinned
(decode paid once, at put) and a read is one host-to-device copy. With a GPU codec it keeps
the codec's bytes pinned, which the codec copies compressed and decodes on the device.
Pinning needs CUDA; for a CPU reader the memory is ordinary and the copy is a no-op.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kvbench.kv.artifact import KVArtifact
from kvbench.measure.calibrate import h2d_gbps
from kvbench.measure.links import HostLinks
from kvbench.tiers.base import LinkPath, Read, StageTimer, Tier, TierError, decode_to_device, host_buffer, to_device


def _pin(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.pin_memory() if device.type == "cuda" else t


class HostTier(Tier):
    name = "host"

    def put(self, blob: bytes) -> None:
        self.kv: KVArtifact | None = None
        self.blob: torch.Tensor | None = None
        if self.codec.device == "cuda":
            # pinned like the decoded KV, so the codec's upload is one DMA with no host copy
            self.blob = host_buffer(len(blob), self.device)
            self.blob.numpy()[:] = np.frombuffer(blob, dtype=np.uint8)
        else:
            kv = self.codec.decode(blob, torch.device("cpu"))
            self.kv = KVArtifact(
                [_pin(k, self.device) for k in kv.keys], [_pin(v, self.device) for v in kv.values], kv.meta
            )

    def get(self, timer: StageTimer | None = None, dest: KVArtifact | None = None) -> Read:
        timer = timer or StageTimer(self.device)
        if self.blob is not None:
            return decode_to_device(self.codec, self.blob.numpy().data, self.device, timer, dest)
        stored = self._stored_kv()
        with timer.device("h2d"):  # straight into the reader's pool: no device copy after it
            kv = to_device(stored, self.device, dest)
        return Read(kv, h2d_bytes=stored.nbytes if self.device.type == "cuda" else 0)

    def _stored_kv(self) -> KVArtifact:
        """The decoded KV that :meth:`put` kept (a CPU codec's)."""
        if self.kv is None:
            raise TierError("host tier: no KV stored (read before put, or after close)")
        return self.kv

    def stored_bytes(self) -> int:
        return self.blob.numel() if self.blob is not None else self._stored_kv().nbytes

    def info(self) -> dict[str, Any]:
        return {"link_gbps": h2d_gbps(self.device)}

    def link_path(self, links: HostLinks) -> LinkPath:
        return LinkPath(dma={"h2d": links.h2d_gbps})  # one copy: no loader, no digest

    def close(self) -> None:
        self.kv = self.blob = None
