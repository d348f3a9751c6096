"""``python -m kvbench [+exp=NAME] [key=value ...]``: compose the config and run it.

Bad input ends in one line on stderr and nothing left behind: ``kvbench: config error: ...``
(exit 2) for an unknown group option or key, a bad value, a path that escapes ``results_dir``
or a failed preflight check, and ``kvbench: not available: ...`` (exit 2) for a hub dataset or
model that neither the Hub nor the local cache has, with no run folder created for it;
``kvbench: N of M points failed ...`` (exit 1) when a run measured nothing, its failed rows kept
with their reasons; ``kvbench: cannot write PATH ...`` (exit 1) when the disk is full, committed
rows kept. Every console line, Hydra's included, is redacted (:mod:`kvbench.rows.redact`).
Hydra's multirun works as usual.
"""

from __future__ import annotations

import os
import sys

# OpenMP threads that wait for work by sleeping, not spinning (set before torch loads OpenMP). On a
# machine whose cores other jobs share, spinning threads wait for a descheduled sibling at every
# parallel region: measured on 2 shared cores, a 512-token prefill took 1.4-7.3 s spinning and
# 1.1-1.2 s passive (1.0 s with one thread). Set OMP_WAIT_POLICY to choose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# The libraries' own tqdm bars off (GGUF conversion, weight loading, dataset saving; read when tqdm
# is imported): the run's progress display says what is loading, once.
os.environ.setdefault("TQDM_DISABLE", "1")
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from omegaconf.errors import InterpolationKeyError

from kvbench.config import hydra_errors
from kvbench.config.errors import UnreachableError
from kvbench.config.schema import ConfigError, register_configs
from kvbench.rows.redact import RedactingStream
from kvbench.rows.store import StoreWriteError
from kvbench.run.folders import SweepFolderGuard, is_fresh, remove_run_dir
from kvbench.run.paths import register_resolvers, remove_new_results_dirs

register_configs()
# Run folders: results_dir and exp_name checked, named by their overrides (sanitised, redacted); none: "base".
register_resolvers()


class PointsFailedError(RuntimeError):
    """A run tried points and measured none of them."""


def _fail(message: str, code: int) -> NoReturn:
    print(f"kvbench: {message}", file=sys.stderr)
    sys.exit(code)


def check_measured(rows: list[dict[str, Any]], run_dir: Path) -> None:
    """Raise :class:`PointsFailedError` when points failed and none was measured."""
    failed = [r for r in rows if r["status"] in ("failed", "oom")]
    if failed and not any(r["status"] == "ok" for r in rows):
        raise PointsFailedError(
            f"{len(failed)} of {len(rows)} points failed and none was measured in {run_dir} "
            f"(reasons in its rows.jsonl); first: {failed[0]['reason']}"
        )


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def run_job(cfg: DictConfig) -> None:
    """One Hydra job: one run folder."""
    from kvbench.run.app import run  # heavy imports after Hydra has parsed the command line

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    fresh = is_fresh(run_dir)
    try:
        rows = run(cfg, run_dir, overrides=list(hydra_cfg.overrides.task))
    except ConfigError as exc:
        if fresh:
            remove_run_dir(run_dir, Path(cfg.results_dir))
            remove_new_results_dirs()
        what = "not available" if isinstance(exc, UnreachableError) else "config error"
        _fail(f"{what}: {exc}", 2)  # SystemExit passes Hydra by: a sweep stops at its first bad config
    except StoreWriteError as exc:  # a full disk: the rows committed so far are kept, the next run resumes
        _fail(str(exc), 1)
    check_measured(rows, run_dir)


def config_error_in(exc: BaseException | None) -> ConfigError | None:
    """The ConfigError that caused ``exc``: raised inside Hydra by a resolver (a run folder's path)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConfigError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def main() -> None:
    # Hydra writes some lines straight to stderr ("Error executing job with overrides: [...]"),
    # and a crash prints a traceback: every console line goes through the redaction.
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    # Hydra then raises its errors instead of printing them over several lines; we print one.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        run_job()
    except PointsFailedError as exc:
        SweepFolderGuard.redact_sweep_file()
        _fail(str(exc), 1)
    except Exception as exc:
        SweepFolderGuard.redact_sweep_file()
        cause = config_error_in(exc)
        message = str(cause) if cause is not None else hydra_errors.describe(exc)
        if message is None:
            raise
        if isinstance(exc, InterpolationKeyError) and "--cfg" in sys.argv:
            message += " (--cfg hydra shows the hydra node alone, without the run's keys: try --cfg all --resolve)"
        SweepFolderGuard.remove_if_empty()
        remove_new_results_dirs()
        _fail(f"config error: {message}", 2)


if __name__ == "__main__":
    main()
