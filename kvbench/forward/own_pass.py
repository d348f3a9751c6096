"""A decoding reader's own KV: writing it, attending over it, and which kernel does the attending.

Each decoding reader keeps its question and the tokens it decoded in a static buffer of its
own beside the shared document (:class:`kvbench.forward.fast.ReaderCache`); a forward writes
its new tokens there at slots held on the device (:func:`write_cache`) and attends over the
whole buffer with the unfilled slots masked (:func:`own_cache_pass`), so one CUDA graph serves
every step. Three kernels do a decode step's pass:

* ``masked``: float32 attention masked on the device, compiled into the decoder layer (a
  reader's own KV is tens of tokens against the document's thousands); for a decode step's one
  token written as products and sums (:func:`masked_step_pass`), not two small float32 GEMMs and
  a float32 copy of each cache a layer: near flash at one reader, slower from 16;
* ``flash``: one variable-length FlashAttention-2 call (:func:`own_step_pass`,
  :func:`kvbench.forward.varlen.varlen_pass`), each reader a sequence, on a buffer stored
  token-major so flash reads it in place; its index (:func:`step_sequences`) is built once per
  forward, for every layer;
* ``triton``: one small Triton kernel, a program per reader and KV head
  (:func:`triton_step_pass`, :mod:`kvbench.forward.step_kernel`), on the masked pass's layout.

``auto`` (:func:`choose`) times all three once per shape when a cache is made (a CUDA graph's
replay, the step's worst case: every slot filled) and the cache keeps the faster one with its
layout. Questions (more than one token per reader) always take the masked pass.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from kvbench.forward.compiled import compiled_for
from kvbench.forward.kernel_timing import timed_choice
from kvbench.forward.reference import masked_pass, on_flash
from kvbench.forward.varlen import Sequences, varlen_pass

KERNELS = ("masked", "flash", "triton")  # what ``auto`` chooses between (the default first: it wins ties)
TIMED = "own-cache kernel"  # what auto's timings are filed under (kvbench.forward.kernel_timing)


@torch.library.custom_op("kvbench::write_cache", mutates_args=("k_cache", "v_cache"))
def write_cache(
    k_cache: torch.Tensor, v_cache: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slots: torch.Tensor
) -> None:
    """Write new keys and values ``(B, Hkv, T, d)`` into ``(B, Hkv, S, d)`` caches at ``slots`` ``(T,)``.

    In place, at slots held on the device (as transformers' StaticCache and gpt-fast write at
    ``input_pos``), so a CUDA graph that captured it writes wherever ``slots`` point at replay.
    An op that declares what it mutates, so a compiled layer writes the caches where they are:
    written as an in-place ``index_copy_`` inside the layer, Inductor built a functional copy of
    each whole cache (read by the pass after it) and wrote it back, every layer of every step.
    """
    k_cache.index_copy_(2, slots, k)
    v_cache.index_copy_(2, slots, v)


def own_cache_pass(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    scale: float,
    kernel: str = "masked",
    steps: Sequences | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``q`` ``(B, H, T, d)``, the tokens at cache slots ``slots`` ``(T,)`` (consecutive,
    on the device), over each reader's own cache.

    ``k_cache``, ``v_cache`` ``(B, Hkv, S, d)`` already hold these tokens; query ``i`` sees
    slots ``<= slots[i]``, the rest (not yet written) is masked. The whole buffer is
    attended with a mask built on the device, not a slice of the filled part, so shapes stay
    static and one CUDA graph serves every step. A decode step (one token per reader) takes
    ``kernel`` (:data:`KERNELS`; ``flash`` with its ``steps``, :func:`step_sequences`); a
    question (``T > 1``) the masked pass. Returns ``(B, H, T, d)`` out and ``(B, H, T)`` float32 lse.
    """
    if kernel == "flash" and steps is not None:
        return own_step_pass(q, k_cache, v_cache, steps, scale)
    if kernel == "triton" and q.shape[2] == 1:
        return triton_step_pass(q, k_cache, v_cache, slots, scale)
    allowed = torch.arange(k_cache.shape[2], device=q.device) <= slots.unsqueeze(-1)  # (T, S)
    if q.shape[2] == 1:  # a decode step (a static size: its compiled graph is its own either way)
        return masked_step_pass(q, k_cache, v_cache, allowed[0], scale)
    return masked_pass(q, k_cache, v_cache, allowed, scale)


