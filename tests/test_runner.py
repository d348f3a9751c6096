"""The runner end to end on the tiny model: rows, resume, overwrite, failed points, OOM."""

from __future__ import annotations

import json

import pytest
import torch

import kvbench.experiments.reuse as reuse_exp
from kvbench.app import run
from kvbench.rows import REQUIRED

from conftest import TINY


def _rows(path):
    return [json.loads(l) for l in (path / "rows.jsonl").read_text().splitlines()]


def test_run_writes_rows_config_and_manifest(make_cfg, tmp_path):
    rows = run(make_cfg(*TINY), tmp_path / "run")
    assert [r["doc_tokens"] for r in rows] == [32, 64]
    for row in rows:
        assert row["status"] == "ok" and all(row[c] is not None for c in REQUIRED)
        assert row["weights"] == "random" and row["bitwise_twostage"] == 1.0
        assert row["kv_bytes"] == 2 * 2 * 2 * 16 * 4 * row["doc_tokens"]
    [manifest] = json.loads((tmp_path / "run" / "manifest.json").read_text())["jobs"]
    assert {"git_sha", "git_dirty", "torch", "transformers", "python", "start_time", "end_time",
            "host", "gpu_index"} <= set(manifest)
    assert (tmp_path / "run" / "config.yaml").read_text().count("doc_tokens") == 1


def test_rerun_skips_done_points_unless_overwrite(make_cfg, tmp_path):
    run(make_cfg(*TINY), tmp_path / "run")
    first = _rows(tmp_path / "run")
    assert run(make_cfg(*TINY), tmp_path / "run") == []
    assert _rows(tmp_path / "run") == first
    again = run(make_cfg(*TINY, "overwrite=true"), tmp_path / "run")
    assert len(again) == 2 and len(_rows(tmp_path / "run")) == 2


def test_failed_point_is_recorded_and_sweep_goes_on(make_cfg, tmp_path, monkeypatch):
    real = reuse_exp.measure_latency

    def flaky(ctx, doc_ids, query_ids):
        if doc_ids.shape[1] == 32:
            raise RuntimeError("disk on fire")
        return real(ctx, doc_ids, query_ids)

    monkeypatch.setattr(reuse_exp, "measure_latency", flaky)
    rows = run(make_cfg(*TINY), tmp_path / "run")
    assert [(r["doc_tokens"], r["status"]) for r in rows] == [(32, "failed"), (64, "ok")]
    assert rows[0]["reason"] == "RuntimeError: disk on fire"
    monkeypatch.setattr(reuse_exp, "measure_latency", real)
    resumed = run(make_cfg(*TINY), tmp_path / "run")  # only the failed point is retried
    assert [(r["doc_tokens"], r["status"]) for r in resumed] == [(32, "ok")]


def test_oom_is_recorded_as_oom(make_cfg, tmp_path, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80 GiB")

    monkeypatch.setattr(reuse_exp, "measure_latency", oom)
    rows = run(make_cfg(*TINY), tmp_path / "run")
    assert {r["status"] for r in rows} == {"oom"} and "80 GiB" in rows[0]["reason"]


def test_beyond_context_rows_are_skipped_with_reason(make_cfg, tmp_path):
    rows = run(make_cfg(*TINY, "doc_tokens=[32,4090]", "skip_beyond_context=true"), tmp_path / "run")
    assert [r["status"] for r in rows] == ["ok", "skipped"] and "context 4096" in rows[1]["reason"]
