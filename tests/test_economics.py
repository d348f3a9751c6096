"""+exp=economics end to end on fixture rows: no model loaded, every kind of row priced by hand."""

from __future__ import annotations

import json

import pytest
from _fixture_rows import KV_PER_TOKEN, PREFILL_BEST, _write, throughput_rows, write_results

import kvbench.run.app as app
from kvbench.run.app import run

RATE = 4.59  # runpod_h200_secure, USD per GPU-hour


def _usd(ms):
    return ms / 1e3 / 3600 * RATE


@pytest.fixture
def priced(make_cfg, tmp_path, monkeypatch):
    write_results(tmp_path / "fixture")

    def no_model(*args, **kwargs):
        raise AssertionError("economics must not load a model")

    monkeypatch.setattr(app, "load_model", no_model)
    monkeypatch.setattr(app, "preflight", no_model)
    rows = run(make_cfg("+exp=economics"), tmp_path / "economics" / "base")
    return rows, tmp_path


def _one(rows, **match):
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, len(found))
    return found[0]


def test_paper_row_and_files(priced):
    rows, tmp_path = priced
    paper = _one(rows, econ_row="paper")
    assert paper["device"] == "Apple M1 Pro (paper)" and round(paper["speedup"], 1) == 49.7
    assert paper["gpu_usd_per_hour"] == pytest.approx(4.5887, abs=1e-4)
    assert paper["total_prefill_usd"] == pytest.approx(1.5e6) and round(paper["total_reuse_usd"] / 1e6, 2) == 0.03
    written = [json.loads(l) for l in (tmp_path / "economics" / "base" / "rows.jsonl").read_text().splitlines()]
    assert len(written) == len(rows) and all(r["experiment"] == "economics" for r in written)
    assert "public-2026-11" in (tmp_path / "economics" / "base" / "config.yaml").read_text()


def test_reuse_points_of_both_vintages_are_priced(priced):
    rows, _ = priced
    fast = _one(rows, econ_row="cost", model="qwen3-4b-random", doc_tokens=4096, reuse_reader="fast", tier=None)
    assert fast["prefill_usd"] == pytest.approx(_usd(90.0)) and fast["reuse_usd"] == pytest.approx(_usd(4.5))
    assert fast["reuse_usd_per_mreads"] == pytest.approx(1e6 * _usd(4.5))
    assert fast["breakeven_reads"] == pytest.approx(90.0 / (90.0 - 4.5))
    kv = KV_PER_TOKEN * 4096
    assert fast["breakeven_link_gbps"] == pytest.approx(kv / 1e9 / ((90.0 - 4.5) / 1e3))
    assert fast["egress_usd_raw"] == pytest.approx(kv / 1e9 * 0.09)
    assert fast["lossless_codec"] == "planes-zstd" and fast["egress_usd_lossless"] == pytest.approx(
        kv / 1e9 * 0.09 / 1.5
    )
    assert fast["lossy_codec"] == "int4-kivi" and fast["lossy_ratio"] == 3.2
    assert fast["hosting_price"] == "hbm" and fast["hosting_usd_per_hour"] == pytest.approx(kv / 1e9 * RATE / 141)
    old = _one(rows, econ_row="cost", model="llama-old", doc_tokens=1024, reuse_reader="graph")
    assert old["prefill_ms"] == 32.0 and old["reuse_ms"] == 10.0  # prefill_ms, reuse_graph_ms
    assert _one(rows, econ_row="cost", model="llama-old", doc_tokens=1024, reuse_reader="hf")["reuse_ms"] == 30.0


def test_tier_points_are_priced_with_their_links_and_hosting(priced):
    rows, _ = priced
    wan = _one(rows, econ_row="cost", tier="wan", doc_tokens=4096)
    kv = KV_PER_TOKEN * 4096
    assert wan["prefill_ms"] == PREFILL_BEST[4096]  # faster of eager and graph
    assert wan["reuse_usd_per_mreads"] == pytest.approx(1e6 * (_usd(wan["reuse_ms"]) + kv / 1e9 * 0.09))
    assert wan["hosting_price"] == "aws_s3_standard"
    assert wan["hosting_usd_per_hour"] == pytest.approx(kv / 1e9 * 0.023 / 730)
    # compute = reuse - fetch - h2d = 1 + 1 + 13 ms
    assert wan["breakeven_link_gbps"] == pytest.approx(kv / 1e9 / ((90.0 - 15.0) / 1e3))
    assert wan["link_gbps"] == 1.25
    int4 = _one(rows, econ_row="cost", tier="disk", codec="int4-kivi", doc_tokens=4096)
    assert int4["breakeven_link_gbps"] == pytest.approx(int(kv / 3.2) / 1e9 / ((90.0 - 15.0) / 1e3))
    assert _one(rows, econ_row="cost", tier="disk", codec="identity", doc_tokens=4096)["hosting_usd_per_hour"] is None


