"""The tier interface: store a codec blob once, read it back as KV on the compute device.

A reader's read is timed stage by stage: ``fetch`` (storage to host memory), ``decode``
(the codec) and ``h2d`` (host to device). A codec whose ``device`` is ``"cpu"`` decodes
on the host, then the decoded KV is copied. One whose ``device`` is ``"cuda"`` takes the
host blob, verifies it and copies the compressed payload to the device itself
(:mod:`kvbench.codecs.base`), so its ``decode_ms`` includes that copy and ``h2d_ms`` is 0
while ``h2d_bytes`` still counts the bytes that crossed the bus. Attaching the KV and the
question's forward need the model and are timed by the experiment.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from kvbench.artifact import KVArtifact


class TierError(RuntimeError):
    """A tier could not store or read an object; the message is one line."""


class TierUnavailableError(TierError):
    """The tier's backend cannot be reached (no server, no binary): its points are skipped."""


@dataclass
class Stages:
    """One read's stage times (milliseconds) and bytes moved."""

    fetch_ms: float = 0.0
    decode_ms: float = 0.0
    h2d_ms: float = 0.0
    fetch_bytes: int = 0
    h2d_bytes: int = 0


class Stopwatch:
    """Laps in milliseconds; on CUDA the device is synchronised first, so a lap covers queued work."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self._sync()
        self._last = time.perf_counter()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def lap(self) -> float:
        self._sync()
        now = time.perf_counter()
        elapsed, self._last = (now - self._last) * 1e3, now
        return elapsed


class Tier(ABC):
    """One storage tier holding one document's KV, as a context manager that frees it on exit.

    Parameters
    ----------
    codec : kvbench.codecs.Codec
        Decodes what the tier stores.
    device : torch.device
        The compute device reads deliver to.
    """

    name: str = ""

    def __init__(self, codec, device: torch.device):
        self.codec = codec
        self.device = torch.device(device)

    @abstractmethod
    def put(self, blob: bytes) -> None:
        """Store ``blob`` (the codec's bytes) atomically: on failure nothing partial remains."""

    @abstractmethod
    def get(self) -> tuple[KVArtifact, Stages]:
        """The stored KV on ``self.device`` (tensors ``(batch, kv_heads, tokens, head_dim)``), and its stage times."""

    def prepare(self) -> None:
        """Untimed work before each read (e.g. dropping the page cache)."""

    def stored_bytes(self) -> int:
        return 0

    def info(self) -> dict[str, Any]:
        """Row fields describing the tier's setup (see :mod:`kvbench.rows`)."""
        return {}

    def close(self) -> None:
        """Free the stored object and anything the tier started."""

    def __enter__(self) -> "Tier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def host_buffer(nbytes: int, device: torch.device) -> torch.Tensor:
    """A ``(nbytes,)`` uint8 host buffer, pinned when the reader is a GPU (DMA at full link speed)."""
    return torch.empty(nbytes, dtype=torch.uint8, pin_memory=torch.device(device).type == "cuda")


class BlobTier(Tier):
    """A tier that stores the codec's bytes and only has to say how to fetch them to host memory.

    Like a serving system's staging pool, the reader's host buffer is allocated once, at
    put, pinned on CUDA: a fetch writes into it, the identity codec parses views of it
    without copying, and the host-to-device copy runs at the link's speed.
    """

    _staging: torch.Tensor | None = None

    def put(self, blob: bytes) -> None:
        self.store(blob)
        self._staging = host_buffer(len(blob), self.device)

    @abstractmethod
    def store(self, blob: bytes) -> None:
        """Store ``blob`` atomically (the contract of :meth:`Tier.put`)."""

    @abstractmethod
    def fetch(self) -> memoryview:
        """The stored blob in host memory, written into :meth:`staging`."""

    def staging(self, nbytes: int) -> memoryview:
        """The first ``nbytes`` of the reader's host buffer, grown if the stored object is larger."""
        if self._staging is None or self._staging.numel() < nbytes:
            self._staging = host_buffer(nbytes, self.device)
        return memoryview(self._staging.numpy())[:nbytes]

    def get(self) -> tuple[KVArtifact, Stages]:
        watch = Stopwatch(self.device)
        blob = self.fetch()
        stages = Stages(fetch_ms=watch.lap(), fetch_bytes=len(blob))
        return decode_to_device(self.codec, blob, self.device, watch, stages)


def decode_to_device(codec, blob, device: torch.device, watch: Stopwatch,
                     stages: Stages) -> tuple[KVArtifact, Stages]:
    """Decode ``blob`` and move it to ``device`` in the codec's order, filling the decode and h2d laps.

    A CPU reader gets its own copy: decoded tensors may be views of a tier's staging buffer,
    which the next read overwrites.
    """
    on_cuda = device.type == "cuda"
    if codec.device == "cuda":
        artifact = codec.decode(blob, device)
        stages.decode_ms, stages.h2d_bytes = watch.lap(), len(blob) if on_cuda else 0
    else:
        artifact = codec.decode(blob, torch.device("cpu"))
        stages.decode_ms = watch.lap()
        artifact = artifact.to(device, non_blocking=on_cuda, copy=True)
        stages.h2d_ms, stages.h2d_bytes = watch.lap(), artifact.nbytes if on_cuda else 0
    return artifact, stages
