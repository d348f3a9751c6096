"""Roofline floors from hand-made ceilings, and the calibration cache."""

from __future__ import annotations

import json

import pytest
import torch

from kvbench.measure import calibrate as cal_mod
from kvbench.measure.calibrate import Calibration
from kvbench.measure.floors import batch_floors_ms, decode_floors_ms, prefill_floor_ms, reuse_floor_ms, weight_bytes
from kvbench.measure.flops import forward_flops, kv_bytes
from kvbench.model.architectures import build_config

CAL = Calibration(key="test", matmul_tflops=800.0, hbm_gbps=4000.0, h2d_gbps=None)
QWEN = build_config("qwen3-4b")
EXACT = dict(rel=1e-13, abs=0)  # the formulas to float precision: a constant off in its last digit shows


def test_reuse_floor_is_the_weight_and_kv_read_at_qwen3_4b_shape():
    weights, kv = 8_044_936_192, kv_bytes(QWEN, 3774, 2)
    assert kv == 147_456 * 3774  # the 147,456 B of KV per token
    floor = reuse_floor_ms(QWEN, 32, 3774, weights, kv, CAL)
    assert floor == pytest.approx((weights + kv) / 4e12 * 1e3, **EXACT)  # memory-bound: ~2.15 ms
    assert 2.0 < floor < 2.3


def test_reuse_floor_when_compute_bound_is_the_questions_flops_on_the_cached_document():
    slow_matmul = Calibration(key="test", matmul_tflops=0.001, hbm_gbps=4000.0, h2d_gbps=None)
    floor = reuse_floor_ms(QWEN, 32, 3774, 8e9, 5e8, slow_matmul)
    assert floor == pytest.approx(forward_flops(QWEN, 32, cached_tokens=3774) / 1e9 * 1e3, **EXACT)


def test_prefill_floor_is_compute_bound_at_long_length_and_weight_bound_at_short():
    weights = 8_044_936_192
    long = prefill_floor_ms(QWEN, 32768, weights, CAL)
    assert long == pytest.approx(forward_flops(QWEN, 32768) / 800e12 * 1e3, **EXACT)
    assert prefill_floor_ms(QWEN, 1, weights, CAL) == pytest.approx(weights / 4e12 * 1e3, **EXACT)


def test_batch_floors_share_the_reads_and_not_the_compute():
    one = batch_floors_ms(QWEN, 1, 32, 3774, 8e9, 5e8, CAL)
    many = batch_floors_ms(QWEN, 64, 32, 3774, 8e9, 5e8, CAL)
    assert many["compute_floor_ms"] == pytest.approx(
        forward_flops(QWEN, 32, cached_tokens=3774) / 800e12 * 1e3, **EXACT
    )
    assert many["memory_floor_ms"] == pytest.approx((8e9 + 5e8) / 4e12 * 1e3 / 64, **EXACT)
    assert many["memory_floor_ms"] == pytest.approx(one["memory_floor_ms"] / 64)
    assert many["compute_floor_ms"] == pytest.approx(one["compute_floor_ms"])
    assert many["per_reader_floor_ms"] == max(many["compute_floor_ms"], many["memory_floor_ms"])
    assert one["per_reader_floor_ms"] == one["memory_floor_ms"]  # one reader is memory-bound


def test_weight_bytes_counts_a_tied_embedding_once_and_skips_an_untied_input_table(tiny_lm):
    model = tiny_lm.model  # tied: lm_head is the embedding
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    assert weight_bytes(model) == total
    embed = model.get_input_embeddings().weight
    model.lm_head.weight = torch.nn.Parameter(embed.detach().clone())  # untie
    try:
        untied_total = sum(p.numel() * p.element_size() for p in model.parameters())
        assert weight_bytes(model) == untied_total - embed.numel() * embed.element_size()
    finally:
        model.lm_head.weight = embed


def test_calibration_is_measured_once_and_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(cal_mod, "CACHE_FILE", tmp_path / "calibration.json")
    cal_mod.calibrate.cache_clear()
    calls = []
    monkeypatch.setattr(cal_mod, "matmul_tflops", lambda *a, **k: calls.append(1) or 1.5)
    monkeypatch.setattr(cal_mod, "copy_gbps", lambda *a, **k: 20.0)
    first = cal_mod.calibrate(torch.device("cpu"), torch.float32)
    cal_mod.calibrate.cache_clear()
    second = cal_mod.calibrate(torch.device("cpu"), torch.float32)
    assert first == second and calls == [1] and first.h2d_gbps is None
    assert json.loads((tmp_path / "calibration.json").read_text())[first.key]["hbm_gbps"] == 20.0
    cal_mod.calibrate.cache_clear()


def test_ceilings_are_measured_rates():
    assert cal_mod.matmul_tflops(torch.device("cpu"), torch.float32, n=128, repeats=2) > 0
    assert cal_mod.copy_gbps(torch.device("cpu"), nbytes=1 << 20, repeats=2) > 0


def test_decode_floors_share_the_weights_and_a_shared_document_but_not_the_readers_own_kv():
    weights, doc, own = 8e9, kv_bytes(QWEN, 3774, 2), kv_bytes(QWEN, 48, 2)
    shared = decode_floors_ms(QWEN, 64, 3774, 48, weights, doc, own, 1, CAL)
    naive = decode_floors_ms(QWEN, 64, 3774, 48, weights, doc, own, 64, CAL)
    assert shared["decode_compute_floor_ms"] == pytest.approx(
        forward_flops(QWEN, 1, cached_tokens=3774 + 48) / 800e12 * 1e3, **EXACT
    )
    assert shared["decode_memory_floor_ms"] == pytest.approx((weights + doc + 64 * own) / 4e12 * 1e3 / 64, **EXACT)
    assert naive["decode_memory_floor_ms"] == pytest.approx((weights + 64 * doc + 64 * own) / 4e12 * 1e3 / 64, **EXACT)
    assert naive["decode_compute_floor_ms"] == shared["decode_compute_floor_ms"]
    for floors in (shared, naive):  # one token per reader: memory-bound even at 64 readers
        assert floors["decode_per_reader_floor_ms"] == floors["decode_memory_floor_ms"]
        assert floors["decode_memory_floor_ms"] > floors["decode_compute_floor_ms"]


def test_point_floors_are_the_rows_floors_of_document_plus_question():
    from kvbench.measure.floors import point_floors

    weights, kv = 8_044_936_192, kv_bytes(QWEN, 3774, 2)
    row = point_floors(QWEN, 3774, 32, weights, kv, CAL, prefill_ms=80.0)
    prefill = prefill_floor_ms(QWEN, 3774 + 32, weights, CAL)  # the prefill covers document and question
    assert row == {
        "weight_bytes": weights,
        "peak_tflops": 800.0,
        "hbm_gbps": 4000.0,
        "prefill_floor_ms": pytest.approx(prefill, **EXACT),
        "reuse_floor_ms": pytest.approx(reuse_floor_ms(QWEN, 32, 3774, weights, kv, CAL), **EXACT),
        "prefill_efficiency": pytest.approx(prefill / 80.0, **EXACT),
    }
