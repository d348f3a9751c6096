"""Timing candidate kernels as the reader runs them: compiled, replayed as a CUDA graph.

The fast forward picks some of its kernels per shape (:mod:`kvbench.forward.document_pass`,
:mod:`kvbench.forward.own_pass`) by timing each candidate once. A reader replays its whole
forward as a CUDA graph, so a candidate is timed the same way: a candidate of several
launches is not charged the host launch costs that the reader's graph never pays. Each choice
is timed once per process and shape (:func:`timed_choice`) and kept for the rows. Before it is
timed, each candidate's output is checked against the first candidate's (:func:`agrees`): a kernel
that is fast and wrong must not win a choice and put its speed into the rows.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Callable, Iterator, Mapping

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


# The largest relative difference (L2, over the finite entries) a candidate's output may have from the
# first candidate's: well above bf16's rounding across kernels of different accumulation order (the
# GPU tests see under 1e-2), far below what a wrong mask or merge gives (order 1).
TOLERANCE = 0.05


def _tensors(out: object) -> list[torch.Tensor]:
    return [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]


def agrees(reference: object, candidate: object, tolerance: float = TOLERANCE) -> bool:
    """Whether ``candidate``'s tensors (an output, or a tuple of them) match ``reference``'s: the same
    shapes, infinities and NaNs at the same places (an lse of ``-inf`` where a row saw no key), and
    the finite entries within ``tolerance`` relative L2 difference."""
    references, candidates = _tensors(reference), _tensors(candidate)
    if len(references) != len(candidates):
        return False
    for a, b in zip(references, candidates):
        a, b = a.float(), b.float()
        if a.shape != b.shape or not torch.equal(a.isnan(), b.isnan()) or not torch.equal(a.isinf(), b.isinf()):
            return False
        finite = a.isfinite()
        if not torch.equal(a[a.isinf()], b[b.isinf()]):  # the same signs
            return False
        if float((a[finite] - b[finite]).norm()) > tolerance * max(float(a[finite].norm()), 1e-12):
            return False
    return True


def checked_ms(what: str, name: str, fn: Callable[[], object], reference: object) -> tuple[float, object]:
    """``fn``'s output from one call, and :func:`try_graph_ms` of it; inf (with a warning) where that call
    fails, or where its output does not :func:`agree <agrees>` with ``reference`` (None: no check)."""
    try:
        out = fn()
    except Exception as exc:
        warnings.warn(f"{what} {name} failed, left out of auto: {type(exc).__name__}: {exc}", stacklevel=2)
        return math.inf, None
    if reference is not None and not agrees(reference, out):
        warnings.warn(f"{what} {name} disagrees with the first candidate's output, left out of auto", stacklevel=2)
        return math.inf, out
    return try_graph_ms(what, name, fn), out


# (what, key) -> each candidate's median ms, once per process
_timed: dict[tuple, dict[str, float]] = {}


def _capturing() -> bool:
    """Whether a CUDA graph is being captured on the current stream (never, on a build without CUDA)."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


def timed_choice(
    what: str, key: tuple, candidates: Callable[[], Mapping[str, Callable[[], object]]], default: str | None = None
) -> tuple[str, dict[str, float]]:
    """The fastest of ``candidates()`` (name -> one call) for ``what`` at ``key`` (a shape), and a copy
    of each candidate's median ms: on the first call per process and key each candidate is checked
    against the first one's output and timed (:func:`checked_ms`); later calls only look it up
    (``candidates`` is not called again). Ties go to the first candidate (callers list the default
    first); one that failed or disagreed (inf) never wins over one that ran.

    Inside a CUDA-graph capture nothing can be timed: a key not timed before (captures come after
    warmups, so a shape first seen in one) gets ``default`` and no times, and is timed at its next
    call outside a capture; without a ``default`` that is an error."""
    if (what, key) not in _timed and _capturing():
        if default is None:
            raise RuntimeError(f"{what}: {key} was first seen inside a CUDA-graph capture, where it cannot be timed")
        return default, {}
    if (what, key) not in _timed:
        timed: dict[str, float] = {}
        reference = None
        for name, fn in candidates().items():
            timed[name], out = checked_ms(what, name, fn, reference)
            if len(timed) == 1:
                reference = out  # the first candidate's output: what the others must match
        _timed[(what, key)] = timed
    timed = _timed[(what, key)]
    return fastest(timed), dict(timed)


def timings(what: str) -> Iterator[tuple[tuple, dict[str, float]]]:
    """Every key :func:`timed_choice` timed for ``what``, with a copy of each candidate's median ms."""
    for (kind, key), timed in _timed.items():
        if kind == what:
            yield key, dict(timed)


def fastest(timed: dict[str, float]) -> str:
    """The name of the smallest time in ``timed`` (the first of equals)."""
    return min(timed, key=timed.__getitem__)
