"""A decode step's attention over each reader's own few keys, as one small Triton kernel.

A decode step of B readers attends, per reader and KV head, its G query heads (one token) over
the S slots of that reader's own cache (its question and the tokens it decoded: tens). That is
B x Hkv independent problems of a few KB each. FlashAttention-2's variable-length call runs
them at 0.026 ms a layer for 64 readers and 0.077 ms for 256 on an H100 (its tiles are sized
for long sequences), against about 0.004 and 0.017 ms to read the caches; Inductor's products
and sums (:func:`kvbench.forward.own_pass.masked_step_pass`) take 0.086 and 0.33 ms. This kernel
is one program per (reader, KV head): it loads the G query rows once, reads the filled slots in
blocks (up to the new token's slot, read on the device, so a CUDA graph replays it at any length)
with an online softmax, and writes out and the natural log-sum-exp the merge with the document
pass needs. On the H200 (issue 21's decode rows; 48 slots, every one filled) it took 0.012 and
0.030-0.031 ms a layer at 64 and 256 readers against flash's 0.023 and 0.068-0.071, in two runs
(bfca7a2, 610f5f1). At 1 and 16 readers the two runs disagree (0.018 / 0.016 against flash's 0.014
/ 0.017 in the first, 0.011 / 0.019 against 0.023 / 0.015 in the second): the candidates are within
about 0.01 ms a layer there, and ``auto`` keeps whichever its timing finds faster.
It imports Triton, so only CUDA callers (or tests under ``TRITON_INTERPRET=1``) import this module.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kvbench.forward.online_softmax import LOG2E, finish, online_block


@triton.jit
def _step_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    out_ptr,
    lse_ptr,
    last_ptr,
    q_b,
    q_h,
    k_b,
    k_h,
    k_s,
    v_b,
    v_h,
    v_s,
    scale_log2,
    HEADS: tl.constexpr,
    G: tl.constexpr,
    G_PAD: tl.constexpr,
    SLOTS: tl.constexpr,
    BLOCK: tl.constexpr,
    D: tl.constexpr,
):
    b, h = tl.program_id(0), tl.program_id(1)
    last = tl.load(last_ptr)  # the new token's slot: slots 0..last are filled and seen
    g, d = tl.arange(0, G_PAD), tl.arange(0, D)
    rows = g < G  # tl.dot needs 16 rows: the pad rows are zeros, never stored
    q = tl.load(q_ptr + b * q_b + (h * G + g)[:, None] * q_h + d[None, :], mask=rows[:, None], other=0.0)
    top = tl.full([G_PAD], float("-inf"), tl.float32)  # running max of each row's scores (log2 units)
    total = tl.zeros([G_PAD], tl.float32)  # running sum of exp2(score - top)
    acc = tl.zeros([G_PAD, D], tl.float32)
    for start in range(0, last + 1, BLOCK):  # slot 0 is always filled: the first block sets `top`
        s = start + tl.arange(0, BLOCK)
        seen = (s <= last) & (s < SLOTS)
        k = tl.load(k_ptr + b * k_b + h * k_h + s[:, None] * k_s + d[None, :], mask=seen[:, None], other=0.0)
        v = tl.load(v_ptr + b * v_b + h * v_h + s[:, None] * v_s + d[None, :], mask=seen[:, None], other=0.0)
        top, total, acc = online_block(q, k, v, seen[None, :], scale_log2, top, total, acc)
    out, lse = finish(top, total, acc)
    head = b * HEADS + h * G + g  # out and lse are (B, H, 1, d) and (B, H, 1), contiguous
    tl.store(out_ptr + head[:, None] * D + d[None, :], out.to(out_ptr.dtype.element_ty), mask=rows[:, None])
    tl.store(lse_ptr + head, lse, mask=rows)


def step_pass(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of one new token per reader over its own cache, up to and including the slot it was written at.

    ``q`` ``(B, H, 1, d)``; ``k_cache``, ``v_cache`` ``(B, Hkv, S, d)`` in any layout whose last
    dimension is contiguous; ``slots`` ``(1,)`` long on the device, the new token's slot (every
    reader's: a step writes all readers at the same slot). ``d`` a power of two. Returns
    ``(B, H, 1, d)`` out in ``q``'s dtype and ``(B, H, 1)`` float32 natural log-sum-exp, as
    :func:`kvbench.forward.own_pass.masked_step_pass` does.
    """
    batch, heads, _, d = q.shape
    hkv, slots_n = k_cache.shape[1], k_cache.shape[2]
    g = heads // hkv
    if q.stride(3) != 1 or k_cache.stride(3) != 1 or v_cache.stride(3) != 1:
        raise ValueError("step_pass reads rows of d contiguous values: q, k_cache and v_cache need stride 1 in d")
    out = q.new_empty(batch, heads, 1, d)
    lse = torch.empty(batch, heads, 1, dtype=torch.float32, device=q.device)
    block = min(64, max(16, triton.next_power_of_2(slots_n)))
    _step_kernel[(batch, hkv)](
        q, k_cache, v_cache, out, lse, slots,
        q.stride(0), q.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        scale * LOG2E,
        HEADS=heads, G=g, G_PAD=max(16, triton.next_power_of_2(g)), SLOTS=slots_n, BLOCK=block, D=d,
    )  # fmt: skip
    return out, lse
