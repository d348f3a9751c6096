"""Where rows go: ``rows.jsonl`` that survives kills and concurrent jobs, resume by point id, and
``manifest.json`` with one entry per job that wrote into the folder, and the ``RECIPE`` made from it.

Every change to a run folder's files happens under an OS file lock (``.lock``, ``flock`` through
the ``filelock`` package), so jobs sharing a folder (a sweep split over GPUs, a resumed run
beside a running one) never lose each other's rows or manifest entries. A change rewrites the
file to a temporary sibling and renames it over the original (:func:`kvbench.rows.atomic.atomic_write`),
so a killed process never leaves half a line. A line that is not a row (not JSON, or JSON
without a string ``point_id`` and a known ``status``; damaged by hand or by a disk) is never
dropped: the next append moves it to ``rows.rejected.jsonl``, and the resume skips it with a
warning (:func:`load_rows`, the reports' reader of rows of any vintage, takes any JSON object).
A ``manifest.json`` that is not JSON or not a list of jobs is renamed aside and a new one
begun. A write that fails (``ENOSPC``, ``EIO``) raises :class:`StoreWriteError`, one line
naming the file; the rows committed before it stay, and the next run resumes from them.
Every string written is redacted (:mod:`kvbench.rows.redact`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

from kvbench.rows.atomic import atomic_write
from kvbench.rows.recipes import RECIPE_FILE, recipe_text
from kvbench.rows.redact import redact, redact_all
from kvbench.rows.schema import STATUSES

ROWS_FILE = "rows.jsonl"
REJECTED_FILE = "rows.rejected.jsonl"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"

log = logging.getLogger(__name__)


class StoreWriteError(RuntimeError):
    """A run folder's file could not be written (disk full, I/O error); the message is one line."""


class ManifestShapeError(ValueError):
    """``manifest.json`` is JSON but not a list of jobs."""


@contextlib.contextmanager
def _writing(path: Path, rows_path: Path):
    """Turn an OS error while writing ``path`` into one :class:`StoreWriteError` line naming it."""
    try:
        yield
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "error")
        why = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc)).lower()
        raise StoreWriteError(
            f"cannot write {path}: {why} ({name}); nothing committed was lost: the rows in {rows_path} "
            "are kept and the next run resumes from them"
        ) from exc


def is_row(value: Any) -> bool:
    """A JSON value the readers can use as a row: an object with a string point_id and a known status."""
    return isinstance(value, dict) and isinstance(value.get("point_id"), str) and value.get("status") in STATUSES


