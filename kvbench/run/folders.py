"""Run folders that a bad config would leave empty are removed again; Hydra's sweep file loses its credentials.

Hydra creates a job's run folder (and opens its log there) before kvbench validates the
config, and a multirun's sweeper writes ``multirun.yaml`` into the sweep folder before any
job is composed. When the config then turns out invalid, whatever was made for it alone
goes; a folder that held anything before (rows of an earlier run) is never touched.

``multirun.yaml`` holds the command line's overrides as given, a tier URL's password with
them; :class:`SweepFolderGuard` rewrites it redacted when the first job starts (before any
measurement), when the sweep ends, and when it fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode

from kvbench.rows.atomic import atomic_write
from kvbench.rows.redact import redact

SWEEP_FILE = "multirun.yaml"


def is_fresh(run_dir: Path) -> bool:
    """Nothing in the folder but empty files: Hydra made it (and opened its log) for this job."""
    return all(p.is_file() and p.stat().st_size == 0 for p in run_dir.iterdir())


def _only_sweep_file(folder: Path) -> bool:
    return folder.is_dir() and {p.name for p in folder.iterdir()} <= {SWEEP_FILE}


def redact_file(path: Path) -> None:
    """Rewrite ``path`` (atomically) with its credentials redacted, if it holds any."""
    try:
        text = path.read_text(errors="surrogateescape")
    except OSError:  # not there (yet): nothing to redact
        return
    clean = redact(text)
    if clean != text:
        atomic_write(path, clean.encode(errors="surrogateescape"))


def remove_run_dir(run_dir: Path, results_dir: Path) -> None:
    """Remove a run folder, then each parent below ``results_dir`` that holds nothing else.

    A sweep folder holding only Hydra's copy of the sweep config counts as empty.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    stop = results_dir.resolve()
    parent = run_dir.resolve().parent
    while stop in parent.parents and _only_sweep_file(parent):
        shutil.rmtree(parent)
        parent = parent.parent


class SweepFolderGuard(Callback):
    """Remembers a sweep folder that Hydra creates, so a sweep that fails to compose can remove it.

    Listed under ``hydra.callbacks`` in ``conf/config.yaml``; Hydra instantiates it, so what
    it learns is kept on the class.
    """

    created: Path | None = None
    sweep_dir: Path | None = None

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        SweepFolderGuard.created = None if sweep_dir.exists() else sweep_dir
        SweepFolderGuard.sweep_dir = sweep_dir

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:  # a launcher's job elsewhere finds the file by its config
            redact_file(Path(config.hydra.sweep.dir) / SWEEP_FILE)
        SweepFolderGuard.redact_sweep_file()

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        SweepFolderGuard.redact_sweep_file()

    @classmethod
    def redact_sweep_file(cls) -> None:
        """Redact the ``multirun.yaml`` of this process's sweep, if there is one."""
        if cls.sweep_dir is not None:
            redact_file(cls.sweep_dir / SWEEP_FILE)

    @classmethod
    def remove_if_empty(cls) -> None:
        """Remove the sweep folder this process created, if it holds only ``multirun.yaml``."""
        if cls.created is not None and _only_sweep_file(cls.created):
            shutil.rmtree(cls.created)