def masked_step_pass(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, allowed: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~kvbench.forward.reference.masked_pass` of one token per reader, as products and sums.

    ``q`` ``(B, H, 1, d)``; ``k_cache``, ``v_cache`` ``(B, Hkv, S, d)``; ``allowed`` ``(S,)`` bool, the
    slots every reader's token sees. Returns ``(B, H, 1, d)`` out in ``q``'s dtype and ``(B, H, 1)``
    float32 lse (out 0 and lse -inf where no slot is allowed), in float32 as the reference.

    The G query heads of a KV head against its S slots are a few rows: as matmuls they were two
    float32 GEMMs at M = G and a float32 copy of each cache, every layer of every step (0.7 and
    0.4 ms a step of 64 readers on an H100). As a product summed over ``d``, then over ``S``, it
    is compiled with the casts. Measured on the H200 (issue 21's throughput rows, one layer): at one
    reader 0.012 ms against flash's 0.018 in one run (4f49332) and 0.021 against 0.014 in the next
    (bfca7a2), the same code: a 15 us kernel's timing moves that much between runs, so ``auto``'s
    choice there is close to a coin toss (the matmul form took 0.021, b374e6c; a third run, 610f5f1,
    0.016 against flash's 0.023 and the Triton kernel's 0.011). From 16 readers it is slower:
    0.026-0.029, 0.080-0.083 and 0.31 ms at 16, 64 and 256 readers, where ``auto`` took flash or
    the Triton kernel at 16 (0.015-0.019 ms, the order differing between runs) and the Triton
    kernel from 64 (0.012 and 0.030-0.031 ms).
    """
    batch, heads, _, d = q.shape
    hkv = k_cache.shape[1]
    qf = q.float().reshape(batch, hkv, heads // hkv, 1, d)  # query head h reads KV head h // G
    scores = (qf * k_cache.unsqueeze(2).float()).sum(-1) * scale  # (B, Hkv, G, S)
    scores = scores.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)  # (B, Hkv, G)
    probs = (scores - lse.unsqueeze(-1)).exp().nan_to_num(0.0)  # the softmax, from the lse; no slot: -inf - -inf
    out = (probs.unsqueeze(-1) * v_cache.unsqueeze(2).float()).sum(-2)  # (B, Hkv, G, d)
    return out.reshape(batch, heads, 1, d).to(q.dtype), lse.reshape(batch, heads, 1)


@torch.library.custom_op("kvbench::triton_step_pass", mutates_args=())
def triton_step_pass(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`masked_step_pass` as one Triton kernel (:func:`kvbench.forward.step_kernel.step_pass`) on
    CUDA half types; elsewhere the masked step pass itself (the same semantics, for CPU tests).

    ``q`` ``(B, H, 1, d)``; ``k_cache``, ``v_cache`` ``(B, Hkv, S, d)``; ``slots`` ``(1,)`` the new
    token's slot, the last one seen. Returns ``(B, H, 1, d)`` out and ``(B, H, 1)`` float32 lse.
    An op of its own, so the compiled layer calls the kernel as it is.
    """
    if on_flash(q):
        from kvbench.forward.step_kernel import step_pass  # imports Triton, which CPU installs may lack

        return step_pass(q, k_cache, v_cache, slots, scale)
    allowed = torch.arange(k_cache.shape[2], device=q.device) <= slots
    out, lse = masked_step_pass(q, k_cache, v_cache, allowed, scale)
    return out.contiguous(), lse.contiguous()


@triton_step_pass.register_fake
def _(q, k_cache, v_cache, slots, scale):
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)


def step_sequences(batch: int, groups: int, slots: int, length: torch.Tensor) -> Sequences:
    """A decode step's :class:`~kvbench.forward.varlen.Sequences`, built once per forward for every layer:
    reader ``b`` is sequence ``b``, its ``groups`` query rows at ``b * groups``, its ``slots`` slots at
    ``b * slots`` of which ``length + 1`` are used (the new token was written at slot ``length``).
    ``length`` is the cache's 0-dim long on the device: the counts are read there (graph-safe)."""
    device = length.device
    return Sequences(
        torch.arange(0, (batch + 1) * groups, groups, dtype=torch.int32, device=device),
        torch.arange(0, (batch + 1) * slots, slots, dtype=torch.int32, device=device),
        (length + 1).to(torch.int32).expand(batch).contiguous(),  # flash reads it contiguous
    )


def own_step_pass(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, steps: Sequences, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """A decode step's attention over each reader's own cache, as one variable-length pass (:func:`varlen_pass`).

    ``q`` ``(B, H, 1, d)``: one new token per reader. ``k_cache``, ``v_cache`` ``(B, Hkv, S, d)``,
    best stored token-major (:func:`cache_layer` with ``token_major``: read in place, else copied).
    Reader ``b`` is sequence ``b`` of ``steps``: its G query heads per KV head are G rows (one
    token needs no causal mask, and flash sees as many query as KV heads). The folding runs
    outside the op, where the compiled layer fuses it with the rotary embedding and the merge.
    Returns ``(B, H, 1, d)`` out and ``(B, H, 1)`` float32 lse.
    """
    batch, heads, _, d = q.shape
    hkv, slots = k_cache.shape[1], k_cache.shape[2]
    g = heads // hkv
    rows = q.reshape(batch, hkv, g, d).transpose(1, 2).reshape(batch * g, hkv, d)  # (B x G rows, Hkv, d)
    flat = lambda t: t.transpose(1, 2).reshape(batch * slots, hkv, d)  # a view when stored token-major
    out, lse = varlen_pass(rows, flat(k_cache), flat(v_cache), *steps, g, slots, scale)
    out = out.reshape(batch, g, hkv, d).transpose(1, 2).reshape(batch, heads, 1, d)
    return out, lse.reshape(hkv, batch, g).permute(1, 0, 2).reshape(batch, heads, 1)  # varlen lse is (Hkv, rows)


def cache_layer(like: torch.Tensor, batch: int, slots: int, *, token_major: bool) -> torch.Tensor:
    """A zeroed ``(batch, Hkv, slots, d)`` buffer shaped and placed like ``like`` ``(1, Hkv, L, d)``;
    with ``token_major`` its memory is ``(batch, slots, Hkv, d)`` (what :func:`own_step_pass` reads in place)."""
    if token_major:
        return like.new_zeros(batch, slots, like.shape[1], like.shape[3]).transpose(1, 2)
    return like.new_zeros(batch, like.shape[1], slots, like.shape[3])


def choose(batch: int, heads: int, like: torch.Tensor, slots: int) -> tuple[str, dict[str, float]]:
    """The faster own-cache kernel for a decode step of ``batch`` readers of ``heads`` query heads, each
    with ``slots`` slots of KV shaped like ``like`` (one layer of the document, ``(1, Hkv, L, d)``),
    and each candidate's median ms on one layer (inf: it failed; {} off CUDA half types, where the
    masked pass is the only one).

    Timed once per shape (:func:`kvbench.forward.kernel_timing.timed_choice`), outside any capture,
    each as the reader runs it: compiled, replayed as a CUDA graph, on its own layout, at the last
    slot (``length = slots - 1``: what the step's longest read costs; the masked pass reads every
    slot at any length).
    """
    if not on_flash(like):
        return "masked", {}
    key = (batch, heads, like.shape[1], slots, like.shape[3], like.dtype, like.device)

    def candidates() -> dict[str, Callable[[], object]]:  # made only when the shape is first timed
        q = torch.randn(batch, heads, 1, like.shape[3], dtype=like.dtype, device=like.device)
        length = torch.tensor(slots - 1, device=like.device)
        new_slot = length.reshape(1)  # the one new token's slot, (T,) as a step passes it
        runs: dict[str, Callable[[], object]] = {}
        keys, values = (cache_layer(like, batch, slots, token_major=False).normal_() for _ in range(2))
        for name in KERNELS:  # the same cache in each kernel's layout, so their outputs can be compared
            k, v = (cache_layer(like, batch, slots, token_major=name == "flash").copy_(t) for t in (keys, values))
            steps = step_sequences(batch, heads // like.shape[1], slots, length) if name == "flash" else None
            run = compiled_for(q, own_cache_pass)
            runs[name] = functools.partial(run, q, k, v, new_slot, q.shape[3] ** -0.5, name, steps)
        return runs

    return timed_choice(TIMED, key, candidates)
