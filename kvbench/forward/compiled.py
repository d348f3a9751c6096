"""Helpers compiled once per process where they run on CUDA, as written elsewhere.

Small functions on the reader's path (a merge of split parts, a timed candidate, the audit's
error check) are several eager kernels each; ``torch.compile`` fuses them into one or a few.
On CPU (tests, CPU runs) they run as written: the same arithmetic, no compiler.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch


@functools.cache
def _compiled(fn: Callable) -> Callable:
    return torch.compile(fn)


def compiled_for(like: torch.Tensor, fn: Callable) -> Callable:
    """``fn`` compiled (once per process) where ``like`` is on CUDA, else as written (CPU tests)."""
    return _compiled(fn) if like.is_cuda else fn
