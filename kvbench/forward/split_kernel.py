"""The document pass as FlashDecoding's split-KV in Triton: one kernel over parts of the keys, one small merge.

A reader's folded queries (``M`` rows per KV head: ``B`` readers x ``G`` query heads x ``T``
tokens) over a document's ``L`` keys give ``Hkv x ceil(M / BLOCK_M)`` tiles of work, 8 to 64 on
the Qwen3-4B shape, against the H200's 132 SMs. The library kernels split the keys themselves
(FlashAttention-2's split-KV and its combine kernel) or not at all (cuDNN, which
:mod:`kvbench.forward.document_pass` feeds ``S`` parts as heads: the queries copied per part, and
the parts merged by a compiled kernel, about 0.8 ms of a 32768-token reuse on the H200). Here one
kernel runs every (row tile, KV head, part) program: it reads its query tile in place, its part of
the keys in blocks with an online softmax, and writes a float32 partial out and its natural
log-sum-exp; a second kernel merges the ``S`` partials of each row by log-sum-exp. With one part
the first kernel writes the final out itself. The same two-stage shape as SGLang's Triton decode
attention and FlashInfer's split-KV decode, for many rows per KV head rather than one token's.
With a key limit per group of rows it runs an audit's chunks, each over the document before it;
with the readers' (or the chunks') own keys as one more part, a reuse's (or an audit's) whole
attention in one launch (:func:`kvbench.forward.document_pass.document_own_pass`).

It imports Triton, so only CUDA callers (or tests under ``TRITON_INTERPRET=1``) import this module.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from kvbench.forward.online_softmax import LOG2E, finish, online_block

MIN_PART_TOKENS = 256  # a part's fixed cost (its query tile, its partial's write) against its read
# One wave: on an H100 (results/probes/probe_split_kernel_h100_5c460cf.json) about one program per
# SM beat two by 2-27% at the six of seven shapes where the plans differ, and four by more: the
# extra parts' float32 partials cost the merge more than a second wave of programs hides.
CTAS_PER_SM = 1
BLOCK_N, STAGES = 64, 3  # keys per block and software-pipeline depth (Triton's Hopper attention tutorial's range)
# Eight warps: with four, tiles of 128 rows spill registers to local memory on sm_90 (a 128 x 128
# float32 accumulator and the scores' block in 128 threads; tests/test_triton_compile.py). Keys
# masked per row (an audit tile's keys past its nearest limit, the readers' own keys, which come in
# runs of tens) are read 32 a block, as every key of such a launch was when its probes were timed.
WARPS, MASKED_BLOCK_N = 8, 32
# The merge's partials (results/probes/probe_split_kernel_h100_e4ff50f.json, an H100): read one part
# after another, each read waits on the one before (15 parts of 1024 rows took 8.6 µs a layer against
# 2.6 µs to read them); read all at once, the document pass gained 3-7% at 12-16 parts and the
# reuse's fused attention 11% at 15, but lost 5-14% at 2-8 parts.
LOOP_PARTS = 8
MERGE_VALUES = 8192  # float32 partial values one merge program holds at once: 64 a thread at four warps


@triton.jit
def _fold_keys(
    q, d, h, k_ptr, v_ptr, k_h, k_l, v_h, v_l, first, end, limit, scale_log2, top, total, acc,
    PER_ROW: tl.constexpr, N: tl.constexpr,
):  # fmt: skip
    """Keys ``first .. end`` of head ``h`` in blocks of ``N``, folded into the tile's online softmax:
    seen by every row, or with ``PER_ROW`` by row ``r`` only before ``limit[r]``."""
    for start in range(first, end, N):
        keys = start + tl.arange(0, N)
        loaded = keys < end
        k = tl.load(k_ptr + h * k_h + keys[:, None] * k_l + d[None, :], mask=loaded[:, None], other=0.0)
        v = tl.load(v_ptr + h * v_h + keys[:, None] * v_l + d[None, :], mask=loaded[:, None], other=0.0)
        if PER_ROW:
            seen = loaded[None, :] & (keys[None, :] < limit[:, None])
        else:
            seen = loaded[None, :]
        top, total, acc = online_block(q, k, v, seen, scale_log2, top, total, acc)
    return top, total, acc


@triton.jit
def _document_part(
    q, rows, kept, d, h, s, k_ptr, v_ptr, k_h, k_l, v_h, v_l, limit_ptr, group_rows, keys_n, part, scale_log2,
    LIMITED: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, MASKED_N: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """Part ``s`` of the document's keys (``part`` of them) for one row tile: the online softmax's final
    state. With ``LIMITED`` (row ``r`` sees the keys before ``limit[r // group_rows]``: an audit's
    chunk, its prefix) the keys before the tile's nearest limit are read as every row's, in blocks
    of ``BLOCK_N``, and only those up to its furthest limit with a mask per row, in the smaller
    blocks of ``MASKED_N`` (none where the tile's rows share one limit, as an audit's chunks' do)."""
    first = s * part
    end = tl.minimum(first + part, keys_n)
    top = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running max of each row's scores (log2 units)
    total = tl.zeros([BLOCK_M], tl.float32)  # running sum of exp2(score - top)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    shared_end = end
    if LIMITED:
        limit = tl.load(limit_ptr + rows // group_rows, mask=kept, other=0)
        shared_end = tl.maximum(first, tl.minimum(end, tl.min(tl.where(kept, limit, keys_n), 0)))
        end = tl.minimum(end, tl.max(limit, 0))  # no block past the tile's furthest limit
    else:
        limit = end  # unread
    top, total, acc = _fold_keys(
        q, d, h, k_ptr, v_ptr, k_h, k_l, v_h, v_l, first, shared_end, limit, scale_log2, top, total, acc, False, BLOCK_N
    )  # fmt: skip
    if LIMITED:
        top, total, acc = _fold_keys(
            q, d, h, k_ptr, v_ptr, k_h, k_l, v_h, v_l, shared_end, end, limit, scale_log2, top, total, acc, True,
            MASKED_N,
        )  # fmt: skip
    return top, total, acc


@triton.jit
def _own_part(
    q, rows, kept, d, h, ko_ptr, vo_ptr, ko_b, ko_h, ko_t, vo_b, vo_h, vo_t, reader_rows, new_tokens, own_tokens,
    slot_ptr, scale_log2, SLOTS: tl.constexpr, BLOCK_M: tl.constexpr, MASKED_N: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """The readers' own keys for one row tile, in blocks of ``MASKED_N``: row ``r`` is reader
    ``r // reader_rows``'s new token ``t = r % new_tokens`` and sees that reader's own keys up to
    its own: lower-right causal over ``own_tokens >= new_tokens`` keys, or, with ``SLOTS`` (a
    reader's cache of ``own_tokens`` slots), up to slot ``slots[t]`` (on the device). The tile's
    readers' keys are read as one run of ``reader x own_tokens + key`` indices, each row masked to
    its reader's."""
    reader = rows // reader_rows
    if SLOTS:
        sees_up_to = tl.load(slot_ptr + rows % new_tokens, mask=kept, other=-1).to(tl.int32)
    else:
        sees_up_to = rows % new_tokens + (own_tokens - new_tokens)
    first = tl.min(tl.where(kept, reader, 2147483647), 0) * own_tokens
    end = (tl.max(tl.where(kept, reader, 0), 0) + 1) * own_tokens
    top = tl.full([BLOCK_M], float("-inf"), tl.float32)
    total = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    for start in range(first, end, MASKED_N):
        keys = start + tl.arange(0, MASKED_N)
        loaded = keys < end
        of, at = keys // own_tokens, keys % own_tokens  # the key's reader and its position
        k = tl.load(
            ko_ptr + of[:, None] * ko_b + h * ko_h + at[:, None] * ko_t + d[None, :], mask=loaded[:, None], other=0.0
        )
        v = tl.load(
            vo_ptr + of[:, None] * vo_b + h * vo_h + at[:, None] * vo_t + d[None, :], mask=loaded[:, None], other=0.0
        )
        seen = loaded[None, :] & (of[None, :] == reader[:, None]) & (at[None, :] <= sees_up_to[:, None])
        top, total, acc = online_block(q, k, v, seen, scale_log2, top, total, acc)
    return top, total, acc


@triton.jit
def _split_attention_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, lse_ptr,  # queries, document, parts' (or the final) out and lse
    q_h, q_m, k_h, k_l, v_h, v_l, o_s, o_h, o_m, l_s, l_h,  # strides: head, row or key, part
    limit_ptr, group_rows,  # LIMITED: row r sees keys before limit[r // group_rows]
    ko_ptr, vo_ptr, ko_b, ko_h, ko_t, vo_b, vo_h, vo_t, reader_rows, new_tokens, own_tokens,  # OWN: the readers' keys
    slot_ptr,  # SLOTS: row r sees its reader's cache up to slot[r % new_tokens]
    rows_n, keys_n, part, scale_log2,
    LIMITED: tl.constexpr, OWN: tl.constexpr, SLOTS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    MASKED_N: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    tile, h, s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rows = tile * BLOCK_M + tl.arange(0, BLOCK_M)
    kept = rows < rows_n
    d = tl.arange(0, D)
    q = tl.load(q_ptr + h * q_h + rows[:, None] * q_m + d[None, :], mask=kept[:, None], other=0.0)
    if OWN and s == tl.num_programs(2) - 1:  # the last program along the parts: the readers' own keys
        top, total, acc = _own_part(
            q, rows, kept, d, h, ko_ptr, vo_ptr, ko_b, ko_h, ko_t, vo_b, vo_h, vo_t, reader_rows, new_tokens,
            own_tokens, slot_ptr, scale_log2, SLOTS, BLOCK_M, MASKED_N, D,
        )  # fmt: skip
    else:
        top, total, acc = _document_part(
            q, rows, kept, d, h, s, k_ptr, v_ptr, k_h, k_l, v_h, v_l, limit_ptr, group_rows, keys_n, part,
            scale_log2, LIMITED, BLOCK_M, BLOCK_N, MASKED_N, D,
        )  # fmt: skip
    out, lse = finish(top, total, acc)  # a row with no key in this part: out 0, lse -inf
    out_rows = out_ptr + s * o_s + h * o_h + rows[:, None] * o_m
    tl.store(out_rows + d[None, :], out.to(out_ptr.dtype.element_ty), mask=kept[:, None])
    tl.store(lse_ptr + s * l_s + h * l_h + rows, lse, mask=kept)


@triton.jit
def _split_attention_merge_kernel(
    part_out_ptr, part_lse_ptr, out_ptr, lse_ptr, parts, o_s, l_s, rows_n,
    AT_ONCE: tl.constexpr, PARTS: tl.constexpr, BLOCK_R: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """Rows ``(Hkv x M)`` in blocks: out = sum_s exp(lse_s - lse) out_s, lse = logsumexp_s lse_s; a row
    whose every part saw no key (lse ``-inf``: its weights NaN) gets out 0 and lse ``-inf``. The
    parts are read one after another, or with ``AT_ONCE`` all in one load (``PARTS``, a power of
    two, at least ``parts``; unused without it), whose reads do not wait on each other (:func:`merge_launch`)."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    kept = rows < rows_n
    d = tl.arange(0, D)
    if AT_ONCE:
        s = tl.arange(0, PARTS)
        read = (s < parts)[:, None] & kept[None, :]  # (PARTS, BLOCK_R)
        part_lse = tl.load(part_lse_ptr + s[:, None] * l_s + rows[None, :], mask=read, other=float("-inf"))
        top = tl.max(part_lse, 0)
        weight = tl.exp(part_lse - top[None, :])
        total = tl.sum(weight, 0)
        outs = tl.load(
            part_out_ptr + s[:, None, None] * o_s + rows[None, :, None] * D + d[None, None, :],
            mask=read[:, :, None],
            other=0.0,
        )
        acc = tl.sum(weight[:, :, None] * outs, 0)
    else:
        top = tl.full([BLOCK_R], float("-inf"), tl.float32)
        for s in range(0, parts):
            top = tl.maximum(top, tl.load(part_lse_ptr + s * l_s + rows, mask=kept, other=float("-inf")))
        total = tl.zeros([BLOCK_R], tl.float32)
        acc = tl.zeros([BLOCK_R, D], tl.float32)
        for s in range(0, parts):
            weight = tl.exp(tl.load(part_lse_ptr + s * l_s + rows, mask=kept, other=float("-inf")) - top)
            total += weight
            part_out = tl.load(part_out_ptr + s * o_s + rows[:, None] * D + d[None, :], mask=kept[:, None])
            acc += weight[:, None] * part_out
    seen = total > 0  # false for NaN too
    merged = tl.where(seen[:, None], acc / tl.where(seen, total, 1.0)[:, None], 0.0)
    tl.store(out_ptr + rows[:, None] * D + d[None, :], merged.to(out_ptr.dtype.element_ty), mask=kept[:, None])
    tl.store(lse_ptr + rows, tl.where(seen, top + tl.log(total), float("-inf")), mask=kept)


def merge_launch(parts: int, d: int) -> dict:
    """The merge's launch settings for ``parts`` partials of ``d`` values a row. Up to
    ``LOOP_PARTS`` parts, 16 rows a program reading one part after another (``PARTS`` 1: one compiled
    kernel for every such count); beyond, every part in one load, as many rows (a power of two, 1 to
    16) as keep a program's ``parts x rows x d`` float32 values within ``MERGE_VALUES``, with more
    warps where one row's alone are more (64 values a thread)."""
    parts_p2 = triton.next_power_of_2(parts)
    if parts_p2 <= LOOP_PARTS:
        return {"AT_ONCE": False, "PARTS": 1, "BLOCK_R": 16, "num_warps": 4}
    rows = max(1, min(16, MERGE_VALUES // (parts_p2 * d)))
    warps = min(16, max(4, rows * parts_p2 * d // (64 * 32)))
    return {"AT_ONCE": True, "PARTS": parts_p2, "BLOCK_R": rows, "num_warps": warps}


def block_rows(rows: int) -> int:
    """Query rows per program: ``rows`` rounded up to a power of two, from 16 (``tl.dot``'s least) to 128."""
    return min(128, max(16, triton.next_power_of_2(rows)))


def split_plan(
    rows: int, kv_heads: int, kv_tokens: int, sms: int, block_n: int = BLOCK_N, limited: bool = False
) -> int:
    """Keys per part: about ``CTAS_PER_SM x sms`` programs in all over ``kv_heads x ceil(rows / BLOCK_M)``
    tiles, each part at least ``MIN_PART_TOKENS`` keys and a whole number of ``block_n`` blocks
    (the last part takes the remainder). Returns the part's length in keys; ``kv_tokens`` is one part.
    ``limited`` (rows that stop at a key limit, an audit's chunks anywhere in the document): twice
    the programs, since a program past its tile's furthest limit reads nothing and about half work."""
    tiles = kv_heads * -(-rows // block_rows(rows))
    programs = CTAS_PER_SM * sms * (2 if limited else 1)
    wanted = max(1, min(round(programs / tiles), kv_tokens // MIN_PART_TOKENS))
    part = -(-kv_tokens // wanted)
    return min(kv_tokens, -(-part // block_n) * block_n)


def split_pass(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    part: int,
    block_n: int = BLOCK_N,
    warps: int = WARPS,
    stages: int = STAGES,
    limits: torch.Tensor | None = None,
    group_rows: int = 1,
    own: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    slots: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``q`` ``(1, Hkv, M, d)`` over ``k``, ``v`` ``(1, Hkv, L, d)``, in parts of ``part`` keys.

    Unmasked, or with ``limits`` ``(M / group_rows,)`` integers on the device: query row ``r`` sees
    only the keys before ``limits[r // group_rows]`` (an audit's chunks, each over the document
    before it: rows grouped by chunk). A row that sees no key gets out 0 and lse ``-inf``.

    With ``own = (k_own, v_own, T)`` (``(B, Hkv, T', d)`` each, ``T' >= T``) the rows are also ``B``
    readers' ``T`` new tokens, ``M / B`` rows a reader (its ``G`` query heads, then its tokens:
    row ``r`` is token ``r % T`` of reader ``r // (M / B)``), and each also sees its reader's own
    keys, lower-right causal: one more part, merged with the document's. With ``slots`` ``(T,)``
    integers on the device, the own keys are each reader's cache of ``T'`` slots instead, and token
    ``t`` sees the slots up to ``slots[t]`` (a decoding reader's cache, its new tokens written first).

    Every tensor is read in place in any layout whose last dimension is contiguous (a token-major
    cache too); ``d`` is a power of two. Returns ``(1, Hkv, M, d)`` out in ``q``'s dtype and
    ``(1, Hkv, M)`` float32 natural log-sum-exp, both contiguous, as
    :func:`kvbench.forward.document_pass.document_pass` promises. With ``part >= L`` one kernel
    writes them; otherwise ``ceil(L / part)`` float32 partials ``(S, Hkv, M, d)`` are merged by a second.
    ``block_n`` keys per block where every row of a tile sees them (:data:`MASKED_BLOCK_N` where
    rows are masked one by one), ``warps`` and ``stages`` are the first kernel's launch settings
    (``results/probes/probe_split_kernel.py`` times others).
    """
    _, hkv, rows, d = q.shape
    length = k.shape[2]
    if q.stride(3) != 1 or k.stride(3) != 1 or v.stride(3) != 1:
        raise ValueError("split_pass reads rows of d contiguous values: q, k and v need stride 1 in d")
    doc_parts = math.ceil(length / part)
    parts = doc_parts + (own is not None)
    out = q.new_empty(1, hkv, rows, d)
    lse = torch.empty(1, hkv, rows, dtype=torch.float32, device=q.device)
    if parts == 1:
        part_out, part_lse = out, lse
    else:
        part_out = torch.empty(parts, hkv, rows, d, dtype=torch.float32, device=q.device)
        part_lse = torch.empty(parts, hkv, rows, dtype=torch.float32, device=q.device)
    block_m = block_rows(rows)
    k_own, v_own, new_tokens = own if own is not None else (k, v, 1)  # unread without OWN
    if k_own.stride(3) != 1 or v_own.stride(3) != 1:
        raise ValueError("split_pass reads rows of d contiguous values: the own keys need stride 1 in d")
    _split_attention_kernel[(-(-rows // block_m), hkv, parts)](
        q, k, v, part_out, part_lse,
        q.stride(1), q.stride(2), k.stride(1), k.stride(2), v.stride(1), v.stride(2),
        part_out.stride(0) if parts > 1 else 0, part_out.stride(1), part_out.stride(2),
        part_lse.stride(0) if parts > 1 else 0, part_lse.stride(1),
        q if limits is None else limits, group_rows,  # q: a pointer never read when not LIMITED
        k_own, v_own, k_own.stride(0), k_own.stride(1), k_own.stride(2), v_own.stride(0), v_own.stride(1),
        v_own.stride(2), rows // k_own.shape[0], new_tokens, k_own.shape[2],
        q if slots is None else slots,  # q: a pointer never read without SLOTS
        rows, length, part, scale * LOG2E,
        LIMITED=limits is not None, OWN=own is not None, SLOTS=slots is not None, BLOCK_M=block_m, BLOCK_N=block_n,
        MASKED_N=MASKED_BLOCK_N, D=d, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    if parts > 1:
        launch = merge_launch(parts, d)
        _split_attention_merge_kernel[(-(-(hkv * rows) // launch["BLOCK_R"]),)](
            part_out, part_lse, out, lse, parts, part_out.stride(0), part_lse.stride(0), hkv * rows, D=d, **launch
        )  # fmt: skip
    return out, lse
