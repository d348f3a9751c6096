"""Timers and statistics."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kvbench.measure import timing as measure
from kvbench.measure.flops import forward_flops, linear_flops_per_token
from kvbench.measure.timing import SampleStats, gbps, ratio_ci, time_interleaved, time_ms, timer_name
from kvbench.model.architectures import build_config


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
    samples = time_interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, torch.device("cpu"), warmup=1, repeats=3
    )
    assert order == ["a", "b"] * 4 and {k: v.shape for k, v in samples.items()} == {"a": (3,), "b": (3,)}


def test_stats_over_documents_take_the_median_of_each_documents_median():
    s = SampleStats.of(np.array([1.0, 1.0, 9.0]), np.array([5.0, 5.0, 5.0]), np.array([2.0, 3.0, 100.0]))
    assert s.median == 3.0 and s.n == 9  # medians 1, 5, 3
    assert s.columns("x") == {"x": 3.0, "x_p25": s.p25, "x_p75": s.p75}


def test_gbps_is_gigabytes_per_second_and_none_without_bytes_or_time():
    assert gbps(3_000_000_000, 500.0) == pytest.approx(6.0, rel=1e-12)
    assert gbps(0, 5.0) is None and gbps(10, None) is None


def test_timer_name_says_which_clock_a_device_uses():
    assert timer_name(torch.device("cpu")) == "perf_counter"
    assert timer_name(torch.device("cuda", 0)) == "cuda_events"


def test_cpu_samples_are_perf_counter_milliseconds(monkeypatch):
    clock = iter([10.0, 10.25])
    monkeypatch.setattr(measure, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    assert list(time_ms(lambda: None, torch.device("cpu"), warmup=0, repeats=1)) == [250.0]


class FakeEvent:
    """A ``torch.cuda.Event`` stand-in: records the order of calls; elapsed time 7.5 ms between two timing events."""

    calls: list = []

    def __init__(self, enable_timing=False):
        self.enable_timing = enable_timing

    def record(self):
        FakeEvent.calls.append("record")

    def synchronize(self):
        FakeEvent.calls.append("sync")

    def elapsed_time(self, end):
        assert self.enable_timing and end.enable_timing, "CUDA refuses elapsed_time without enable_timing"
        return 7.5


def test_cuda_samples_are_event_times_taken_around_the_call(monkeypatch):
    FakeEvent.calls, synchronized = [], []
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", synchronized.append)
    device = torch.device("cuda", 1)
    samples = time_interleaved({"f": lambda: FakeEvent.calls.append("f")}, device, warmup=1, repeats=2)
    assert list(samples["f"]) == [7.5, 7.5]
    assert synchronized == [device]  # warmup finished on that device before the first timed call
    assert FakeEvent.calls == ["f"] + ["record", "f", "record", "sync"] * 2


def test_ratio_ci_is_nan_only_without_two_samples_each_or_without_any_spread():
    spread, flat = np.array([1.0, 1.5, 2.0]), np.array([2.0, 2.0, 2.0])
    assert all(np.isnan(ratio_ci(flat, flat / 2)))
    assert all(np.isnan(ratio_ci(spread, spread[:1]))) and all(np.isnan(ratio_ci(spread[:1], spread)))
    assert ratio_ci(flat, spread) == (1.0, 2.0)  # one constant side still has an interval
    assert ratio_ci(spread, flat) == (0.5, 1.0)


@pytest.mark.parametrize(
    "numerator, denominator, bounds",
    [
        ([1.0, 2.0], [3.0, 4.0], (1 / 4, 2 / 3)),
        ([1.0, 1.0, 2.0], [1.0, 2.0, 2.0], (1 / 2, 2 / 1)),
    ],
)
def test_ratio_ci_is_the_percentile_interval_of_resampled_median_ratios(numerator, denominator, bounds):
    # Each extreme ratio (smallest numerator median over largest denominator median, and the
    # reverse) comes up in over 2.5% of resamples (1/16 and (7/27)^2), so the 95% percentile
    # interval is exactly the smallest and largest ratio whatever the seed.
    assert ratio_ci(np.array(numerator), np.array(denominator)) == pytest.approx(bounds, rel=1e-12)


def test_ratio_ci_narrows_with_the_confidence_asked_for():
    low, high = ratio_ci(np.array([1.0, 2.0]), np.array([3.0, 4.0]), confidence=0.5)
    assert 1 / 4 < low and high < 2 / 3


def test_ratio_ci_is_reproducible():
    rng = np.random.default_rng(1)
    a, b = rng.normal(100, 10, 20), rng.normal(10, 1, 20)
    assert ratio_ci(a, b) == ratio_ci(a.copy(), b.copy())
