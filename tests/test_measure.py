"""Timers and statistics."""

from __future__ import annotations

import time

import numpy as np
import torch

from kvbench.flops import forward_flops, linear_flops_per_token
from kvbench.architectures import build_config
from kvbench.measure import SampleStats, gbps, ratio_ci, time_interleaved, time_ms


def test_time_ms_counts_warmup_apart_and_measures_sleep():
    calls = []
    samples = time_ms(lambda: (calls.append(1), time.sleep(0.002)), torch.device("cpu"), warmup=2, repeats=5)
    assert len(calls) == 7 and samples.shape == (5,)
    assert np.all(samples >= 2.0) and np.all(samples < 200)


def test_summary_quartiles():
    s = SampleStats.of(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert (s.median, s.p25, s.p75, s.n) == (3.0, 2.0, 4.0, 5)


def test_ratio_ci_brackets_the_true_ratio():
    rng = np.random.default_rng(0)
    a, b = rng.normal(100, 2, 50), rng.normal(10, 0.2, 50)
    low, high = ratio_ci(a, b)
    assert low < np.median(a) / np.median(b) < high and 9 < low and high < 11
    assert np.isnan(ratio_ci(a[:1], b)[0])


def test_flops_scale_as_expected():
    cfg = build_config("qwen3-4b")
    # Linear part dominates short prefill: ~2 x 3.6B non-embedding params per token.
    assert 6.5e9 < linear_flops_per_token(cfg) < 7.5e9
    # Prefill grows super-linearly (attention); reuse of 32 tokens costs ~1% of prefill at 32k.
    assert forward_flops(cfg, 32768) / forward_flops(cfg, 1024) > 32
    assert forward_flops(cfg, 32, 32768) < 0.02 * forward_flops(cfg, 32768 + 32)
    assert forward_flops(cfg, 32, 32768) > forward_flops(cfg, 32, 1024)


def test_interleaved_rounds_take_one_sample_of_every_path_per_round():
    order = []
    samples = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                               torch.device("cpu"), warmup=1, repeats=3)
    assert order == ["a", "b"] * 4 and {k: v.shape for k, v in samples.items()} == {"a": (3,), "b": (3,)}


def test_stats_over_documents_take_the_median_of_each_documents_median():
    s = SampleStats.of(np.array([1.0, 1.0, 9.0]), np.array([5.0, 5.0, 5.0]), np.array([2.0, 3.0, 100.0]))
    assert s.median == 3.0 and s.n == 9  # medians 1, 5, 3
    assert s.columns("x") == {"x": 3.0, "x_p25": s.p25, "x_p75": s.p75}


def test_gbps():
    assert gbps(2_000_000_000, 1000.0) == 2.0 and gbps(0, 5.0) is None and gbps(10, None) is None
