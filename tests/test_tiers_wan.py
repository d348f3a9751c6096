"""The wan tier's pacing: a real loopback transfer runs at the configured bandwidth and RTT."""

from __future__ import annotations

import time

import pytest
import torch

from kvbench.codecs import get_codec
from kvbench.config.schema import WanProfile
from kvbench.tiers.wan import WanTier, link_floor_s

NBYTES = 8_000_000


@pytest.mark.parametrize("bandwidth_mb_s, rtt_ms", [(80.0, 0.0), (160.0, 20.0)])
def test_transfer_runs_at_the_configured_link(bandwidth_mb_s, rtt_ms):
    profile = WanProfile(bandwidth_mb_s=bandwidth_mb_s, rtt_ms=rtt_ms, egress_usd_per_gb=0.09)
    tier = WanTier(get_codec("identity"), torch.device("cpu"), profile_name="test", profile=profile)
    try:
        tier.put(bytes(NBYTES))
        start = time.perf_counter()
        assert len(tier.fetch()) == NBYTES
        elapsed = time.perf_counter() - start
        floor = link_floor_s(NBYTES, profile)
        assert floor * 0.97 <= elapsed <= floor * 1.15, (elapsed, floor)
        assert tier.info()["egress_usd"] == pytest.approx(NBYTES * 0.09 / 1e9)
    finally:
        tier.close()
