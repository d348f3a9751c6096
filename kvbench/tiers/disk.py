"""Tier ``disk``: the codec's blob as a file on local disk, read cold or warm.

Cold reads drop the file's pages before every read (:mod:`kvbench.tiers.pagecache`) and
record whether that worked; a streaming cold read also opens the file with ``O_DIRECT``
(page-aligned requests into page-aligned pinned slots) where the filesystem allows it, so
no page is cached behind the reader's back. Warm reads go through the page cache. The
streaming path reads chunks with ``pread`` from several threads; the serial one reads the
whole file into one pinned staging buffer (:class:`kvbench.tiers.base.BlobTier`). Every chunk
is verified on the host as it lands, which is why GPUDirect Storage (which would bypass the
host) is not used: the digests would have nothing to check.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from typing import Any

import torch

from kvbench.measure.links import ALIGN, HostLinks, host_links
from kvbench.rows.atomic import atomic_write
from kvbench.tiers.base import BlobTier, LinkPath, TierError
from kvbench.tiers.pagecache import drop_file_pages

DEFAULT_DIR = "~/.cache/kvbench/tier-disk"


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
        self.cold_method: str | None = None
        self.cold_ok = True
        self.direct: bool | None = None  # whether O_DIRECT was taken (streaming cold reads)
        self._fd: int | None = None

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

    def _stream(self, timer, dest):
        """A streaming read through one descriptor: O_DIRECT when cold (the page cache bypassed), where allowed."""
        flags = os.O_RDONLY
        if self.cold and self.direct is not False:
            try:
                self._fd = os.open(self.path, flags | os.O_DIRECT)
                self.direct = True
            except OSError:  # tmpfs and some overlays refuse O_DIRECT: dropped pages and buffered reads
                self.direct = False
        if self._fd is None:
            self._fd = os.open(self.path, flags)
        try:
            return super()._stream(timer, dest)
        finally:
            os.close(self._fd)
            self._fd = None

    def fetch_range(self, offset: int, nbytes: int, out: memoryview) -> int:
        fd = self._fd
        if fd is None:
            raise TierError("disk tier: a ranged read outside a streaming read has no open file")
        start = offset
        if self.direct and self.cold:  # O_DIRECT: whole pages, from a page boundary
            start = offset - offset % ALIGN
        length = nbytes + (offset - start)
        if self.direct and self.cold:
            length = -(-length // ALIGN) * ALIGN
        got = 0
        while got < length:
            n = os.preadv(fd, [out[got:length]], start + got)
            if n == 0:
                break
            got += n
        if got < offset - start + nbytes:
            raise TierError(f"disk tier: {self.path.name} ended after {start + got} bytes, expected {offset + nbytes}")
        return offset - start

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
        fields: dict[str, Any] = {"tier_reader": "posix", "link_gbps": self.link_path(self.links()).link("storage")}
        if self.cold:
            fields.update(cold_method=self.cold_method, cold_ok=self.cold_ok)
            if self.streams():
                fields["cold_direct"] = bool(self.direct)
        return fields

    def links(self) -> HostLinks:
        """This host's measured links, the storage ones for the filesystem under ``tier.dir``."""
        return host_links(str(self.dir), self.device, self.workers)

    def link_path(self, links: HostLinks) -> LinkPath:
        if self.cold:  # O_DIRECT: the disk reads by DMA, beside the copies; the digests take the cores
            return LinkPath(cpu={"hash": links.hash_gbps}, dma={"storage": links.direct_gbps, "h2d": links.h2d_gbps})
        # a page-cache read is a kernel memcpy on the same cores as the digests
        return LinkPath(cpu={"storage": links.pagecache_gbps, "hash": links.hash_gbps}, dma={"h2d": links.h2d_gbps})

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
