"""Host link calibration: what this host's storage, hash and bus links deliver, measured once.

A tier's read crosses links in a pipeline (storage to host memory, the chunk digests, host
to device); its floor is its bytes over the slowest of them (:func:`tier_floor_ms`), the way
a device floor is bytes over HBM bandwidth. Each rate is measured with the same parallelism
the streaming loader uses (``workers`` threads), on random bytes, best of a few repeats, and
cached beside the device calibration, keyed by host, directory's filesystem, size and workers.
"""

from __future__ import annotations

import functools
import json
import mmap
import os
import platform
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from kvbench.kv.chunks import xxh3_64
from kvbench.measure.calibrate import CACHE_FILE, h2d_gbps
from kvbench.rows.atomic import atomic_write

SLICE = 16 << 20  # bytes per request, as the loader's chunks
ALIGN = 4096  # O_DIRECT wants offsets, lengths and buffers aligned to the block size


@dataclass(frozen=True)
class HostLinks:
    """Measured rates of one host's links, GB/s (1e9 B/s), with ``workers`` threads each."""

    key: str
    workers: int
    pagecache_gbps: float  # buffered reads of a file in the page cache
    direct_gbps: float | None  # O_DIRECT reads (the disk itself); None where O_DIRECT is refused
    hash_gbps: float  # XXH3-64 of host memory
    h2d_gbps: float | None  # pinned host-to-device copies; None off CUDA


def aligned_buffer(nbytes: int) -> memoryview:
    """A writable, page-aligned ``(nbytes,)`` host buffer (anonymous mmap), as O_DIRECT requires."""
    return memoryview(mmap.mmap(-1, max(ALIGN, -(-nbytes // ALIGN) * ALIGN)))


def _parallel(workers: int, fn, jobs: list) -> float:
    """Seconds for ``workers`` threads to run ``fn`` over ``jobs``."""
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, jobs))
    return time.perf_counter() - start


def read_gbps(path: Path, nbytes: int, workers: int, direct: bool) -> float | None:
    """Best of three parallel reads of ``path``'s first ``nbytes`` (``SLICE`` per request), GB/s."""
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    except OSError:
        return None
    buffers = [aligned_buffer(SLICE) for _ in range(workers)]
    offsets = list(range(0, nbytes, SLICE))

    def read_share(first: int) -> None:
        for offset in offsets[first::workers]:
            os.preadv(fd, [buffers[first]], offset)

    try:
        return max(nbytes / _parallel(workers, read_share, list(range(workers))) / 1e9 for _ in range(3))
    except OSError:
        return None
    finally:
        os.close(fd)


def hash_gbps(nbytes: int, workers: int) -> float:
    """Best of three XXH3-64 passes over ``nbytes`` of random host memory in ``SLICE`` pieces, GB/s."""
    data = memoryview(np.random.default_rng(0).bytes(nbytes))
    slices = [data[a : a + SLICE] for a in range(0, nbytes, SLICE)]
    return max(nbytes / _parallel(workers, xxh3_64, slices) / 1e9 for _ in range(3))


def _key(directory: Path, device: torch.device, nbytes: int, workers: int) -> str:
    fs = os.stat(directory).st_dev
    return f"links|{platform.node()}|{os.cpu_count()}cores|fs{fs}|{device.type}|{nbytes}B|{workers}workers"


@functools.cache
def host_links(directory: str, device: torch.device, workers: int, nbytes: int | None = None) -> HostLinks:
    """This host's link rates for a tier directory and a device, from the cache or measured now (seconds).

    ``nbytes`` (default 2 GiB with a GPU, 64 MiB without) is written once as a file of random
    bytes in ``directory``, read through the page cache and with O_DIRECT, then removed.
    """
    device = torch.device(device)
    nbytes = nbytes or ((2 << 30) if device.type == "cuda" else (64 << 20))
    nbytes = -(-nbytes // SLICE) * SLICE
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    key = _key(folder, device, nbytes, workers)
    try:
        cached = json.loads(CACHE_FILE.read_text())
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return HostLinks(**cached[key])
    path = folder / f"links-{uuid.uuid4().hex}.bin"
    try:
        atomic_write(path, np.random.default_rng(1).bytes(nbytes))
        read_gbps(path, nbytes, workers, direct=False)  # warm the page cache
        links = HostLinks(
            key=key,
            workers=workers,
            pagecache_gbps=read_gbps(path, nbytes, workers, direct=False) or 0.0,
            direct_gbps=read_gbps(path, nbytes, workers, direct=True),
            hash_gbps=hash_gbps(min(nbytes, 1 << 30), workers),
            h2d_gbps=h2d_gbps(device),
        )
    finally:
        path.unlink(missing_ok=True)
    cached[key] = asdict(links)
    CACHE_FILE.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(CACHE_FILE, json.dumps(cached, indent=2).encode())
    return links


def tier_floor_ms(
    nbytes: int,
    cpu_gbps: list[float | None],
    dma_gbps: list[float | None],
    reuse_floor_ms: float,
    fixed_ms: float = 0.0,
) -> float:
    """The least time a tier read of ``nbytes`` and its reuse can take on this host.

    Stages that the host's cores do (a page-cache read is a kernel memcpy, a digest, a
    socket's copies) share the same cores, each measured with all of them: their times add.
    Stages that a device does by DMA (a disk's O_DIRECT read, a host-to-device copy) overlap
    with them and with each other: the slowest one counts. Plus any fixed latency (a wide-area
    link's round trips) and the reuse floor on the device.
    """
    cpu_ms = sum(nbytes / (r * 1e9) * 1e3 for r in cpu_gbps if r)
    dma_ms = max((nbytes / (r * 1e9) * 1e3 for r in dma_gbps if r), default=0.0)
    return max(cpu_ms, dma_ms) + fixed_ms + reuse_floor_ms
