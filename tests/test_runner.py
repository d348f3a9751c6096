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
