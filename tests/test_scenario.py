"""The paper's scenario reproduced from its own inputs (arXiv 2606.13361), and the claims table."""

from __future__ import annotations

import pytest

from kvbench.config.prices import PaperInputs
from kvbench.economics import scenario

PAPER = PaperInputs()


def test_paper_inputs_give_back_the_papers_numbers():
    inputs = scenario.paper_inputs(PAPER)
    # The paper states no GPU price; its $1.5M for 80 M x 14.71 s implies one:
    # 1.5e6 / (80e6 x 14.71 / 3600) = 1.5e6 / 326,888.9 device-hours = $4.5887/h.
    assert inputs.usd_per_hour == pytest.approx(1.5e6 / (80e6 * 14.71 / 3600))
    assert inputs.usd_per_hour == pytest.approx(4.5887, abs=1e-4)
    e = scenario.evaluate(inputs)
    assert round(e["speedup"], 1) == 49.7  # 14.71 / 0.296 = 49.696
    assert e["total_prefill_usd"] == pytest.approx(1.5e6)
    assert round(e["total_reuse_usd"] / 1e6, 2) == 0.03  # $30,184
    assert e["total_reuse_usd"] == pytest.approx(80e6 * 0.296 / 3600 * 4.5887, rel=1e-4)
    assert e["breakeven_reads"] == pytest.approx(14.71 / (14.71 - 0.296))  # N* = 1.0205
    assert e["egress_usd_raw"] == pytest.approx(0.54 * 0.09)  # $0.0486 per load
    assert e["prefill_usd"] == pytest.approx(0.01875)  # 14.71 s at $4.5887/h
    assert e["egress_over_prefill"] == pytest.approx(0.0486 / 0.01875)  # 2.59x: egress costs more
    assert e["provider_margin"] == pytest.approx(0.1 - 0.296 / 14.71)  # 0.0799 of the input price


def test_rounding_of_the_total_bounds_the_implied_price():
    lo, hi = scenario.implied_rate_range(PAPER)
    assert lo == pytest.approx(1.45e6 / (80e6 * 14.71 / 3600)) and hi == pytest.approx(1.55e6 / (80e6 * 14.71 / 3600))
    assert lo < scenario.paper_inputs(PAPER).usd_per_hour < hi


def _measured(**changes):
    base = dict(
        label="gpu",
        doc_tokens=4096,
        prefill_ms=100.0,
        reuse_ms=20.0,
        kv_bytes=0.6e9,
        usd_per_hour=3.6,
        egress_usd_per_gb=0.09,
        readers=1e6,
        lossless_ratio=1.5,
        hosting_usd_per_gb_hour=0.03,
    )
    return scenario.evaluate(scenario.Inputs(**{**base, **changes}))


def test_claims_against_hand_computed_measurements():
    paper = scenario.evaluate(scenario.paper_inputs(PAPER))
    m = _measured()
    # 100 ms at $3.60/h = $1e-4 a prefill, $2e-5 a reuse; egress $0.054 = 540 prefills.
    assert m["prefill_usd"] == pytest.approx(1e-4) and m["egress_over_prefill"] == pytest.approx(540)
    assert m["breakeven_reads"] == pytest.approx(1e-4 / 8e-5)
    assert m["hosting_usd_per_hour"] == pytest.approx(0.018)
    assert m["breakeven_reads_per_hour"] == pytest.approx(0.018 / 8e-5)
    rows = {c["claim"]: c for c in scenario.claims(paper, m)}
    assert rows["ratio"]["claim_measured"] == pytest.approx(5.0) and rows["ratio"]["claim_holds"] is False
    assert rows["ratio"]["claim_margin"] == pytest.approx(5.0 / (14.71 / 0.296))
    assert rows["totals"]["claim_holds"] is False  # saving 1e6 x $8e-5 = $80
    assert rows["breakeven"]["claim_holds"] is True  # N* = 1.25 < 2
    assert rows["egress"]["claim_holds"] is True and rows["egress_lossless"]["claim_holds"] is True
    assert rows["tariff"]["claim_measured"] == pytest.approx(0.1 - 0.2) and rows["tariff"]["claim_holds"] is False
    assert rows["hosting"]["claim_paper"] is None and rows["hosting"]["claim_holds"] is True


def test_claims_hold_on_the_papers_own_numbers_and_unknowns_stay_unknown():
    paper = scenario.evaluate(scenario.paper_inputs(PAPER))
    rows = {c["claim"]: c for c in scenario.claims(paper, paper)}
    for claim in ("ratio", "totals", "breakeven", "egress", "tariff"):
        assert rows[claim]["claim_holds"] is True, claim
        assert rows[claim]["claim_margin"] == pytest.approx(1.0)
    assert rows["egress_lossless"]["claim_holds"] is None  # the paper gives no ratio
    slow = _measured(reuse_ms=150.0)  # reuse slower than prefill
    rows = {c["claim"]: c for c in scenario.claims(paper, slow)}
    assert rows["breakeven"]["claim_measured"] is None and rows["breakeven"]["claim_holds"] is False
    assert rows["hosting"]["claim_holds"] is False
