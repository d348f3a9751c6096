"""Tier ``disk``: the codec's blob as a file on local disk, read cold or warm.

Cold reads drop the file's pages before every read (:mod:`kvbench.tiers.pagecache`) and
record whether that worked. Reads are plain POSIX reads into the reader's pinned staging
buffer (:class:`kvbench.tiers.base.BlobTier`), which is where
every codec takes its blob (:mod:`kvbench.codecs.base`: even GPU codecs verify the blob on
the host before copying it), so GPUDirect Storage would have nothing to bypass yet.
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kvbench.rows.atomic import atomic_write
from kvbench.tiers.base import BlobTier, TierError
from kvbench.tiers.pagecache import drop_file_pages

DEFAULT_DIR = "~/.cache/kvbench/tier-disk"
READ_CHUNK = 16 << 20


@functools.cache
def direct_read_peak_gbps(directory: str, nbytes: int, readers: int = 4) -> float | None:
    """What the disk under ``directory`` delivers, GB/s (1e9 B): a fresh file of ``nbytes``
    random bytes read once with ``O_DIRECT`` (no page cache) by ``readers`` threads at once.

    The tier's own reads go through the page cache one request at a time, so this is the
    ceiling they are compared with. None where ``O_DIRECT`` is refused (tmpfs, some overlays).
    """
    path = Path(directory) / f"calibrate-{uuid.uuid4().hex}.bin"
    nbytes = -(-nbytes // READ_CHUNK) * READ_CHUNK  # whole aligned chunks
    try:
        atomic_write(path, np.random.default_rng(0).bytes(nbytes))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        path.unlink(missing_ok=True)
        return None

    def read_share(first: int) -> None:
        buf = mmap.mmap(-1, READ_CHUNK)  # page-aligned, as O_DIRECT requires
        for offset in range(first * READ_CHUNK, nbytes, readers * READ_CHUNK):
            os.preadv(fd, [buf], offset)

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(readers) as pool:
            list(pool.map(read_share, range(readers)))
        return nbytes / (time.perf_counter() - start) / 1e9
    except OSError:
        return None
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)


def _why(exc: OSError) -> str:
    """An OS error in a few words, with its errno name: ``disk full (ENOSPC)``."""
    name = errno.errorcode.get(exc.errno or 0)
    words = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc)).lower()
    return f"{words} ({name})" if name else words


class DiskTier(BlobTier):
    name = "disk"

    def __init__(self, codec, device: torch.device, *, directory: str | None, cold: bool):
        super().__init__(codec, device)
        self.dir = Path(os.path.expanduser(directory or DEFAULT_DIR))
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TierError(f"disk tier: cannot create tier.dir={self.dir}: {_why(exc)}") from exc
        self.path = self.dir / f"{uuid.uuid4().hex}.kv"
        self.cold = cold
        self.cold_method, self.cold_ok = None, True

    def store(self, blob: bytes) -> None:
        try:
            atomic_write(self.path, blob)
        except OSError as exc:
            raise TierError(
                f"disk tier: cannot write to tier.dir={self.dir}: {_why(exc)}; no partial file left"
            ) from exc

    def prepare(self) -> None:
        if self.cold:
            method, ok = drop_file_pages(self.path)
            self.cold_method, self.cold_ok = method, self.cold_ok and ok

    def fetch(self) -> memoryview:
        with open(self.path, "rb", buffering=0) as f:
            buf = self.staging(os.fstat(f.fileno()).st_size)
            got = 0
            while got < len(buf):  # one read() returns at most ~2 GiB
                n = f.readinto(buf[got:])
                if not n:
                    break
                got += n
        return buf[:got]

    def stored_bytes(self) -> int:
        return self.path.stat().st_size

    def info(self) -> dict[str, Any]:
        size = min(max(self.stored_bytes(), 64 << 20), 1 << 30)  # the object's size, within bounds
        fields: dict[str, Any] = {"tier_reader": "posix", "link_gbps": direct_read_peak_gbps(str(self.dir), size)}
        if self.cold:
            fields.update(cold_method=self.cold_method, cold_ok=self.cold_ok)
        return fields

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
