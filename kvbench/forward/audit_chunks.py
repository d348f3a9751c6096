"""How an audit's chunk attention runs: the fastest of three ways, timed once per shape.

An audit recomputes ``n`` chunks of ``c`` tokens in one forward, each over the stored document
before it and, causally, over its own tokens (:func:`kvbench.forward.attention.chunked_prefix_attention`).
Three ways run that attention:

* ``whole``: FlashAttention-2's variable-length call over each chunk's prefix
  (:func:`kvbench.forward.document_pass.chunked_document_pass`, ``S = 1``), a causal pass over the
  chunks' own keys, and a merge, compiled in the layer;
* ``split``: the same with the document in :func:`kvbench.forward.document_pass.split_plan`'s ``S``
  parts (PyTorch's variable-length FlashAttention-2 does not split keys itself, so ``k = 1`` chunk
  is 16 CTAs on the Qwen3-4B shape);
* ``triton``: all of it in one split-KV Triton launch and its merge
  (:func:`kvbench.forward.document_pass.document_own_pass`, a chunk as a reader).

:func:`chunk_plan` times the whole attention of each, as the reader runs it (compiled, replayed as
a CUDA graph, CUDA events after warmup), on chunks spread evenly over the document, and keeps the
fastest; :func:`chunk_plan_chosen` reports the choice and the times for the rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import torch

from kvbench.forward.attention import chunked_prefix_attention
from kvbench.forward.compiled import compiled_for
from kvbench.forward.document_pass import _sms, chunk_sequences, split_plan
from kvbench.forward.kernel_timing import fastest, timed_choice, timings
from kvbench.forward.reference import on_flash

TIMED = "audit chunk pass"  # what chunk_plan's timings are filed under (kvbench.forward.kernel_timing)


class ChunkPlan(NamedTuple):
    """``kernel`` (``varlen`` | ``triton``, as :func:`chunked_prefix_attention` takes it) over the
    document in ``splits`` parts (``triton``: 1, it splits inside its launch)."""

    kernel: str
    splits: int


WHOLE = ChunkPlan("varlen", 1)


def _plans(splits: int) -> dict[str, ChunkPlan]:
    """The candidates, where :func:`split_plan` would cut the document in ``splits`` parts."""
    plans = {"whole": WHOLE, "split": ChunkPlan("varlen", splits), "triton": ChunkPlan("triton", 1)}
    if splits == 1:
        del plans["split"]  # nothing to split: the same call as whole
    return plans


def chunk_plan(n: int, groups: int, chunk: int, k: torch.Tensor) -> ChunkPlan:
    """The fastest way to run the attention of ``n`` chunks of ``chunk`` tokens (``groups`` query
    heads per KV head) over a document layer ``k`` ``(1, Hkv, L, d)``, timed once per process and
    shape; off CUDA half types, and inside a capture for a shape never timed, :data:`WHOLE`."""
    if not on_flash(k):
        return WHOLE
    hkv, length, d = k.shape[1], k.shape[2], k.shape[3]
    splits = split_plan(n * groups * chunk, hkv, length, _sms(k.device))
    key = (n, groups, chunk, tuple(k.shape), k.dtype, k.device, splits)  # the split too, for the rows
    plans = _plans(splits)

    def candidates() -> dict[str, Callable[[], object]]:  # made only when the shape is first timed
        rand = lambda heads: torch.randn(1, heads, n * chunk, d, dtype=k.dtype, device=k.device)
        q, new, out = rand(hkv * groups), rand(hkv), rand(hkv)
        starts = torch.tensor([(i + 1) * (length // (n + 1)) for i in range(n)], device=k.device)
        run = compiled_for(q, chunked_prefix_attention)
        return {
            name: functools.partial(
                run,
                q,
                new,
                new,
                k,
                k,
                chunk_sequences(starts, groups, chunk, length, p.splits),
                chunk,
                out,
                out,
                d**-0.5,
                p.kernel,
            )  # fmt: skip
            for name, p in plans.items()
        }

    return plans[timed_choice(TIMED, key, candidates, default="whole")[0]]


def chunk_plan_chosen(n: int, groups: int, chunk: int, kv_tokens: int) -> tuple[ChunkPlan, int, dict[str, float]]:
    """What :func:`chunk_plan` chose for ``n`` chunks of ``chunk`` tokens over ``kv_tokens`` keys: the
    plan, the split candidate's ``S``, and each candidate's median ms on one layer's chunk attention
    (``whole``, ``split`` where ``S > 1``, ``triton``); ``(WHOLE, 1, {})`` where that shape was never
    timed (off CUDA)."""
    for (kn, kg, kc, k_shape, _, _, splits), timed in timings(TIMED):
        if (kn, kg, kc, k_shape[2]) == (n, groups, chunk, kv_tokens):
            return _plans(splits)[fastest(timed)], splits, timed
    return WHOLE, 1, {}