def test_claims_use_the_headline_reader_and_the_cheapest_batch(priced):
    rows, _ = priced
    claims = {(r["claim"], r["reuse_basis"]): r for r in rows if r["econ_row"] == "claim"}
    single = claims[("ratio", "single")]
    assert single["reuse_reader"] == "fast" and single["doc_tokens"] == 4096  # nearest to 3774
    assert single["claim_measured"] == pytest.approx(90.0 / 4.5) and single["claim_holds"] is True
    batched = claims[("ratio", "batched")]
    assert batched["batch_readers"] == 16 and batched["reuse_reader"] == "shared"
    assert batched["claim_measured"] == pytest.approx(90.0 / 0.5)
    assert claims[("tariff", "single")]["claim_measured"] == pytest.approx(0.1 - 4.5 / 90.0)
    assert "gpu 6x" in claims[("hosting", "single")]["claim_note"]
    # compressibility is priced from real-weight KV only, and the note names whose
    assert claims[("egress_lossless", "single")]["claim_measured"] == pytest.approx(
        claims[("egress", "single")]["claim_measured"] / 1.5
    )
    assert "planes-zstd 1.50x on smol-real's KV (real weights)" in claims[("egress_lossless", "single")]["claim_note"]
    tariffs = [r for r in rows if r["econ_row"] == "tariff" and r["reuse_basis"] == "batched"]
    gemini = next(r for r in tariffs if r["tariff"] == "google_gemini_2_5_pro")
    assert gemini["tariff_storage_usd_per_hour"] == pytest.approx(4096 / 1e6 * 4.5)
    assert gemini["provider_margin"] == pytest.approx(0.1 - 0.5 / 90.0)
    batched_cost = _one(rows, econ_row="cost", reuse_basis="batched", doc_tokens=1024, reuse_reader="shared")
    assert batched_cost["reuse_ms"] == 0.5 and batched_cost["prefill_ms"] == PREFILL_BEST[1024]


def test_rerun_replaces_rows_and_missing_inputs_only_skip(make_cfg, tmp_path):
    write_results(tmp_path / "fixture", throughput=False)
    first = run(make_cfg("+exp=economics"), tmp_path / "economics" / "base")
    again = run(make_cfg("+exp=economics"), tmp_path / "economics" / "base")
    lines = (tmp_path / "economics" / "base" / "rows.jsonl").read_text().splitlines()
    assert len(first) == len(again) == len(lines)
    assert {r["reuse_basis"] for r in again if r["econ_row"] == "claim"} == {"single"}
    other = run(make_cfg("+exp=economics", "economics.model=absent"), tmp_path / "economics" / "other")
    assert {r["econ_row"] for r in other} == {"paper", "cost", "tariff"}  # no claims, no crash


def test_a_one_token_batch_does_not_stand_in_for_a_request_with_a_longer_question(make_cfg, tmp_path):
    root = write_results(tmp_path / "fixture")
    decode_like = [
        dict(r, point_id="one" + r["point_id"], query_tokens=1, per_reader_ms=r["per_reader_ms"] / 10)
        for r in throughput_rows()
    ]
    _write(root / "run6", decode_like)
    rows = run(make_cfg("+exp=economics"), tmp_path / "economics" / "base")
    batched = next(
        r for r in rows if r["econ_row"] == "claim" and r["claim"] == "ratio" and r["reuse_basis"] == "batched"
    )
    assert batched["batch_readers"] == 16 and batched["reuse_ms"] == 0.5  # the 32-token batch, not 0.05
    costs = [r for r in rows if r["econ_row"] == "cost" and r["reuse_basis"] == "batched" and r["doc_tokens"] == 1024]
    assert [r["reuse_ms"] for r in costs] == [0.5]  # no prefill was measured for a 1-token question: not priced
