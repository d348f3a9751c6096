"""Files under a folder that git tracks: the committed outputs a command must not rewrite unasked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def tracked_files(folder: str | os.PathLike) -> list[str]:
    """Paths (relative to ``folder``) of the files git tracks under ``folder``; empty when the folder
    does not exist, is not in a git work tree, or git is not installed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", "."], cwd=folder, capture_output=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [p for p in out.decode("utf-8", "surrogateescape").split("\0") if p]
