"""W&B: a real offline run is written; any W&B failure is logged, never raised."""

from __future__ import annotations

import pytest

from kvbench.config.schema import LoggerConfig
from kvbench.rows.tracking import NullTracker, WandbTracker, make_tracker


def test_none_backend_is_a_no_op(tmp_path):
    tracker = make_tracker(LoggerConfig(backend="none"), tmp_path, {}, "x")
    assert isinstance(tracker, NullTracker)
    tracker.log_row({"a": 1})
    tracker.finish([], {})


@pytest.mark.slow
def test_offline_wandb_run_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = make_tracker(LoggerConfig(backend="wandb", mode="offline"), tmp_path, {"doc_tokens": [64]}, "test")
    assert isinstance(tracker, WandbTracker) and tracker.run is not None
    row = {"doc_tokens": 64, "speedup": 3.5, "status": "ok", "bitwise_twostage": 1.0}
    tracker.log_row(row)
    tracker.finish([row], {"points": 1})
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_wandb_failure_is_not_fatal(tmp_path, monkeypatch, caplog):
    import wandb

    def boom(**kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(wandb, "init", boom)
    tracker = WandbTracker(LoggerConfig(backend="wandb"), tmp_path, {}, "x")
    tracker.log_row({"a": 1.0})
    tracker.finish([{"a": 1.0}], {})
    assert tracker.run is None and "W&B init failed" in caplog.text
