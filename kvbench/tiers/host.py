"""Tier ``host``: the KV in pinned CPU memory, copied to the device over the host link.

A host cache serves the GPU by DMA, so with a CPU codec it keeps the decoded KV pinned
(decode paid once, at put) and a read is one host-to-device copy. With a GPU codec it keeps
the codec's bytes pinned, which the codec copies compressed and decodes on the device.
Pinning needs CUDA; for a CPU reader the memory is ordinary and the copy is a no-op.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from kvbench.artifact import KVArtifact
from kvbench.measure import time_ms
from kvbench.tiers.base import Stages, Stopwatch, Tier, decode_to_device, host_buffer


@functools.lru_cache(maxsize=None)
def h2d_peak_gbps(device: torch.device, nbytes: int = 256 << 20, repeats: int = 5) -> float | None:
    """Best pinned host-to-device copy rate, GB/s (1e9 B), timed with CUDA events; None off CUDA."""
    if device.type != "cuda":
        return None
    src = torch.empty(nbytes, dtype=torch.uint8).pin_memory()
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    samples = time_ms(lambda: dst.copy_(src, non_blocking=True), device, warmup=1, repeats=repeats)
    return nbytes / (samples.min() * 1e-3) / 1e9


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
            self.kv = KVArtifact([_pin(k, self.device) for k in kv.keys], [_pin(v, self.device) for v in kv.values],
                                 kv.meta)

    def get(self) -> tuple[KVArtifact, Stages]:
        watch = Stopwatch(self.device)
        if self.blob is not None:
            return decode_to_device(self.codec, memoryview(self.blob.numpy()), self.device, watch, Stages())
        artifact = self.kv.to(self.device, non_blocking=True)
        return artifact, Stages(h2d_ms=watch.lap(), h2d_bytes=self.kv.nbytes if self.device.type == "cuda" else 0)

    def stored_bytes(self) -> int:
        return self.blob.numel() if self.blob is not None else self.kv.nbytes

    def info(self) -> dict[str, Any]:
        return {"link_gbps": h2d_peak_gbps(self.device)}

    def close(self) -> None:
        self.kv = self.blob = None
