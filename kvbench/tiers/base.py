"""The tier interface: store a codec blob once, read it back as KV on the compute device.

A reader's read is timed stage by stage (:class:`StageTimer`): ``fetch`` (storage to host
memory), ``decode`` (the codec) and ``h2d`` (host to device, into the reader's KV pool). A
codec whose ``device`` is ``"cpu"`` decodes on the host, then the decoded KV is copied. One
whose ``device`` is ``"cuda"`` takes the host blob, verifies it and copies the compressed payload to the device itself
(:mod:`kvbench.codecs.base`), so its ``decode_ms`` includes that copy and ``h2d_ms`` is 0
while ``h2d_bytes`` still counts the bytes that crossed the bus. Attaching the KV and the
question's forward need the model and are timed by the experiment.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from kvbench.codecs.base import CodecError
from kvbench.kv.artifact import ArtifactCorruptError, KVArtifact
from kvbench.kv.chunks import ChunkError
from kvbench.measure.links import HostLinks, tier_floor_ms
from kvbench.tiers.frames import stream_artifact, stream_frame, streamable
from kvbench.tiers.stream import Loader, StreamStats


@dataclass
class LinkPath:
    """The links a tier's read crosses, GB/s, as :func:`kvbench.measure.links.tier_floor_ms` takes them:
    those the host's cores serve (``cpu``: their times add), those served by DMA or a paced link
    (``dma``: they overlap), and any fixed latency (a wide-area link's round trips)."""

    cpu: dict[str, float | None] = field(default_factory=dict)
    dma: dict[str, float | None] = field(default_factory=dict)
    fixed_ms: float = 0.0

    def link(self, name: str) -> float | None:
        """The rate of the link called ``name`` (``storage``, ``hash``, ``h2d``), None if not on the path."""
        return self.cpu.get(name, self.dma.get(name))

    def floor_ms(self, nbytes: int, reuse_floor_ms: float) -> float:
        """The least time a read of ``nbytes`` over this path and its reuse can take."""
        return tier_floor_ms(nbytes, list(self.cpu.values()), list(self.dma.values()), reuse_floor_ms, self.fixed_ms)


class TierError(RuntimeError):
    """A tier could not store or read an object; the message is one line."""


class TierUnavailableError(TierError):
    """The tier's backend cannot be reached (no server, no binary): its points are skipped."""


@dataclass
class Read:
    """One read: the KV on the device and the bytes it moved."""

    kv: KVArtifact
    fetch_bytes: int = 0
    h2d_bytes: int = 0
    stream: StreamStats | None = None  # a streaming read's stage statistics (None: the serial path)


class StageTimer:
    """The stage times of one read: host work by ``perf_counter``, device work by CUDA events.

    Device stages are bracketed by events on the current stream and nothing synchronises
    between stages; :meth:`results` waits once, at the end. Host stages (a fetch, a CPU
    decode) are synchronous CPU work, timed as such. Off CUDA every stage is host-timed.
    """

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"
        self._host: dict[str, float] = {}
        self._events: dict[str, tuple[torch.cuda.Event, torch.cuda.Event]] = {}

    @contextmanager
    def host(self, stage: str):
        t0 = time.perf_counter()
        yield
        self._host[stage] = (time.perf_counter() - t0) * 1e3

    @contextmanager
    def device(self, stage: str):
        if not self.cuda:
            with self.host(stage):
                yield
            return
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield
        end.record()
        self._events[stage] = (start, end)

    def results(self) -> dict[str, float]:
        """Milliseconds per stage (waits for the device once)."""
        if self._events:
            next(reversed(self._events.values()))[1].synchronize()
        return {**self._host, **{stage: s.elapsed_time(e) for stage, (s, e) in self._events.items()}}

    def clocks(self) -> dict[str, str]:
        """Which clock timed each stage: ``perf_counter`` or ``cuda_events``."""
        return {**{s: "perf_counter" for s in self._host}, **{s: "cuda_events" for s in self._events}}


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
    def get(self, timer: StageTimer | None = None, dest: KVArtifact | None = None) -> Read:
        """The stored KV on ``self.device`` (tensors ``(batch, kv_heads, tokens, head_dim)``).

        ``dest``, where given, is the reader's device KV pool: the KV is delivered into it
        (the host-to-device copy writes there), so the reader attaches without another copy.
        Stages are recorded on ``timer`` when given.
        """

    def resident(self) -> KVArtifact | None:
        """The stored KV when it already lies decoded in device memory (a reader can read it in place)."""
        return None

    def prepare(self) -> None:  # noqa: B027 -- an optional hook: most tiers need nothing
        """Untimed work before each read (e.g. dropping the page cache)."""

    def stored_bytes(self) -> int:
        return 0

    def info(self) -> dict[str, Any]:
        """Row fields describing the tier's setup (see :mod:`kvbench.rows.schema`)."""
        return {}

    def link_path(self, links: HostLinks) -> LinkPath:
        """The links a read crosses, from this host's measured ``links``: none for a KV read in place."""
        return LinkPath()

    def close(self) -> None:  # noqa: B027 -- an optional hook
        """Free the stored object and anything the tier started."""

    def __enter__(self) -> Tier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def host_buffer(nbytes: int, device: torch.device) -> torch.Tensor:
    """A ``(nbytes,)`` uint8 host buffer, pinned when the reader is a GPU (DMA at full link speed)."""
    return torch.empty(nbytes, dtype=torch.uint8, pin_memory=torch.device(device).type == "cuda")


class PerThread:
    """One connection per reading thread: opened by ``connect`` at the thread's first request of a
    read, all closed together when the read ends."""

    def __init__(self, connect: Callable[[], Any]):
        self.connect, self.local, self.lock = connect, threading.local(), threading.Lock()
        self.opened: list[Any] = []

    def get(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = self.connect()
            with self.lock:
                self.opened.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.opened:
            conn.close()


class BlobTier(Tier):
    """A tier that stores the codec's bytes and only has to say how to fetch them to host memory.

    Two read paths. ``serial`` (the control, kvbench's loader before streaming): fetch the
    whole object into one pinned staging buffer (allocated once, at put), verify it whole,
    decode, copy. ``stream`` (:mod:`kvbench.tiers.stream`): chunks fetched by ``workers``
    threads into a reusable pool of pinned slots, each verified as it lands and copied to the
    device while later chunks load. Host codecs always take the serial path; the row says
    which ran (``tier_io``).
    """

    def __init__(self, codec, device: torch.device):
        super().__init__(codec, device)
        self._staging: torch.Tensor | None = None
        self._loader: Loader | None = None
        self._buffers: dict[int, torch.Tensor] = {}  # a GPU codec's device payload buffer, reused
        self.configure("serial", 1, 2)

    def configure(self, io: str, workers: int, slots: int) -> None:
        """Choose the read path (``stream`` or ``serial``) and the streaming loader's parallelism."""
        self.io, self.workers, self.slots = io, workers, slots

    def put(self, blob: bytes) -> None:
        self.store(blob)
        if not self.streams():
            self._staging = host_buffer(len(blob), self.device)

    def streams(self) -> bool:
        return self.io == "stream" and streamable(self.codec)

    @abstractmethod
    def store(self, blob: bytes) -> None:
        """Store ``blob`` atomically (the contract of :meth:`Tier.put`)."""

    @abstractmethod
    def fetch(self) -> memoryview:
        """The stored blob in host memory, written into :meth:`staging`."""

    def fetch_range(self, offset: int, nbytes: int, out: memoryview) -> int:
        """Put the stored object's bytes ``offset .. offset + nbytes`` into ``out``; return where they start.

        Safe to call from several threads at once. The streaming path needs it.
        """
        raise NotImplementedError(f"{self.name} tier has no ranged reads")

    def connect(self) -> Any:
        """A new connection to the store for one reading thread (redis, wan); tiers without one never call it."""
        raise NotImplementedError(f"{self.name} tier has no connections")

    @contextmanager
    def reading_connections(self):
        """Within it, :meth:`connection` gives each thread its own connection, all closed at its end."""
        self._threads = PerThread(self.connect)
        try:
            yield
        finally:
            self._threads.close()

    def connection(self) -> Any:
        """This thread's connection of the read in progress (:meth:`reading_connections`)."""
        return self._threads.get()

    def staging(self, nbytes: int) -> memoryview:
        """The first ``nbytes`` of the reader's host buffer, grown if the stored object is larger."""
        if self._staging is None or self._staging.numel() < nbytes:
            self._staging = host_buffer(nbytes, self.device)
        return self._staging.numpy().data[:nbytes]

    def loader(self, slot_bytes: int) -> Loader:
        """The tier's streaming loader (pinned slots, worker threads, copy stream), made at the first
        streaming read and reused by every later one."""
        if self._loader is None or self._loader.pool.slot_bytes != slot_bytes:
            if self._loader is not None:
                self._loader.close()
            self._loader = Loader(self.workers, self.slots, slot_bytes, self.device)
        return self._loader

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        if self._loader is not None:
            self._loader.close()
            self._loader = None

    def get(self, timer: StageTimer | None = None, dest: KVArtifact | None = None) -> Read:
        timer = timer or StageTimer(self.device)
        if self.streams():
            return self._stream(timer, dest)
        with timer.host("fetch"):
            blob = self.fetch()
        read = decode_to_device(self.codec, blob, self.device, timer, dest)
        read.fetch_bytes = len(blob)
        return read

    def _stream(self, timer: StageTimer, dest: KVArtifact | None) -> Read:
        size = self.stored_bytes()
        try:
            with (
                self.reading_connections(),
                timer.host("load"),
            ):  # first request to last copy: every chunk verified and on the device
                if self.codec.name == "identity":
                    streamed = stream_artifact(self.fetch_range, size, self.device, dest, self.loader)
                else:
                    streamed = stream_frame(
                        self.codec, self.fetch_range, size, self.device, dest, self.loader, self._buffers
                    )
        except (ChunkError, ArtifactCorruptError) as exc:  # as the serial path's codec reports it
            raise CodecError(f"{self.codec.name} object on the {self.name} tier: {exc}") from None
        with timer.device("decode"):
            kv = streamed.finish()
        h2d = streamed.h2d_bytes if self.device.type == "cuda" else 0
        return Read(kv, fetch_bytes=size, h2d_bytes=h2d, stream=streamed.stats)


def to_device(kv: KVArtifact, device: torch.device, dest: KVArtifact | None) -> KVArtifact:
    """``kv`` copied into ``dest`` (the reader's pool) or into new tensors on ``device``.

    Always a copy: decoded tensors may be views of a tier's staging buffer, which the next
    read overwrites. Asynchronous from pinned memory on CUDA.
    """
    non_blocking = torch.device(device).type == "cuda"
    if dest is None:
        return kv.to(device, non_blocking=non_blocking, copy=True)
    dest.copy_(kv, non_blocking=non_blocking)
    dest.meta = dict(kv.meta)  # the pool now holds what the blob said it is (its document, its model)
    return dest


def decode_to_device(codec, blob, device: torch.device, timer: StageTimer, dest: KVArtifact | None = None) -> Read:
    """Decode ``blob`` and bring it to ``device`` (into ``dest`` when given) in the codec's order.

    A CPU codec decodes on the host (stage ``decode``), then one copy moves it (``h2d``). A
    GPU codec copies the compressed bytes and decodes on the device (``decode``, including
    the move of its output into ``dest``); its ``h2d_bytes`` are the compressed bytes.
    """
    on_cuda = device.type == "cuda"
    if codec.device == "cuda":
        with timer.device("decode"):
            kv = codec.decode(blob, device)
            if dest is not None:
                kv = to_device(kv, device, dest)
        return Read(kv, h2d_bytes=len(blob) if on_cuda else 0)
    with timer.host("decode"):
        kv = codec.decode(blob, torch.device("cpu"))
    with timer.device("h2d"):
        kv = to_device(kv, device, dest)
    return Read(kv, h2d_bytes=kv.nbytes if on_cuda else 0)
