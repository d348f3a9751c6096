"""git, asked from Python: the checkout's commit for provenance, and the files a folder holds that
git tracks (the committed outputs a command must not rewrite unasked). No torch: the report uses it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kvbench


def git(*args: str, cwd: str | os.PathLike | None = None) -> str | None:
    """``git ARGS`` run in ``cwd`` (default: the package's own checkout): its output, stripped, or None
    where git is missing, times out, fails, or the folder is not in a work tree."""
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd or Path(kvbench.__file__).parent, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def tracked_files(folder: str | os.PathLike) -> list[str]:
    """Paths (relative to ``folder``) of the files git tracks under ``folder``; empty when the folder
    does not exist, is not in a git work tree, or git is not installed."""
    if not Path(folder).is_dir():
        return []
    listing = git("ls-files", "-z", "--", ".", cwd=folder)
    return [p for p in (listing or "").split("\0") if p]
