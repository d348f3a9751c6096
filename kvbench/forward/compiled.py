"""What the fast forward compiles, and the compiler's limits it needs.

The decoder layers compile regionally (:func:`compiled_layer`). Small functions on the
reader's path (a merge of split parts, a timed candidate, the audit's error check) are several
eager kernels each; ``torch.compile`` fuses them into one or a few (:func:`compiled_for`). On
CPU (tests, CPU runs) those run as written: the same arithmetic, no compiler.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import torch

# Dynamo keeps at most ``recompile_limit`` (8) graphs per code object, and every decoder layer runs
# one ``forward``: a process that measures several reader shapes (throughput's shared and private
# documents, its decode step, batch 1's specialisation) needs more. At the limit dynamo falls back to
# eager with a warning, and the point would be timed uncompiled; here it raises instead, so the point
# fails and says why (issue 21's run at b374e6c hit it silently).
RECOMPILE_LIMIT = 64
# Inductor times a few launch settings for each pointwise kernel when it first runs. With dynamic
# shapes that chose settings 5-12x slower for the decode step's log-sum-exp merge in some runs and
# not in others (0.43 against 0.08 ms a step at 64 readers of 3774 tokens on H100s); in one process
# each on one H100, the heuristic settings ran the step 5% faster at 64 readers and 13% at 256 than
# the timed ones (results/probes/probe_decode_merge.py).
OPTIONS: dict[str, str | int | bool | Callable[..., Any]] = {"triton.autotune_pointwise": False}


def compiled_layer(layer: torch.nn.Module) -> torch.nn.Module:
    """``layer`` compiled with dynamic token counts (one graph serves every length), under a
    recompile limit that a whole sweep fits in, and that fails a point rather than run it eager."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    compiled = torch.compile(layer, dynamic=True, options=OPTIONS)
    return cast(torch.nn.Module, compiled)  # an OptimizedModule, typed as a callable


@functools.cache
def _compiled(fn: Callable) -> Callable:
    return torch.compile(fn, options=OPTIONS)


def compiled_for(like: torch.Tensor, fn: Callable) -> Callable:
    """``fn`` compiled (once per process) where ``like`` is on CUDA, else as written (CPU tests)."""
    return _compiled(fn) if like.is_cuda else fn
