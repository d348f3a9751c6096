"""Timing candidate kernels as the reader runs them: compiled, replayed as a CUDA graph.

The fast forward picks some of its kernels per shape (:mod:`kvbench.forward.document_pass`,
:mod:`kvbench.forward.own_pass`) by timing each candidate once. A reader replays its whole
forward as a CUDA graph, so a candidate is timed the same way: a candidate of several
launches is not charged the host launch costs that the reader's graph never pays.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable

import torch

from kvbench.forward.cuda_graph import capture


def median_ms(fn: Callable[[], object], warmup: int = 3, repeats: int = 15) -> float:
    """Median device ms of ``fn()`` over ``repeats`` calls after ``warmup`` (CUDA events)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def graph_ms(fn: Callable[[], object]) -> float:
    """:func:`median_ms` of ``fn`` captured once and replayed as a CUDA graph."""
    graph, _ = capture(fn, warmup=3)
    return median_ms(graph.replay, warmup=1)


def try_graph_ms(what: str, name: str, fn: Callable[[], object]) -> float:
    """:func:`graph_ms`, or inf (with a warning naming ``what``, ``name`` and the error) when the
    candidate cannot compile, launch or be captured for this shape: it loses the choice, loudly
    (the reader captures its forward, so it could not have used it)."""
    try:
        return graph_ms(fn)
    except Exception as exc:
        warnings.warn(f"{what} {name} failed, left out of auto: {type(exc).__name__}: {exc}", stacklevel=2)
        return math.inf


def fastest(timed: dict[str, float]) -> str:
    """The name of the smallest time in ``timed`` (the first of equals: callers list the default first)."""
    return min(timed, key=timed.__getitem__)
