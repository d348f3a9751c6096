"""Replay a forward as a CUDA graph: one launch instead of hundreds of kernel launches.

Serving engines capture their batch-1 forwards once and replay them; so does the harness,
for every fast path it times. Without CUDA the function is simply called.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

T = TypeVar("T")


def capture(fn: Callable[[], T], warmup: int) -> tuple[torch.cuda.CUDAGraph, T]:
    """``fn`` captured as a CUDA graph after ``warmup`` untimed calls on a side stream (compilation,
    autotuning, workspaces), and the output it returned while captured (the graph rewrites it
    in place at every replay)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with collector_paused(), torch.cuda.graph(graph):
        out = fn()
    return graph, out


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Collect Python's cyclic garbage now, then keep the collector off until the block ends.

    A dead cycle can hold an earlier ``CUDAGraph``; if the collector frees it while another
    graph is being captured, its reset is an illegal call during capture and invalidates that
    capture (seen on the H200: a point failed with ``cudaErrorStreamCaptureInvalidated`` after
    three ``CUDAGraph ... (function reset)`` warnings). ``torch.cuda.graph`` collects only when
    ``torch.compiler.config.force_cudagraph_gc`` is set.
    """
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Replayable:
    """``fn(static_input)`` captured once as a CUDA graph and replayed for new inputs.

    Parameters
    ----------
    fn : callable
        Takes one tensor and returns one tensor. It must not allocate new inputs on the
        host side or synchronise; whatever it reads besides its argument must stay where it
        was at capture (the graph replays the same addresses).
    example : torch.Tensor
        An input of the shape and dtype every later call uses (copied into a static buffer).
    graph : bool
        Capture (CUDA only); False calls ``fn`` directly.
    warmup : int
        Untimed calls on a side stream before capture (compilation, autotuning, workspaces).
    """

    def __init__(
        self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, *, graph: bool, warmup: int = 2
    ):
        self.fn = fn
        self.static = example.clone()
        self.graph: torch.cuda.CUDAGraph | None = None
        if graph and example.is_cuda:
            self.graph, self.out = capture(lambda: fn(self.static), warmup)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The output for input ``x``; on CUDA a view of the graph's static output (clone to keep)."""
        self.static.copy_(x)
        if self.graph is None:
            return self.fn(self.static)
        self.graph.replay()
        return self.out
