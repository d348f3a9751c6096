"""Atomic file writes: a temporary sibling, fsync, rename; on any failure no partial file remains."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

WRITE_CHUNK = 64 << 20


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a crash of the machine right after keeps the new file)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data) -> Path:
    """Write the bytes-like ``data`` to ``path`` so readers see the old file or the whole new one.

    The temporary file has a unique name (``.{name}.XXXX.tmp``), so two processes writing the
    same path never write into one temporary file; the last rename wins.

    Raises
    ------
    OSError
        As raised by the write (e.g. ``ENOSPC``); the temporary file is removed first.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        try:
            os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be read by others
            view, done = memoryview(data).cast("B"), 0
            while done < len(view):  # os.write may write less than asked
                done += os.write(fd, view[done : done + WRITE_CHUNK])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path
