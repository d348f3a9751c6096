"""The cost model against hand-computed cases."""

from __future__ import annotations

import pytest

from kvbench.config.prices import EgressPrice, StoragePrice
from kvbench.economics import cost


def test_device_dollars():
    assert cost.device_usd(3_600_000, 2.0) == pytest.approx(2.0)  # one hour at $2/h
    assert cost.device_usd(1000, 3.6) == pytest.approx(0.001)  # one second at $3.60/h
    assert cost.total_usd(1000, 1000, 3.6) == pytest.approx(1.0)
    assert cost.implied_usd_per_hour(36.0, 10, 3600) == pytest.approx(3.6)  # 10 device-hours cost $36


def test_break_even_reads():
    assert cost.break_even_reads(10.0, 2.0) == pytest.approx(10 / 8)  # write = one prefill
    assert cost.break_even_reads(10.0, 2.0, write_usd=4.0, hosting_usd=4.0) == pytest.approx(1.0)
    assert cost.break_even_reads(2.0, 2.0) is None and cost.break_even_reads(1.0, 3.0) is None


def test_units_convert_to_gb_and_hours():
    assert cost.per_gb(EgressPrice(usd=0.09, unit="GB")) == pytest.approx(0.09)
    assert cost.per_gb(EgressPrice(usd=0.12, unit="GiB")) == pytest.approx(0.12 * 1e9 / 2**30)
    assert cost.per_gb_hour(StoragePrice(usd=0.023, unit="GB-month")) == pytest.approx(0.023 / 730)
    assert cost.per_gb_hour(StoragePrice(usd=0.125, unit="GB-hour")) == pytest.approx(0.125)
    assert cost.per_gb_hour(StoragePrice(usd=1.0, unit="GiB-hour")) == pytest.approx(1e9 / 2**30)


def test_egress_hosting_and_links():
    assert cost.egress_usd(0.54e9, 0.09) == pytest.approx(0.0486)
    assert cost.hosting_usd_per_hour(2e9, 0.5) == pytest.approx(1.0)
    assert cost.hbm_usd_per_gb_hour(4.23, 141) == pytest.approx(0.03)
    assert cost.break_even_link_gbps(1e9, 1000, 500) == pytest.approx(2.0)  # 1 GB in the 0.5 s left
    assert cost.break_even_link_gbps(1e9, 500, 500) is None
    assert cost.break_even_reads_per_hour(1.0, 0.01) == pytest.approx(100)
    assert cost.break_even_reads_per_hour(1.0, 0.0) is None


def test_provider_margin_and_tokens():
    assert cost.provider_margin(0.1, 2.0, 100.0) == pytest.approx(0.08)
    assert cost.provider_margin(0.1, 20.0, 100.0) == pytest.approx(-0.1)
    assert cost.tokens_usd(3774, 4.5) == pytest.approx(0.016983)
    assert cost.finite(float("nan")) is None and cost.finite(2.0) == 2.0
