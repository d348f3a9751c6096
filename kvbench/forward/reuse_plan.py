"""How a reader's attention runs: the document and own-key passes merged, or one Triton launch, timed once per shape.

A reuse (``B`` readers' ``T``-token questions over one shared document,
:func:`kvbench.forward.attention.prefix_attention`) attends to the document and, causally, to its
own keys; a decoding reader (:func:`kvbench.forward.attention.cached_prefix_attention`) to the
document and to its cache. Two ways run either:

* ``passes``: the document pass on ``auto``'s kernel (:mod:`kvbench.forward.document_pass`), a
  pass over the own keys (FlashAttention-2, or the cache's own kernel,
  :mod:`kvbench.forward.own_pass`), and their merge, compiled in the layer;
* ``fused``: both in one split-KV Triton launch and its merge
  (:func:`kvbench.forward.document_pass.document_own_pass`): no own-key pass, no merge in the layer.

Under ``fast.document_kernel=auto`` :func:`reuse_plan` and :func:`cached_plan` time a layer's
attention of each, as the reader runs it (compiled, replayed as a CUDA graph, CUDA events after
warmup), and return the kernel name that runs the faster; :func:`plan_chosen` reports it for the
rows. ``auto``'s own candidates time the document pass alone, which would not credit the fused
launch with the pass and the merge it saves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from kvbench.forward.attention import cached_prefix_attention, prefix_attention
from kvbench.forward.compiled import compiled_for
from kvbench.forward.kernel_timing import fastest, timed_choice, timings
from kvbench.forward.own_pass import cache_layer, step_sequences
from kvbench.forward.reference import on_flash

TIMED = "reuse attention"  # what the plans' timings are filed under (kvbench.forward.kernel_timing)
KERNEL = {"passes": "auto", "fused": "triton"}  # the document kernel each runs as (the attention's)


def reuse_plan(batch: int, tokens: int, groups: int, k_prefix: torch.Tensor) -> str:
    """The document kernel to run a reuse of ``batch`` readers' ``tokens``-token questions (``groups``
    query heads per KV head) over a document layer ``k_prefix`` with: ``auto`` (``passes``) or
    ``triton`` (``fused``), whichever timed faster for this shape (once per process). A private copy
    per reader, CPU tensors, and a shape first seen inside a capture: ``auto``."""

    def calls() -> Callable[[str], Callable[[], object]]:
        _, hkv, _, d = k_prefix.shape
        rand = lambda *shape: torch.randn(*shape, dtype=k_prefix.dtype, device=k_prefix.device)
        q = rand(batch, hkv * groups, tokens, d)
        own = [rand(batch, tokens, hkv, d).transpose(1, 2) for _ in "kv"]  # token-major, as a layer leaves them
        run = compiled_for(q, prefix_attention)
        return lambda kernel: functools.partial(run, q, *own, k_prefix, k_prefix, d**-0.5, kernel)

    return _timed_plan(batch, tokens, groups, k_prefix, None, calls)


def cached_plan(
    batch: int, tokens: int, groups: int, k_cache: torch.Tensor, own_kernel: str, k_prefix: torch.Tensor
) -> str:
    """:func:`reuse_plan` for decoding readers: ``batch`` readers' ``tokens`` new tokens over a shared
    document layer ``k_prefix`` and their caches (one layer ``k_cache`` ``(B, Hkv, S, d)``, in the
    layout ``own_kernel`` reads), timed at the caches' last slots (the longest read)."""

    def calls() -> Callable[[str], Callable[[], object]]:
        _, hkv, slots, d = k_cache.shape
        rand = lambda *shape: torch.randn(*shape, dtype=k_prefix.dtype, device=k_prefix.device)
        q, new = rand(batch, hkv * groups, tokens, d), rand(batch, tokens, hkv, d).transpose(1, 2)
        token_major = k_cache.transpose(1, 2).is_contiguous()
        cache = [cache_layer(k_prefix, batch, slots, token_major=token_major).normal_() for _ in "kv"]
        at = torch.arange(slots - tokens, slots, device=k_prefix.device)  # the new tokens' slots: the last
        steps = None
        if own_kernel == "flash" and tokens == 1:
            steps = step_sequences(batch, groups, slots, torch.tensor(slots - 1, device=k_prefix.device))
        run = compiled_for(q, cached_prefix_attention)
        return lambda kernel: functools.partial(
            run, q, new, new, k_prefix, k_prefix, *cache, at, d**-0.5, kernel, own_kernel, steps
        )

    return _timed_plan(batch, tokens, groups, k_prefix, (k_cache.shape[2], own_kernel), calls)


def _timed_plan(
    batch: int,
    tokens: int,
    groups: int,
    k_prefix: torch.Tensor,
    cache: tuple[int, str] | None,
    calls: Callable[[], Callable[[str], Callable[[], object]]],
) -> str:
    """The two plans' shared part: ``auto`` off a shared document on the GPU; otherwise each way timed
    once per shape (``cache``: the caches' slots and own kernel, None for a reuse), ``calls()``
    making the inputs once and one layer's attention per document kernel."""
    if not on_flash(k_prefix) or k_prefix.shape[0] != 1:
        return "auto"
    key = (batch, tokens, groups, tuple(k_prefix.shape), k_prefix.dtype, k_prefix.device, cache)

    def candidates() -> dict[str, Callable[[], object]]:  # made only when the shape is first timed
        call = calls()
        return {name: call(kernel) for name, kernel in KERNEL.items()}

    return KERNEL[timed_choice(TIMED, key, candidates, default="passes")[0]]


def plan_chosen(
    batch: int, tokens: int, kv_tokens: int, slots: int | None = None
) -> tuple[str | None, dict[str, float]]:
    """What :func:`reuse_plan` (or, with the caches' ``slots``, :func:`cached_plan`) chose for ``batch``
    readers of ``tokens`` new tokens over ``kv_tokens`` keys (``passes`` | ``fused``) and each
    candidate's median ms on one layer's attention; None and {} where that shape was never timed."""
    for (kb, kt, _, k_shape, _, _, cached), timed in timings(TIMED):
        if (kb, kt, k_shape[2]) == (batch, tokens, kv_tokens) and (cached and cached[0]) == slots:
            return fastest(timed), timed
    return None, {}
