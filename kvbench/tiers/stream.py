"""The streaming read: chunks fetched in parallel, each verified as it lands and copied on while later ones load.

::

    worker threads (tier.workers):  fetch chunk i -> pinned slot | verify its XXH3-64 | enqueue slot -> device
    copy stream:                                                  H2D chunk i, chunk j, ... (one after another)
    pinned pool (tier.slots):       a slot is reused once the copy out of it has finished

A stored object is a header (a few KB, read and verified first) and a payload cut into the
chunks its header lists digests for (:mod:`kvbench.kv.chunks`). A tier's :class:`Loader` holds
the pinned slots (:class:`PinnedPool`), the worker threads and the copy stream, made once, so a
read allocates and starts nothing. Each worker takes the next chunk, fetches it into a free
slot, checks its digest, and enqueues the copy to its place on the device
on one copy stream; the slot goes back to the pool with the copy's event. The read ends when
the last copy has finished: every chunk verified and on the device. LMCache and Mooncake load
this way; the serial path (``tier.io=serial``: read all, verify all, copy all) is the control.

Stage times are summed per chunk over the workers (``fetch``, ``verify``, ``wait`` for a
slot) and taken from CUDA events on the copy stream (``h2d``); the read's own time is the
wall clock from its first request to its last copy (``load``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from kvbench.kv.chunks import ChunkError, ChunkList
from kvbench.measure.links import ALIGN, aligned_buffer

# fetch(offset, nbytes, slot) puts the object's bytes offset..offset+nbytes in ``slot`` and says where they start
Fetch = Callable[[int, int, memoryview], int]
# sink(start, end, chunk) enqueues the copy of payload bytes start..end (``chunk``, pinned uint8) to the device
Sink = Callable[[int, int, torch.Tensor], None]


class PinnedPool:
    """``slots`` reusable host buffers of ``slot_bytes`` each, pinned on CUDA, page-aligned everywhere.

    Each has two pages of slack, so an O_DIRECT read may start and end on page boundaries.

    ``allocations`` counts the buffers ever made: a tier makes its pool once and every read
    reuses it. :meth:`take` waits until a slot is free and the last copy out of it finished.
    """

    allocations = 0

    def __init__(self, slots: int, slot_bytes: int, device: torch.device):
        self.slot_bytes, self.cuda = slot_bytes, device.type == "cuda"
        self.buffers: list[torch.Tensor] = []
        for _ in range(slots):
            if self.cuda:
                buf = torch.empty(slot_bytes + 2 * ALIGN, dtype=torch.uint8, pin_memory=True)  # page-aligned
            else:
                buf = torch.frombuffer(aligned_buffer(slot_bytes + 2 * ALIGN), dtype=torch.uint8)
            self.buffers.append(buf)
            PinnedPool.allocations += 1
        self._free: queue.Queue[tuple[int, torch.cuda.Event | None]] = queue.Queue()
        for i in range(slots):
            self._free.put((i, None))

    def take(self) -> tuple[int, torch.Tensor]:
        index, event = self._free.get()
        if event is not None:
            event.synchronize()  # the GIL is released while it waits
        return index, self.buffers[index]

    def give(self, index: int, event: torch.cuda.Event | None) -> None:
        self._free.put((index, event))


@dataclass
class StreamStats:
    """What one streaming read did: bytes, chunks, workers, and milliseconds per stage (see the module)."""

    payload_bytes: int
    chunks: int
    workers: int
    load_ms: float = 0.0
    fetch_ms: float = 0.0  # summed over chunks
    verify_ms: float = 0.0
    wait_ms: float = 0.0
    h2d_ms: float = 0.0  # copy-engine time, from events
    h2d_events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = field(default_factory=list, repr=False)

    def per_worker(self, stage_ms: float) -> float:
        """A stage's summed time spread over the workers: how long it would take alone, in parallel."""
        return stage_ms / self.workers


class Loader:
    """What every streaming read of one tier reuses: its pinned slots, its worker threads and its
    copy stream. Made at a tier's first streaming read (and again only if the chunk size
    changes), so a timed read creates none of them."""

    def __init__(self, workers: int, slots: int, slot_bytes: int, device: torch.device):
        self.workers, self.device, self.cuda = workers, device, device.type == "cuda"
        self.pool = PinnedPool(slots, slot_bytes, device)
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="kvbench-stream")
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None

    def load(self, fetch: Fetch, payload_offset: int, chunks: ChunkList, sink: Sink) -> StreamStats:
        """Fetch, verify and copy every chunk of a payload that starts at ``payload_offset`` in the object.

        Returns when every copy has finished. Raises :class:`ChunkError` (after the copies in
        flight end) if any chunk fails its digest; the device bytes are then not to be used.
        """
        stats = StreamStats(chunks.payload_bytes, len(chunks.digests), self.workers)
        pool, copy_stream = self.pool, self.copy_stream
        lock = threading.Lock()

        def one(item: tuple[int, tuple[int, int]]) -> None:
            index, (start, end) = item
            t0 = time.perf_counter()
            slot, buf = pool.take()
            t1 = time.perf_counter()
            event = None
            try:
                host = buf.numpy().data
                at = fetch(payload_offset + start, end - start, host)
                t2 = time.perf_counter()
                chunks.check(index, host[at : at + end - start])
                t3 = time.perf_counter()
                chunk = buf[at : at + end - start]
                if copy_stream is not None:
                    begin, event = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    with lock, torch.cuda.stream(copy_stream):  # one chunk's events bracket its copy alone
                        begin.record(copy_stream)
                        sink(start, end, chunk)
                        event.record(copy_stream)
                        stats.h2d_events.append((begin, event))
                else:
                    sink(start, end, chunk)
            finally:
                pool.give(slot, event)
            with lock:
                stats.wait_ms += (t1 - t0) * 1e3
                stats.fetch_ms += (t2 - t1) * 1e3
                stats.verify_ms += (t3 - t2) * 1e3

        start_time = time.perf_counter()
        try:
            list(self.executor.map(one, enumerate(chunks.spans())))
        finally:
            if copy_stream is not None:
                copy_stream.synchronize()
        stats.load_ms = (time.perf_counter() - start_time) * 1e3
        if copy_stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(copy_stream)
            stats.h2d_ms = sum(b.elapsed_time(e) for b, e in stats.h2d_events)
        return stats

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def byte_sink(destinations: list[tuple[int, torch.Tensor]]) -> Sink:
    """A sink that writes payload bytes into device tensors laid out back to back.

    ``destinations``: ``(payload offset, tensor)`` in payload order, each tensor contiguous;
    a chunk that straddles tensors is split across them.
    """
    flat = [(offset, t.view(-1).view(torch.uint8)) for offset, t in destinations]

    def sink(start: int, end: int, chunk: torch.Tensor) -> None:
        for offset, target in flat:
            lo, hi = max(start, offset), min(end, offset + target.numel())
            if lo < hi:
                target[lo - offset : hi - offset].copy_(chunk[lo - start : hi - start], non_blocking=True)

    return sink


__all__ = ["ChunkError", "Fetch", "Loader", "PinnedPool", "Sink", "StreamStats", "byte_sink"]
