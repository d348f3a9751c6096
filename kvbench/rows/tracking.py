"""Experiment tracking that never breaks a run.

``logger.backend=wandb`` logs the resolved config (``wandb.init(config=...)``), every row as
it lands, all rows as a ``wandb.Table`` and a summary at the end. Mode is ``offline`` by
default (no network needed; the run folder stays under the run's results folder; ``wandb
sync`` uploads it later). Every W&B call is wrapped: a failure is logged, never raised.
Credentials in the config or rows (a tier URL's password) are redacted before W&B sees them.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kvbench.config.schema import LoggerConfig
from kvbench.rows.redact import redact, redact_all

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _redacted_argv():
    """W&B records the command line when a run starts: let it see the redacted one."""
    saved = sys.argv
    sys.argv = redact_all(list(saved))
    try:
        yield
    finally:
        sys.argv = saved


class NullTracker:
    """``logger.backend=none``."""

    def log_row(self, row: dict[str, Any]) -> None:
        pass

    def finish(self, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        pass


class WandbTracker:
    """W&B behind a guard: after any error the tracker turns itself off and the run goes on."""

    def __init__(self, cfg: LoggerConfig, run_dir: Path, config: dict[str, Any], name: str):
        self.run = None
        try:
            import wandb

            with _redacted_argv():
                self.run = wandb.init(
                    project=cfg.project,
                    entity=cfg.entity,
                    mode=cfg.mode,  # type: ignore[arg-type]
                    dir=str(run_dir),
                    config=redact_all(config),
                    name=redact(name),
                    reinit="finish_previous",
                )
        except Exception as exc:
            log.warning("W&B init failed, continuing without tracking: %s", exc)

    def _guard(self, what: str, fn: Callable[[Any], Any]) -> None:
        """Run ``fn(run)``; after any error, log it and stop tracking."""
        if self.run is None:
            return
        try:
            fn(self.run)
        except Exception as exc:
            log.warning("W&B %s failed, tracking turned off: %s", what, exc)
            self.run = None

    def log_row(self, row: dict[str, Any]) -> None:
        numeric = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._guard("log", lambda run: run.log(numeric))

    def finish(self, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        import pandas as pd
        import wandb

        def table(run):
            df = pd.DataFrame(redact_all(rows)).astype(str) if rows else pd.DataFrame()
            run.log({"rows": wandb.Table(dataframe=df)})
            run.summary.update(redact_all(summary))

        self._guard("table", table)
        self._guard("finish", lambda run: run.finish())


def make_tracker(cfg: LoggerConfig, run_dir: Path, config: dict[str, Any], name: str):
    return WandbTracker(cfg, run_dir, config, name) if cfg.backend == "wandb" else NullTracker()
