"""Where rows go: atomic ``rows.jsonl``, resume by point id, and the run's ``manifest.json``.

Rows are appended by rewriting the file to a temporary sibling and renaming it over the
original (``os.replace`` is atomic on POSIX), so a crash never leaves half a line. Runs hold
tens of rows, so the rewrite costs nothing measurable.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from kvbench.atomic import atomic_write

ROWS_FILE = "rows.jsonl"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.yaml"


def point_id(coordinates: dict[str, Any]) -> str:
    """Stable hash (16 hex) of a point's coordinates (model, dtype, device, length, tier, ...)."""
    return hashlib.sha256(json.dumps(coordinates, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _clean(value: Any) -> Any:
    """NaN and inf become null so every line is strict JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class ResultStore:
    """The rows of one run folder."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.rows_path = self.run_dir / ROWS_FILE

    def rows(self) -> list[dict[str, Any]]:
        """Every complete row in the file (a torn last line from an older writer is ignored)."""
        if not self.rows_path.exists():
            return []
        rows = []
        for line in self.rows_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def done(self) -> set[str]:
        """Point ids already measured with status ok."""
        return {r["point_id"] for r in self.rows() if r.get("status") == "ok"}

    def append(self, row: dict[str, Any]) -> None:
        """Add ``row``, replacing any earlier row of the same point id, atomically."""
        kept = [r for r in self.rows() if r.get("point_id") != row.get("point_id")]
        lines = [json.dumps({k: _clean(v) for k, v in r.items()}) for r in [*kept, row]]
        atomic_write(self.rows_path, ("\n".join(lines) + "\n").encode())


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    atomic_write(Path(run_dir) / MANIFEST_FILE, (json.dumps(manifest, indent=2, default=str) + "\n").encode())


def load_rows(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """All rows under the given files or folders (searched for ``rows.jsonl``) as one DataFrame."""
    frames = []
    for p in map(Path, paths):
        files = [p] if p.is_file() else sorted(p.rglob(ROWS_FILE))
        for f in files:
            df = pd.read_json(f, lines=True)
            df["run_dir"] = str(f.parent)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
