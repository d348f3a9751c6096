"""Atomic file writes: a temporary sibling, fsync, rename; on any failure no partial file remains."""

from __future__ import annotations

import os
from pathlib import Path

WRITE_CHUNK = 64 << 20


def atomic_write(path: str | os.PathLike, data) -> Path:
    """Write the bytes-like ``data`` to ``path`` so readers see the old file or the whole new one.

    Raises
    ------
    OSError
        As raised by the write (e.g. ``ENOSPC``); the temporary file is removed first.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view, done = memoryview(data).cast("B"), 0
            while done < len(view):  # os.write may write less than asked
                done += os.write(fd, view[done:done + WRITE_CHUNK])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
