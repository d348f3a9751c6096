"""Which run folders are the committed reference results, and which rows a reader reads by default.

A results tree may hold a ``REFERENCE`` file: one run folder per line, relative to the tree (``#``
starts a comment). The report (``python -m kvbench.report``) and ``+exp=economics`` read only those
folders by default, so a local run (``make run``, ``+exp=smoke``, a contended CPU sweep) never
leaks into the committed figures, tables and dollars. They read everything under the tree only
when asked (``--include-local``, ``economics.include_local=true``), and any folder given by path
that is not such a tree (a run folder, a tree of one's own) is read whole.

Why a list and not "whatever git tracks": it works without git (an archive, an installed copy),
a change to it is one reviewed line in a diff, and ``tests/test_reference.py`` fails when the list
and the folders git tracks under ``results/`` drift apart.
"""

from __future__ import annotations

import os
from pathlib import Path

REFERENCE_FILE = "REFERENCE"


def reference_folders(root: str | os.PathLike) -> list[Path] | None:
    """The run folders ``root/REFERENCE`` lists (None when there is no such file).

    Raises
    ------
    FileNotFoundError
        If a listed folder does not exist (a stale list fails loudly, never silently reads less).
    """
    listing = Path(root) / REFERENCE_FILE
    if not listing.is_file():
        return None
    folders = []
    for line in listing.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        folder = Path(root) / name
        if not folder.is_dir():
            raise FileNotFoundError(f"{listing} lists {name!r}, which is not a folder under {root}")
        folders.append(folder)
    return folders


def result_paths(root: str | os.PathLike, include_local: bool = False) -> list[Path]:
    """What to read under ``root``: its reference folders, or all of it when it has no ``REFERENCE``
    file (a run folder, a tree of one's own) or when ``include_local`` asks for every run."""
    folders = None if include_local else reference_folders(root)
    return [Path(root)] if folders is None else folders
