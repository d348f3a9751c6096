"""Timers and robust statistics.

GPU work is timed with CUDA events recorded around the region on the current stream;
CPU work with ``time.perf_counter``. Warmup iterations run first and are discarded.
Statistics are medians with quartiles, and percentile-bootstrap confidence intervals from
``scipy.stats.bootstrap``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy import stats


def timer_name(device: torch.device) -> str:
    return "cuda_events" if device.type == "cuda" else "perf_counter"


def time_ms(fn: Callable[[], object], device: torch.device, *, warmup: int, repeats: int) -> np.ndarray:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed.

    Returns
    -------
    numpy.ndarray
        ``(repeats,)`` milliseconds per call.
    """
    for _ in range(warmup):
        fn()
    samples = np.empty(repeats)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for i in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples[i] = start.elapsed_time(end)
    else:
        for i in range(repeats):
            t0 = time.perf_counter()
            fn()
            samples[i] = (time.perf_counter() - t0) * 1e3
    return samples


@dataclass
class Summary:
    """Median and quartiles of a sample."""

    median: float
    p25: float
    p75: float
    n: int

    @classmethod
    def of(cls, samples: np.ndarray) -> "Summary":
        p25, median, p75 = np.percentile(samples, [25, 50, 75])
        return cls(float(median), float(p25), float(p75), int(len(samples)))

    def columns(self, name: str) -> dict[str, float]:
        """Row columns ``name``, ``name_p25``, ``name_p75``."""
        return {name: self.median, f"{name}_p25": self.p25, f"{name}_p75": self.p75}


def ratio_ci(numerator: np.ndarray, denominator: np.ndarray, confidence: float = 0.95,
             seed: int = 0) -> tuple[float, float]:
    """Bootstrap CI of ``median(numerator) / median(denominator)`` (independent samples).

    Returns ``(nan, nan)`` when either sample has fewer than 2 values or no spread.
    """
    if min(len(numerator), len(denominator)) < 2 or (np.ptp(numerator) == 0 and np.ptp(denominator) == 0):
        return float("nan"), float("nan")
    res = stats.bootstrap(
        (numerator, denominator), lambda a, b, axis=-1: np.median(a, axis=axis) / np.median(b, axis=axis),
        confidence_level=confidence, n_resamples=2000, method="percentile", vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
