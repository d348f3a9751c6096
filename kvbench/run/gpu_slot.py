"""One GPU per job where the launcher starts every job at once on one host (``submitit_local``).

SLURM (``gpus_per_node: 1``) and Ray (``num_gpus: 1``) give each job a GPU of its own by
setting ``CUDA_VISIBLE_DEVICES``. Submitit's local executor does not: it starts all jobs at
once, each seeing the same ``gpus_per_node`` GPUs. This Hydra callback, which runs in the job
before the task, takes an exclusive lock on one of the visible GPUs (``flock`` on a per-GPU
lock file, through ``filelock``) and narrows ``CUDA_VISIBLE_DEVICES`` to it. A GPU then runs
one job at a time and the other jobs wait for a free one (with one GPU, they take turns); a
job that dies releases its GPU with its process. A job that sees no GPU is left alone. The
callback belongs to ``hydra/launcher=local_gpus`` only: under SLURM or Ray each job's
``CUDA_VISIBLE_DEVICES`` may renumber its own GPU from 0, so lock files named by it would
wrongly serialise jobs on different GPUs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)


def acquire_gpu(gpus: list[str], lock_dir: Path, poll_s: float = 0.5) -> tuple[str, FileLock]:
    """Wait for the first of ``gpus`` no other process holds; return it and its held lock."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    locks = {gpu: FileLock(lock_dir / f"gpu{gpu}.lock") for gpu in gpus}
    while True:
        for gpu, lock in locks.items():
            try:
                lock.acquire(timeout=0)
                return gpu, lock
            except Timeout:
                continue
        time.sleep(poll_s)


class OneGpuPerJob(Callback):
    """Hydra callback: pin this job to one free GPU among those ``CUDA_VISIBLE_DEVICES`` lists.

    Parameters
    ----------
    lock_dir : str, optional
        Where the per-GPU lock files live; every job on the host must use the same folder.
        Default: ``$TMPDIR/kvbench-gpu-locks``.
    """

    def __init__(self, lock_dir: str | None = None):
        self.lock_dir = Path(lock_dir or Path(tempfile.gettempdir()) / "kvbench-gpu-locks")
        self._lock: FileLock | None = None
        self._visible: str | None = None

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        self._visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [g.strip() for g in (self._visible or "").split(",") if g.strip()]
        if not gpus:
            return
        waited = time.monotonic()
        gpu, self._lock = acquire_gpu(gpus, self.lock_dir)
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # read when CUDA initialises, after this
        log.info("job pinned to GPU %s of %s (waited %.0f s)", gpu, self._visible, time.monotonic() - waited)

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            os.environ["CUDA_VISIBLE_DEVICES"] = self._visible or ""