def point_id(coordinates: dict[str, Any]) -> str:
    """Stable hash (16 hex) of a point's coordinates (model, dtype, device, length, tier, ...)."""
    return hashlib.sha256(json.dumps(coordinates, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _clean(value: Any) -> Any:
    """NaN and inf become null so every line is strict JSON; strings lose credentials."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return redact(value) if isinstance(value, str) else value


def parse_rows(path: Path, accept: Callable[[Any], bool] = is_row) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The rows of a ``rows.jsonl`` (values ``accept`` takes: :func:`is_row` for the store), and its
    other lines as bytes; blank lines ignored."""
    rows, bad = [], []
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            row = None
        if accept(row):
            rows.append(row)
        else:
            bad.append(line)
    return rows, bad


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The jobs a ``manifest.json`` lists, oldest first (an older single-job file is one); none
    where ``path`` does not exist. Reads only: a reader of committed folders creates nothing.

    Raises
    ------
    ValueError
        If ``manifest.json`` is not JSON (``json.JSONDecodeError``) or not a list of jobs
        (:class:`ManifestShapeError`: ``[]``, ``null``, ``{"jobs": 5}``).
    """
    if not path.exists():
        return []
    data = json.loads(path.read_bytes())
    jobs = data["jobs"] if isinstance(data, dict) and "jobs" in data else [data]
    if not (isinstance(jobs, list) and all(isinstance(j, dict) and j for j in jobs)):
        raise ManifestShapeError("is not a manifest (a list of jobs)")
    return jobs


class ResultStore:
    """The rows, config and manifest of one run folder."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.rows_path = self.run_dir / ROWS_FILE
        with _writing(self.run_dir, self.rows_path):
            self.run_dir.mkdir(parents=True, exist_ok=True)
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
        self.extend([row])

    def extend(self, new: list[dict[str, Any]]) -> int:
        """Add rows ``new`` in one write, each replacing any earlier row of its point id; returns
        how many earlier rows were kept."""
        replaced = {r.get("point_id") for r in new}
        with _writing(self.rows_path, self.rows_path), self.lock:
            self._remove_stale_temporaries()
            rows, bad = parse_rows(self.rows_path) if self.rows_path.exists() else ([], [])
            if bad:
                self._reject(bad)
            kept = [r for r in rows if r.get("point_id") not in replaced]
            lines = [json.dumps({k: _clean(v) for k, v in r.items()}) for r in [*kept, *new]]
            atomic_write(self.rows_path, ("\n".join(lines) + "\n").encode())
        return len(kept)

    def _reject(self, lines: list[bytes]) -> None:
        """Append unreadable lines, byte for byte (credentials redacted), to ``rows.rejected.jsonl``
        (durably) before they leave ``rows.jsonl``."""
        with _writing(self.rejected_path, self.rows_path), open(self.rejected_path, "ab") as fh:
            for line in lines:
                fh.write(redact(line.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        log.warning("%s: %d unreadable line(s) moved to %s", self.rows_path, len(lines), self.rejected_path)

    def _free_name(self, stem: str, suffix: str) -> Path:
        """``stem + suffix`` in the run folder, or ``stem.N + suffix`` for the first N not taken."""
        candidates = (f"{stem}{suffix}", *(f"{stem}.{n}{suffix}" for n in range(1, 10_000)))
        return next(p for p in (self.run_dir / c for c in candidates) if not p.exists())

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writers killed mid-write (no live writer has one: it would hold the lock)."""
        for stale in self.run_dir.glob(f".{ROWS_FILE}.*.tmp"):
            stale.unlink(missing_ok=True)

    def write_config(self, text: str) -> None:
        """The resolved config (YAML text), credentials redacted."""
        with _writing(self.run_dir / CONFIG_FILE, self.rows_path):
            atomic_write(self.run_dir / CONFIG_FILE, redact(text).encode())

    def manifests(self) -> list[dict[str, Any]]:
        """One entry per job that wrote into this folder, oldest first (:func:`read_manifest`)."""
        return read_manifest(self.manifest_path)

    def record_job(self, job: dict[str, Any]) -> None:
        """Add or update (same ``host``, ``pid`` and ``start_time``) this job's manifest entry.

        An unreadable ``manifest.json`` is kept aside (``manifest.rejected.json``, or
        ``manifest.rejected.N.json`` beside earlier ones) and a new one begun, with a warning.
        """
        key = lambda j: (j.get("host"), j.get("pid"), j.get("start_time"))
        with _writing(self.manifest_path, self.rows_path), self.lock:
            try:
                jobs = self.manifests()
            except ValueError as exc:
                aside = self._free_name("manifest.rejected", ".json")
                os.replace(self.manifest_path, aside)
                why = str(exc) if isinstance(exc, ManifestShapeError) else "is not JSON"
                log.warning("%s %s: kept as %s", self.manifest_path, why, aside.name)
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
            rows, bad = parse_rows(f, accept=lambda value: isinstance(value, dict))  # rows of any vintage
            if bad:
                log.warning("%s: skipped %d unreadable line(s)", f, len(bad))
            if not rows:
                continue
            # read_json (not DataFrame(rows)) keeps the column types every reader was written against
            df = pd.read_json(io.StringIO("\n".join(json.dumps(r) for r in rows)), lines=True)
            df["run_dir"] = str(f.parent)
            frames.append(df)
    # copy(): the concat of many vintages' columns is a frame of many small blocks, which every
    # later added column would warn about; one block per dtype
    return pd.concat(frames, ignore_index=True).copy() if frames else pd.DataFrame()
