"""Timers and robust statistics.

GPU work is timed with CUDA events recorded around the region on the current stream;
CPU work with ``time.perf_counter``. Warmup iterations run first and are discarded. When
several paths are compared they are timed in interleaved rounds (each path once per
round), so clock and thermal drift hit every path alike. Statistics are medians with
quartiles, and percentile-bootstrap confidence intervals from ``scipy.stats.bootstrap``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats


def timer_name(device: torch.device) -> str:
    return "cuda_events" if device.type == "cuda" else "perf_counter"


def _time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call: CUDA events on a GPU (waiting for its end), ``perf_counter`` elsewhere."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def time_interleaved(
    paths: Mapping[str, Callable[[], object]],
    device: torch.device,
    *,
    warmup: int,
    repeats: int,
    on_round: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Time every path once per round, for ``warmup`` untimed then ``repeats`` timed rounds.

    ``on_round(done, total)`` is called after each round, warmup included (progress display).

    Returns
    -------
    dict of str to numpy.ndarray
        ``(repeats,)`` milliseconds per call, per path name.
    """
    report = on_round or (lambda done, total: None)
    for i in range(warmup):
        for fn in paths.values():
            fn()
        report(i + 1, warmup + repeats)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    samples = {name: np.empty(repeats) for name in paths}
    for i in range(repeats):
        for name, fn in paths.items():
            samples[name][i] = _time_once(fn, device)
        report(warmup + i + 1, warmup + repeats)
    return samples


def time_ms(fn: Callable[[], object], device: torch.device, *, warmup: int, repeats: int) -> np.ndarray:
    """``(repeats,)`` milliseconds of ``fn`` after ``warmup`` untimed calls."""
    return time_interleaved({"fn": fn}, device, warmup=warmup, repeats=repeats)["fn"]


def gbps(nbytes: int | None, ms: float | None) -> float | None:
    """``nbytes`` per ``ms`` milliseconds as GB/s (1e9 B); None when either is missing or zero."""
    return nbytes / (ms * 1e-3) / 1e9 if nbytes and ms else None


@dataclass
class SampleStats:
    """Median and quartiles of timing samples.

    ``median`` is the median over documents of each document's median (latency of one
    length measured on several documents); quartiles are over all samples pooled.
    """

    median: float
    p25: float
    p75: float
    n: int

    @classmethod
    def of(cls, *per_document: np.ndarray) -> SampleStats:
        pooled = np.concatenate(per_document)
        p25, p75 = np.percentile(pooled, [25, 75])
        median = float(np.median([np.median(s) for s in per_document]))
        return cls(median, float(p25), float(p75), int(len(pooled)))

    def columns(self, name: str) -> dict[str, float]:
        """Row columns ``name``, ``name_p25``, ``name_p75``."""
        return {name: self.median, f"{name}_p25": self.p25, f"{name}_p75": self.p75}


def ratio_ci(
    numerator: np.ndarray, denominator: np.ndarray, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap CI of ``median(numerator) / median(denominator)`` (independent samples).

    Returns ``(nan, nan)`` when either sample has fewer than 2 values or no spread.
    """
    if min(len(numerator), len(denominator)) < 2 or (np.ptp(numerator) == 0 and np.ptp(denominator) == 0):
        return float("nan"), float("nan")
    res = stats.bootstrap(
        (numerator, denominator),
        lambda a, b, axis=-1: np.median(a, axis=axis) / np.median(b, axis=axis),
        confidence_level=confidence,
        n_resamples=2000,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
