"""Experiment ``throughput`` on CPU (tiny model): batched readers answer as they would alone."""

from __future__ import annotations

import torch

from conftest import TINY
from kvbench.app import run
from kvbench.experiments.throughput import reader_questions

CPU = ("+exp=throughput", "hydra.mode=RUN", *TINY, "device=cpu", "dtype=float32", "doc_tokens=[48]",
       "timing.query_tokens=6", "throughput.batches=[1,2,8]")


def test_every_reader_gets_its_own_question_even_beyond_the_question_set():
    questions = [torch.tensor([[1, 2, 3]]), torch.tensor([[7, 8]])]
    ids = reader_questions(questions, torch.arange(100, 200), 6, 4)
    assert ids.shape == (6, 4) and len({tuple(r.tolist()) for r in ids}) == 6
    assert ids[0].tolist() == [100, 1, 2, 3] and ids[3].tolist() == [103, 7, 8, 7]  # a quote, then the question


def test_batched_logits_equal_single_reader_logits_for_both_methods(make_cfg, tmp_path):
    rows = run(make_cfg(*CPU), tmp_path / "run")
    assert [(r["method"], r["batch"]) for r in rows] == [(m, b) for m in ("shared", "naive") for b in (1, 2, 8)]
    for r in rows:
        assert r["status"] == "ok" and r["batch_top1_agree"] == 1.0 and r["batch_max_abs_logit_diff"] < 1e-4
        assert r["per_reader_ms"] == r["batch_ms"] / r["batch"] and r["query_tokens"] == 6
        assert r["per_reader_floor_ms"] == max(r["compute_floor_ms"], r["memory_floor_ms"])
        assert r["efficiency"] == r["per_reader_floor_ms"] / r["per_reader_ms"]


def test_naive_copies_that_do_not_fit_are_an_oom_row_and_the_sweep_goes_on(make_cfg, tmp_path, monkeypatch):
    import kvbench.experiments.throughput as tp

    real = tp.per_reader_copies

    def limited(artifact, readers):
        if readers > 2:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: {readers} copies of the document KV")
        return real(artifact, readers)

    monkeypatch.setattr(tp, "per_reader_copies", limited)
    rows = run(make_cfg(*CPU), tmp_path / "run")
    status = {(r["method"], r["batch"]): r["status"] for r in rows}
    assert status == {("shared", 1): "ok", ("shared", 2): "ok", ("shared", 8): "ok",
                      ("naive", 1): "ok", ("naive", 2): "ok", ("naive", 8): "oom"}
    assert "8 copies" in next(r["reason"] for r in rows if r["status"] == "oom")
