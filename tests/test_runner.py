"""The runner end to end on the tiny model: rows, resume, overwrite, failed points, OOM."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY

import kvbench.experiments.reuse as reuse_exp
from kvbench.rows.schema import REQUIRED
from kvbench.run.app import run


def _rows(path):
    return [json.loads(l) for l in (path / "rows.jsonl").read_text().splitlines()]


def test_run_writes_rows_config_and_manifest(make_cfg, tmp_path):
    rows = run(make_cfg(*TINY), tmp_path / "run")
    assert [(r["doc_tokens"], r["reader"]) for r in rows] == [(32, "fast"), (32, "hf"), (64, "fast"), (64, "hf")]
    for row in rows:
        assert row["status"] == "ok" and all(row[c] is not None for c in REQUIRED)
        assert row["weights"] == "random" and row["bitwise_twostage"] == 1.0 and row["exact_fraction"] == 1.0
        assert row["kv_bytes"] == 2 * 2 * 2 * 16 * 4 * row["doc_tokens"]
        assert row["speedup"] == pytest.approx(row["prefill_best_ms"] / row["reuse_ms"])
        assert row["prefill_best_ms"] == min(row["prefill_ms"], row["prefill_fast_ms"])
        assert row["reuse_efficiency"] == pytest.approx(row["reuse_floor_ms"] / row["reuse_ms"])
        assert row["timing_docs"] == 2 and row["speedup_ci_n"] == 4
    fast, hf = rows[0], rows[1]
    assert fast["prefill_ms"] == hf["prefill_ms"]  # one prefill measurement serves every reader of a length
    assert fast["reader_attach"] == "reference" and fast["query_only_ms"] > 0
    assert fast["reader_top1_agree"] == 1.0 and fast["reader_max_abs_logit_diff"] < 1e-4
    [manifest] = json.loads((tmp_path / "run" / "manifest.json").read_text())["jobs"]
    assert {
        "git_sha",
        "git_dirty",
        "torch",
        "transformers",
        "python",
        "start_time",
        "end_time",
        "host",
        "gpu_index",
    } <= set(manifest)
    assert (tmp_path / "run" / "config.yaml").read_text().count("doc_tokens") == 1


def test_rerun_skips_done_points_unless_overwrite(make_cfg, tmp_path):
    run(make_cfg(*TINY), tmp_path / "run")
    first = _rows(tmp_path / "run")
    assert run(make_cfg(*TINY), tmp_path / "run") == []
    assert _rows(tmp_path / "run") == first
    again = run(make_cfg(*TINY, "overwrite=true"), tmp_path / "run")
    assert len(again) == 4 and len(_rows(tmp_path / "run")) == 4


def test_failed_point_is_recorded_and_sweep_goes_on(make_cfg, tmp_path, monkeypatch):
    real = reuse_exp.measure_length

    def flaky(ctx, doc_tokens):
        if doc_tokens == 32:
            raise RuntimeError("disk on fire")
        return real(ctx, doc_tokens)

    monkeypatch.setattr(reuse_exp, "measure_length", flaky)
    rows = run(make_cfg(*TINY), tmp_path / "run")
    assert [(r["doc_tokens"], r["status"]) for r in rows] == [(32, "failed"), (32, "failed"), (64, "ok"), (64, "ok")]
    assert rows[0]["reason"] == "RuntimeError: disk on fire"
    monkeypatch.setattr(reuse_exp, "measure_length", real)
    resumed = run(make_cfg(*TINY), tmp_path / "run")  # only the failed points are retried
    assert [(r["doc_tokens"], r["reader"], r["status"]) for r in resumed] == [(32, "fast", "ok"), (32, "hf", "ok")]


def test_oom_is_recorded_as_oom(make_cfg, tmp_path, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")

    monkeypatch.setattr(reuse_exp, "measure_length", oom)
    rows = run(make_cfg(*TINY), tmp_path / "run")
    assert {r["status"] for r in rows} == {"oom"} and "80 GiB" in rows[0]["reason"]


def test_beyond_context_rows_are_skipped_with_reason(make_cfg, tmp_path):
    rows = run(make_cfg(*TINY, "doc_tokens=[32,4090]", "skip_beyond_context=true"), tmp_path / "run")
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped", "skipped"] and "context 4096" in rows[2]["reason"]


class FakeTracker:
    """Records what the runner logs (W&B itself is tested in test_tracking.py)."""

    made: list[FakeTracker] = []

    def __init__(self, *args, **kwargs):
        self.rows, self.finished = [], None
        FakeTracker.made.append(self)

    def log_row(self, row):
        self.rows.append(row)

    def finish(self, rows, summary):
        self.finished = (rows, summary)


def test_a_run_with_every_point_done_says_so_and_changes_nothing(make_cfg, tmp_path, monkeypatch, capsys):
    run(make_cfg(*TINY), tmp_path / "run")
    files = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    capsys.readouterr()
    monkeypatch.setattr("kvbench.run.app.make_tracker", FakeTracker)
    FakeTracker.made = []
    assert run(make_cfg(*TINY, "logger=wandb"), tmp_path / "run") == []
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        f"kvbench: all 4 points are already done in {tmp_path / 'run'}: nothing measured (overwrite=true "
        "re-measures); nothing logged to wandb (logger.log_existing=true logs their rows)"
    ]
    assert FakeTracker.made == []  # no W&B run that says "ok 0 / points 0"
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == files


def test_existing_rows_are_logged_only_when_asked(make_cfg, tmp_path, monkeypatch, capsys):
    rows = run(make_cfg(*TINY), tmp_path / "run")
    monkeypatch.setattr("kvbench.run.app.make_tracker", FakeTracker)
    FakeTracker.made = []
    run(make_cfg(*TINY, "logger=wandb", "logger.log_existing=true"), tmp_path / "run")
    [tracker] = FakeTracker.made
    assert [r["point_id"] for r in tracker.rows] == [r["point_id"] for r in rows]
    assert tracker.finished[1] == {"measured": 0, "ok": 0, "failed": 0, "already_done": 4}
    assert "their rows are logged to wandb" in capsys.readouterr().out


def test_the_logger_is_run_metadata_not_a_measurement_setting(make_cfg, tmp_path, monkeypatch):
    monkeypatch.setattr("kvbench.run.app.make_tracker", FakeTracker)
    FakeTracker.made = []
    run(make_cfg(*TINY), tmp_path / "run")
    config = (tmp_path / "run" / "config.yaml").read_text()
    rows_file = tmp_path / "run" / "rows.jsonl"
    rows_file.write_text("".join(rows_file.read_text().splitlines(keepends=True)[:-1]))  # (64, hf) to redo
    run(make_cfg(*TINY, "logger=wandb"), tmp_path / "run")
    assert (tmp_path / "run" / "config.yaml").read_text() == config and "\nlogger:" not in config
    jobs = json.loads((tmp_path / "run" / "manifest.json").read_text())["jobs"]
    assert [j["logger"]["backend"] for j in jobs] == ["none", "wandb"]
    tracker = FakeTracker.made[-1]
    assert [(r["doc_tokens"], r["reader"]) for r in tracker.rows] == [(64, "hf")]  # this run's, not the folder's
    assert tracker.finished[1] == {"measured": 1, "ok": 1, "failed": 0, "already_done": 3}
