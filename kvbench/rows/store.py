"""Where rows go: ``rows.jsonl`` that survives kills and concurrent jobs, resume by point id, and
``manifest.json`` with one entry per job that wrote into the folder, and the ``RECIPE`` made from it.

Every change to a run folder's files happens under an OS file lock (``.lock``, ``flock`` through
the ``filelock`` package), so jobs sharing a folder (a sweep split over GPUs, a resumed run
beside a running one) never lose each other's rows or manifest entries. A change rewrites the
file to a temporary sibling and renames it over the original (:func:`kvbench.rows.atomic.atomic_write`),
so a killed process never leaves half a line. A line that is not a JSON row (damaged by hand or
by a disk) is never dropped: the next append moves it to ``rows.rejected.jsonl``, and readers
skip it with a warning. Every string written is redacted (:mod:`kvbench.rows.redact`).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from kvbench.rows.atomic import atomic_write
from kvbench.rows.recipes import RECIPE_FILE, recipe_text
from kvbench.rows.redact import redact, redact_all

ROWS_FILE = "rows.jsonl"
REJECTED_FILE = "rows.rejected.jsonl"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"

log = logging.getLogger(__name__)


def point_id(coordinates: dict[str, Any]) -> str:
    """Stable hash (16 hex) of a point's coordinates (model, dtype, device, length, tier, ...)."""
    return hashlib.sha256(json.dumps(coordinates, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _clean(value: Any) -> Any:
    """NaN and inf become null so every line is strict JSON; strings lose credentials."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return redact(value) if isinstance(value, str) else value


def parse_rows(path: Path) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The rows of a ``rows.jsonl``, and its lines that are not JSON objects, as raw bytes (blank lines ignored)."""
    rows, bad = [], []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(line)
    return rows, bad


class ResultStore:
    """The rows, config and manifest of one run folder."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.rows_path = self.run_dir / ROWS_FILE
        self.rejected_path = self.run_dir / REJECTED_FILE
        self.manifest_path = self.run_dir / MANIFEST_FILE
        self.lock = FileLock(self.run_dir / LOCK_FILE)

    def rows(self) -> list[dict[str, Any]]:
        """Every readable row (a rename replaces the file whole, so no lock is needed to read)."""
        if not self.rows_path.exists():
            return []
        rows, bad = parse_rows(self.rows_path)
        if bad:
            log.warning(
                "%s: skipping %d unreadable line(s); the next write moves them to %s",
                self.rows_path,
                len(bad),
                REJECTED_FILE,
            )
        return rows

    def done(self) -> set[str]:
        """Point ids already measured with status ok."""
        return {r["point_id"] for r in self.rows() if r.get("status") == "ok"}

    def append(self, row: dict[str, Any]) -> None:
        """Add ``row``, replacing any earlier row of the same point id, atomically and under the lock."""
        with self.lock:
            self._remove_stale_temporaries()
            rows, bad = parse_rows(self.rows_path) if self.rows_path.exists() else ([], [])
            if bad:
                self._reject(bad)
            kept = [r for r in rows if r.get("point_id") != row.get("point_id")]
            lines = [json.dumps({k: _clean(v) for k, v in r.items()}) for r in [*kept, row]]
            atomic_write(self.rows_path, ("\n".join(lines) + "\n").encode())

    def _reject(self, lines: list[bytes]) -> None:
        """Append unreadable lines, byte for byte (credentials redacted), to ``rows.rejected.jsonl``
        (durably) before they leave ``rows.jsonl``."""
        with open(self.rejected_path, "ab") as fh:
            for line in lines:
                fh.write(redact(line.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.warning("%s: %d unreadable line(s) moved to %s", self.rows_path, len(lines), self.rejected_path)

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writers killed mid-write (no live writer has one: it would hold the lock)."""
        for stale in self.run_dir.glob(f".{ROWS_FILE}.*.tmp"):
            stale.unlink(missing_ok=True)

    def write_config(self, text: str) -> None:
        """The resolved config (YAML text), credentials redacted."""
        atomic_write(self.run_dir / CONFIG_FILE, redact(text).encode())

    def manifests(self) -> list[dict[str, Any]]:
        """One entry per job that wrote into this folder, oldest first (an older single-job file is one).

        Raises
        ------
        ValueError
            If ``manifest.json`` is not JSON.
        """
        if not self.manifest_path.exists():
            return []
        data = json.loads(self.manifest_path.read_bytes())
        return data["jobs"] if isinstance(data, dict) and "jobs" in data else [data]

    def record_job(self, job: dict[str, Any]) -> None:
        """Add or update (same ``host``, ``pid`` and ``start_time``) this job's manifest entry.

        An unreadable ``manifest.json`` is kept as ``manifest.rejected.json`` and a new one begun.
        """
        key = lambda j: (j.get("host"), j.get("pid"), j.get("start_time"))
        with self.lock:
            try:
                jobs = self.manifests()
            except ValueError:
                os.replace(self.manifest_path, self.run_dir / "manifest.rejected.json")
                log.warning("%s is not JSON: kept as manifest.rejected.json", self.manifest_path)
                jobs = []
            jobs = [j for j in jobs if key(j) != key(job)]
            jobs.append(redact_all(job))
            jobs.sort(key=lambda j: str(j.get("start_time")))
            text = json.dumps({"jobs": jobs}, indent=2, default=str)
            atomic_write(self.manifest_path, (text + "\n").encode())
            atomic_write(self.run_dir / RECIPE_FILE, recipe_text(jobs).encode())


def load_rows(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """All rows under the given files or folders (searched for ``rows.jsonl``) as one DataFrame.

    Unreadable lines are skipped with a warning naming the file.
    """
    frames = []
    for p in map(Path, paths):
        files = [p] if p.is_file() else sorted(p.rglob(ROWS_FILE))
        for f in files:
            rows, bad = parse_rows(f)
            if bad:
                log.warning("%s: skipped %d unreadable line(s)", f, len(bad))
            if not rows:
                continue
            # read_json (not DataFrame(rows)) keeps the column types every reader was written against
            df = pd.read_json(io.StringIO("\n".join(json.dumps(r) for r in rows)), lines=True)
            df["run_dir"] = str(f.parent)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
