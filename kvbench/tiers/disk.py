"""Tier ``disk``: the codec's blob as a file on local disk, read cold or warm.

Cold reads drop the file's pages before every read (:mod:`kvbench.tiers.pagecache`) and
record whether that worked. Reads are plain POSIX reads into the reader's pinned staging
buffer (:class:`kvbench.tiers.base.BlobTier`), which is where
every codec takes its blob (:mod:`kvbench.codecs.base`: even GPU codecs verify the blob on
the host before copying it), so GPUDirect Storage would have nothing to bypass yet.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from typing import Any

import torch

from kvbench.atomic import atomic_write
from kvbench.tiers.base import BlobTier, TierError
from kvbench.tiers.pagecache import drop_file_pages

DEFAULT_DIR = "~/.cache/kvbench/tier-disk"

class DiskTier(BlobTier):
    name = "disk"

    def __init__(self, codec, device: torch.device, *, directory: str | None, cold: bool):
        super().__init__(codec, device)
        self.dir = Path(os.path.expanduser(directory or DEFAULT_DIR))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{uuid.uuid4().hex}.kv"
        self.cold = cold
        self.cold_method, self.cold_ok = None, True

    def store(self, blob: bytes) -> None:
        try:
            atomic_write(self.path, blob)
        except OSError as exc:
            reason = "disk full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
            raise TierError(f"disk tier: writing {self.path} failed ({reason}); no partial file left") from exc

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
        fields: dict[str, Any] = {"tier_reader": "posix"}
        if self.cold:
            fields.update(cold_method=self.cold_method, cold_ok=self.cold_ok)
        return fields

    def close(self) -> None:
        self.path.unlink(missing_ok=True)
