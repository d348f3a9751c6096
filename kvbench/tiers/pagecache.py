"""Cold reads: drop one file's pages from the page cache, and check that it worked.

``posix_fadvise(POSIX_FADV_DONTNEED)`` after ``fsync`` evicts the file's clean pages on most
local filesystems; where pages survive and we are root, ``/proc/sys/vm/drop_caches`` drops
the whole page cache. ``mincore(2)`` on a mapping of the file tells how many pages are still
resident, so each cold read records whether it really started cold.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
_MAP_FAILED = ctypes.c_void_p(-1).value
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def resident_fraction(path: str | os.PathLike) -> float:
    """Fraction of the file's pages in the page cache (mapping it reads no data)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0.0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, _MAP_FAILED):
            raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
        try:
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = ctypes.create_string_buffer(pages)
            if _libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore of {path} failed")
            return sum(b & 1 for b in vec.raw) / pages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


def drop_file_pages(path: str | os.PathLike) -> tuple[str, bool]:
    """Evict ``path`` from the page cache.

    Returns
    -------
    method : str
        ``fadvise`` or ``drop_caches`` (the one that left the file cold), or ``none``.
    ok : bool
        Whether no page of the file is resident afterwards.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if resident_fraction(path) == 0.0:
        return "fadvise", True
    if os.access(DROP_CACHES, os.W_OK):
        os.sync()
        DROP_CACHES.write_text("1\n")
        if resident_fraction(path) == 0.0:
            return "drop_caches", True
    return "none", False
