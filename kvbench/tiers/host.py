"""Tier ``host``: the KV in pinned CPU memory, copied to the device over the host link.

A host cache serves the GPU by DMA, so with a CPU codec it keeps the decoded KV pinned
(decode paid once, at put) and a read is one host-to-device copy. With a GPU codec it keeps
the codec's bytes, which the codec copies compressed and decodes on the device. Pinning
needs CUDA; on a CPU-only machine the memory is ordinary and the copy is a no-op.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from kvbench.artifact import KVArtifact
from kvbench.measure import time_ms
from kvbench.tiers.base import Stages, Stopwatch, Tier, decode_to_device


@functools.lru_cache(maxsize=None)
def h2d_peak_gbps(device: torch.device, nbytes: int = 256 << 20, repeats: int = 5) -> float | None:
    """Best pinned host-to-device copy rate, GB/s (1e9 B), timed with CUDA events; None off CUDA."""
    if device.type != "cuda":
        return None
    src = torch.empty(nbytes, dtype=torch.uint8).pin_memory()
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    samples = time_ms(lambda: dst.copy_(src, non_blocking=True), device, warmup=1, repeats=repeats)
    return nbytes / (samples.min() * 1e-3) / 1e9


def _pin(t: torch.Tensor) -> torch.Tensor:
    return t.pin_memory() if torch.cuda.is_available() else t


class HostTier(Tier):
    name = "host"

    def put(self, blob: bytes) -> None:
        self.kv: KVArtifact | None = None
        self.blob: bytes | None = None
        if self.codec.device == "cuda":
            self.blob = blob
        else:
            kv = self.codec.decode(blob, torch.device("cpu"))
            self.kv = KVArtifact([_pin(k) for k in kv.keys], [_pin(v) for v in kv.values], kv.meta)

    def get(self) -> tuple[KVArtifact, Stages]:
        watch = Stopwatch(self.device)
        if self.blob is not None:
            return decode_to_device(self.codec, self.blob, self.device, watch, Stages())
        artifact = self.kv.to(self.device, non_blocking=True)
        return artifact, Stages(h2d_ms=watch.lap(), h2d_bytes=self.kv.nbytes if self.device.type == "cuda" else 0)

    def stored_bytes(self) -> int:
        return len(self.blob) if self.blob is not None else self.kv.nbytes

    def info(self) -> dict[str, Any]:
        return {"link_gbps": h2d_peak_gbps(self.device)}

    def close(self) -> None:
        self.kv = self.blob = None
