"""The document pass: a reader's queries over a stored document's KV, on the faster of two library kernels.

A reader's question (``T`` tokens, ``G`` query heads per KV head, ``B`` readers of one
document) attends to the document's ``L`` keys without a mask, so its queries fold into
``M = B * G * T`` rows per KV head (:func:`kvbench.forward.attention.prefix_attention`). With
``M`` in the tens to hundreds and ``L`` in the thousands, the work is one long key sequence
per KV head: unless the keys are split across CTAs and merged by log-sum-exp (FlashDecoding's
split-KV), a handful of the GPU's SMs do it. Three library kernels and one of our own can run it:

* ``flash``: PyTorch's FlashAttention-2 (``aten._scaled_dot_product_flash_attention``) on the
  folded queries; it picks its own split count.
* ``flex``: PyTorch's ``flex_attention``, compiled. With fewer than 128 queries per head Inductor
  lowers it to its flex-decoding Triton kernel, which packs a KV head's query heads into one
  block and splits the keys over ``2 x SMs / (B x Hkv)`` CTAs, merging their partial results in
  a second kernel: FlashDecoding's shape, from a maintained library.
* ``cudnn``: cuDNN's fused attention (``aten._scaled_dot_product_cudnn_attention``, the kernel
  the fast prefill already prefers: about 600 TFLOP/s on the H200 against FlashAttention-2's
  350). It does not split the keys itself, so the document is viewed, in place, as ``S`` equal
  parts that cuDNN sees as a batch of ``Hkv`` by ``S`` heads (``S`` from the length and the SM
  count, :func:`split_plan`); the ``S`` partial results are merged by log-sum-exp in one
  compiled kernel. Where rows are many (batched readers) ``S`` is 1: a single call.
* ``triton``: FlashDecoding's split-KV as one Triton kernel over every (row tile, KV head, part)
  program, reading the queries and the document in place, and a second small kernel merging the
  parts (:mod:`kvbench.forward.split_kernel`): no copy of the queries per part and no compiled
  merge, the two costs cuDNN's parts pay. A reuse's (or a decoding reader's) attention may run
  whole in it (:func:`document_own_pass`): the question's own keys (or the reader's cache) are one
  more part of the same launch, so the layer has no own-key pass and no merge of its own.
  ``fast.document_kernel=triton`` always does so; under ``auto`` :mod:`kvbench.forward.reuse_plan`
  times that against the two passes per shape. As a candidate of ``auto``'s document pass it runs
  the document alone, timed like the others.

``auto`` (the default) times flash, cuDNN and Triton once per shape, replayed as a CUDA graph as the
reader runs them (CUDA events after warmup; the choice itself is made outside any capture), and
keeps the faster; :func:`chosen` reports what was chosen and measured, for the rows. Flex is
selectable but not a candidate of ``auto``: on the H200 image's torch 2.11 it failed to compile
at every shape under 8192 folded rows (a single reader's among them), and where it ran (64-256
readers of 32768 tokens, issue 21's runs) cuDNN beat it by 1.5-1.7x; trying it cost a compile
at every new shape. Off CUDA the float32 reference runs instead of any of them.

The audit's chunked pass (:func:`chunked_document_pass`) needs a different prefix per chunk:
chunk ``i``'s queries see the document's first ``starts[i]`` keys. It is one variable-length
FlashAttention-2 call (:func:`kvbench.forward.varlen.varlen_pass`): each chunk is a sequence of
its folded queries over keys that begin at the document's first and stop at ``starts[i]``
(``seqused_k``), so the prefixes are read in place, the starts stay on the device and one CUDA
graph serves every draw of chunks (no host sync, no launch per chunk). Its index
(:func:`chunk_sequences`) is built once per forward, for every layer.

Unlike the fixed-length call, PyTorch's variable-length FlashAttention-2 never splits the keys
(``mha_varlen_fwd`` splits only paged caches and one-token decode), so ``k`` chunks of ``G x 64``
folded rows are ``k x Hkv x 2`` CTAs, 16 at k = 1 on the Qwen3-4B shape, against the H200's 132
SMs. So the document may be split too: ``S`` parts of ``ceil(L / S)`` keys, each chunk's queries
a sequence per part (part ``s`` sees the keys of part ``s`` before ``starts[i]``), all in the same
one call, merged by log-sum-exp where the layer is compiled. Or the split-KV Triton kernel runs a
chunk's whole attention (:func:`document_own_pass` with a key limit per chunk): every chunk's rows
over the document's parts in one launch, each row stopping at its chunk's start, the chunks' own
keys one more part, and its own merge. :mod:`kvbench.forward.audit_chunks` chooses among them per shape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from kvbench.config.names import DOCUMENT_KERNELS as KERNELS
from kvbench.forward.compiled import compiled_for
from kvbench.forward.kernel_timing import fastest, timed_choice, timings
from kvbench.forward.reference import masked_pass, merge, merge_stacked, on_flash, reference_pass
from kvbench.forward.varlen import Sequences, varlen_pass

AUTO_CANDIDATES = ("flash", "cudnn", "triton")  # flash first: it wins ties
TIMED = "document kernel"  # what auto's timings are filed under (kvbench.forward.kernel_timing)
# Flex's decoding kernel (under 128 rows per query head) packs all of a KV head's rows into one
# block, beyond shared memory for many rows; MAX_GROUPS query heads of at least 128 rows each run
# its main kernel instead (:func:`_groups`).
MAX_GROUPS = 64


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, False, False, scale=scale)[:2]
    return out, lse


def _groups(rows: int) -> int:
    """Query heads per KV head to present ``rows`` folded queries as to flex (a power of two)."""
    groups = 1
    while rows // groups >= 128 and rows % (2 * groups) == 0 and groups < MAX_GROUPS:
        groups *= 2
    return groups


@functools.lru_cache(maxsize=64)
def _full_mask(query_rows: int, kv_tokens: int, device: torch.device):
    """flex's block mask of an unmasked ``query_rows x kv_tokens`` pass, made once per shape, outside
    any compiled call: made inside one (flex's default when no mask is given) it broke the graph
    on the H200 image's torch 2.11, leaving flex's unfused path."""
    from torch.nn.attention.flex_attention import create_block_mask

    return create_block_mask(_sees_all, None, None, query_rows, kv_tokens, device=device)


def _sees_all(batch, head, query, key):
    return query >= 0


def _flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``q`` ``(1, Hkv, M, d)`` regrouped as ``(1, Hkv * g, M / g, d)``: unmasked, so any split of a KV
    head's rows into query heads is the same computation, and under 128 rows per head Inductor
    picks its split-KV decoding kernel."""
    from torch.nn.attention.flex_attention import AuxRequest, flex_attention

    one, hkv, rows, d = q.shape
    g = _groups(rows)
    out, aux = compiled_for(q, flex_attention)(
        q.reshape(one, hkv * g, rows // g, d),
        k,
        v,
        block_mask=_full_mask(rows // g, k.shape[2], q.device),
        scale=scale,
        enable_gqa=g > 1,
        return_aux=AuxRequest(lse=True),
    )
    return out.reshape(one, hkv, rows, d), aux.lse.reshape(one, hkv, rows).float()


# cuDNN's split: each part at least MIN_SPLIT_TOKENS keys (a part's fixed cost against its read),
# and about CTAS_PER_SM x SMs work tiles of TILE_ROWS query rows in all, so every SM is busy.
MIN_SPLIT_TOKENS = 256
CTAS_PER_SM = 2
TILE_ROWS = 128


def split_plan(rows: int, kv_heads: int, kv_tokens: int, sms: int) -> int:
    """``S``: the document's ``kv_tokens`` keys as ``S`` parts of ``kv_tokens // S`` keys (and a tail
    of ``kv_tokens % S`` keys where no ``S`` near the target divides the length), so that
    ``kv_heads x S x ceil(rows / TILE_ROWS)`` tiles come to about ``CTAS_PER_SM x sms``."""
    tiles = kv_heads * -(-rows // TILE_ROWS)
    most = kv_tokens // MIN_SPLIT_TOKENS
    target = max(1, min(round(CTAS_PER_SM * sms / tiles), most))
    if target == 1:
        return 1
    near = [s for s in range(max(2, target // 2), min(2 * target, most) + 1) if kv_tokens % s == 0]
    return min(near, key=lambda s: abs(s - target)) if near else target  # a divisor: no tail pass


def _merge_split(outs: list[torch.Tensor], lses: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~kvbench.forward.reference.merge_stacked` of ``outs`` ``(Hkv, S_i, M, d)`` and ``lses``
    ``(Hkv, S_i, M)``, the parts along dim 1 -> ``(1, Hkv, M, d)`` out and
    ``(1, Hkv, M)`` lse (one kernel when compiled, the concatenation fused in)."""
    out, lse = merge_stacked(torch.cat(outs, dim=1), torch.cat(lses, dim=1), dim=1)
    return out.unsqueeze(0), lse.unsqueeze(0)


def split_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, splits: int, run: Callable
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unmasked pass of ``q`` ``(1, Hkv, M, d)`` over ``k``, ``v`` ``(1, Hkv, L, d)`` as ``splits``
    parts of the keys, read in place, merged by log-sum-exp.

    ``run(q, k, v, scale)`` is one kernel call on ``(B, H, ., d)`` tensors returning out ``(B, H, M, d)``
    and natural lse ``(B, H, M)``. The parts go to it as one call: the document ``(Hkv, L, d)`` is
    viewed as ``(Hkv, S, chunk, d)``, batch ``Hkv``, heads ``S`` (strides ``L*d, chunk*d, d, 1``),
    beside ``q`` repeated per part; a tail of ``L - S * chunk`` keys, if any, is a second call. On
    CUDA the merge is compiled: one kernel, not a launch per part.
    """
    _, hkv, rows, d = q.shape
    length = k.shape[2]
    chunk = length // splits
    main = splits * chunk
    parts = (k[0, :, :main].unflatten(1, (splits, chunk)), v[0, :, :main].unflatten(1, (splits, chunk)))
    queries = q[0].unsqueeze(1).expand(hkv, splits, rows, d).contiguous()
    out, lse = run(queries, *parts, scale)
    outs, lses = [out], [lse]
    if main < length:  # the tail: one more part
        tail_out, tail_lse = run(q, k[:, :, main:], v[:, :, main:], scale)
        outs.append(tail_out.transpose(0, 1))
        lses.append(tail_lse.transpose(0, 1))
    return compiled_for(q, _merge_split)(outs, lses)


def _cudnn_call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    cudnn = torch.ops.aten._scaled_dot_product_cudnn_attention
    out, lse = cudnn(q, k, v, None, True, 0.0, False, False, scale=scale)[:2]  # compute_log_sumexp=True
    return out, lse.reshape(lse.shape[:3])  # cuDNN's lse is (B, H, M, 1)


@functools.lru_cache(maxsize=8)
def _sms(device: torch.device) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count


def _cudnn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cuDNN's fused attention over ``S`` in-place parts of the document (:func:`split_plan`)."""
    splits = split_plan(q.shape[2], q.shape[1], k.shape[2], _sms(q.device))
    if splits == 1:
        return _cudnn_call(q, k, v, scale)
    return split_pass(q, k, v, scale, splits, _cudnn_call)


def _split_kv(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, **options
) -> tuple[torch.Tensor, torch.Tensor]:
    """The split-KV Triton kernel and its merge (:func:`kvbench.forward.split_kernel.split_pass` with
    ``options``), over parts sized from the rows, the SM count and whether rows stop at key limits."""
    from kvbench.forward.split_kernel import split_pass, split_plan  # imports Triton, which CPU installs may lack

    limited = options.get("limits") is not None
    part = split_plan(q.shape[2], q.shape[1], k.shape[2], _sms(q.device), limited=limited)
    return split_pass(q, k, v, scale, part, **options)


_RUN = {"flash": _flash, "flex": _flex, "cudnn": _cudnn, "triton": _split_kv}


def _key(q: torch.Tensor, k: torch.Tensor) -> tuple:
    return (tuple(q.shape), tuple(k.shape), q.dtype, q.device)


def _pick(kernel: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> str:
    if kernel not in KERNELS:
        raise ValueError(f"document kernel {kernel!r}: expected one of {KERNELS}")
    if kernel != "auto":
        return kernel
    key = _key(q, k)
    candidates = lambda: {name: functools.partial(_RUN[name], q, k, v, scale) for name in AUTO_CANDIDATES}
    return timed_choice(TIMED, key, candidates, default=AUTO_CANDIDATES[0])[0]


@torch.library.custom_op("kvbench::document_pass", mutates_args=())
def document_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, kernel: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unmasked attention of folded queries over a document.

    Parameters
    ----------
    q : torch.Tensor
        ``(1, Hkv, M, d)``: the ``M`` queries that read KV head ``h`` (any order).
    k, v : torch.Tensor
        ``(1, Hkv, L, d)``.
    kernel : str
        ``auto`` | ``flash`` | ``flex`` | ``cudnn`` | ``triton`` (see the module docstring); CUDA half
        types only.

    Returns
    -------
    ``(1, Hkv, M, d)`` out (``q``'s dtype) and ``(1, Hkv, M)`` float32 natural log-sum-exp, both
    contiguous on every path, as the fake promises.
    """
    if not on_flash(q):
        out, lse = reference_pass(q, k, v, False, scale)
        return out.contiguous(), lse.contiguous()
    out, lse = _RUN[_pick(kernel, q, k, v, scale)](q, k, v, scale)
    # contiguous, as the fake promises (a compiled layer asserts it): FlashAttention-2 writes its out
    # in its queries' layout, and the folded queries are contiguous, so this is a no-op for it and
    # for cuDNN; issue 21's H200 run failed on a fake that promised flash's (B, T, H, d) layout instead
    return out.contiguous(), lse.contiguous()


@document_pass.register_fake
def _(q, k, v, scale, kernel):
    return q.new_empty(q.shape), q.new_empty(q.shape[:-1], dtype=torch.float32)


def chosen(rows: int, kv_tokens: int) -> tuple[str | None, dict[str, float]]:
    """The kernel ``auto`` chose for ``rows`` folded queries per KV head over ``kv_tokens`` keys, and
    each candidate's median ms on one layer (None and {} when that shape never ran on ``auto``)."""
    for (q_shape, k_shape, *_), timed in timings(TIMED):
        if q_shape[2] == rows and k_shape[2] == kv_tokens:
            return fastest(timed), timed
    return None, {}


def chunk_sequences(starts: torch.Tensor, groups: int, chunk: int, length: int, splits: int = 1) -> Sequences:
    """An audit's :class:`~kvbench.forward.varlen.Sequences`, built once per forward for every layer.

    ``starts`` ``(n,)`` int64 on the device (read there: graph-safe) are the chunks' first
    positions in a document of ``length`` tokens, cut into ``splits`` parts of
    ``ceil(length / splits)`` keys. Sequence ``s * n + i`` is chunk ``i``'s ``groups x chunk``
    folded query rows (at ``(s * n + i) x groups x chunk``) over part ``s``'s keys before
    ``starts[i]`` (none where the part begins after it). Part-major, so the key offsets only grow.
    """
    n, part = starts.shape[0], -(-length // splits)
    rows, device = groups * chunk, starts.device
    first = torch.arange(0, splits * part, part, dtype=torch.int32, device=device)  # (S,) each part's first key
    used = (starts.to(torch.int32).unsqueeze(0) - first.unsqueeze(1)).clamp(0, part)  # (S, n)
    return Sequences(
        torch.arange(0, (splits * n + 1) * rows, rows, dtype=torch.int32, device=device),
        torch.cat([first.repeat_interleave(n), first.new_full((1,), splits * part)]),
        used.reshape(-1),
    )


@torch.library.custom_op("kvbench::document_own_pass", mutates_args=())
def document_own_pass(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_own: torch.Tensor,
    v_own: torch.Tensor,
    new_tokens: int,
    scale: float,
    slots: torch.Tensor | None = None,
    limits: torch.Tensor | None = None,
) -> torch.Tensor:
    """Readers' queries over a shared document and, causally, their own keys, merged: the whole of
    a reuse's, a decoding reader's or an audit's attention in one split-KV Triton launch and its
    merge (no own-key pass of its own, no merge in the layer).

    ``q`` ``(1, Hkv, B * G * T, d)``: reader ``b``'s ``G`` query heads of its ``T = new_tokens``
    tokens at rows ``b * G * T + g * T + t``; ``k``, ``v`` ``(1, Hkv, L, d)``; ``k_own``, ``v_own``
    ``(B, Hkv, T', d)``, ``T' >= T``, each reader's own keys: its new tokens last (lower-right
    causal), or, with ``slots`` ``(T,)`` on the device, its cache of ``T'`` slots, token ``t``
    seeing the slots up to ``slots[t]``. With ``limits`` ``(B,)`` int32 on the device, reader ``b``
    sees only the document's keys before ``limits[b]`` (an audit's chunks: a reader is a chunk, its
    own keys its recomputed ones). Returns ``(1, Hkv, B * G * T, d)``, contiguous. Off CUDA half
    types, the float32 reference: the two passes merged by log-sum-exp.
    """
    batch = k_own.shape[0]
    if not on_flash(q):
        _, hkv, own_tokens, d = k_own.shape
        reader_rows = q.shape[2] // batch
        rows, keys = torch.arange(q.shape[2], device=q.device), torch.arange(batch * own_tokens, device=q.device)
        same_reader = keys // own_tokens == (rows // reader_rows).unsqueeze(1)
        last = rows % new_tokens + own_tokens - new_tokens if slots is None else slots[rows % new_tokens]
        allowed = same_reader & (keys % own_tokens <= last.unsqueeze(1))
        readers_keys = lambda t: t.transpose(0, 1).reshape(1, hkv, batch * own_tokens, d)
        sees = (
            None
            if limits is None
            else torch.arange(k.shape[2], device=q.device) < limits.repeat_interleave(reader_rows)[:, None]
        )
        doc_out, doc_lse = masked_pass(q, k, v, sees, scale)
        own_out, own_lse = masked_pass(q, readers_keys(k_own), readers_keys(v_own), allowed, scale)
        return merge([doc_out, own_out], [doc_lse, own_lse]).contiguous()
    own = (k_own, v_own, new_tokens)
    return _split_kv(q, k, v, scale, own=own, slots=slots, limits=limits, group_rows=q.shape[2] // batch)[0]


@document_own_pass.register_fake
def _(q, k, v, k_own, v_own, new_tokens, scale, slots=None, limits=None):
    return q.new_empty(q.shape)


def chunked_document_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunks: Sequences, chunk: int, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of ``n`` chunks' queries, each over its own prefix of one document (see the module docstring).

    Parameters
    ----------
    q : torch.Tensor
        ``(1, H, n * chunk, d)``: chunk ``i``'s queries at ``i * chunk ..``.
    k, v : torch.Tensor
        ``(1, Hkv, L, d)``: the document, read in place.
    chunks : Sequences
        :func:`chunk_sequences` of the chunks' starts (with this ``chunk``, ``H / Hkv`` groups and
        ``L``), in ``S`` parts (``S = len(used_k) / n``): chunk ``i`` sees keys ``< starts[i]``.
    chunk : int
        Tokens per chunk.
    scale : float
        The scores' scale (``d ** -0.5`` for these models).

    Returns
    -------
    ``(1, H, n * chunk, d)`` out and ``(1, H, n * chunk)`` float32 lse; a chunk at 0 sees no key
    (out 0, lse -inf).
    """
    _, heads, rows, d = q.shape
    hkv, length = k.shape[1], k.shape[2]
    n, g = rows // chunk, heads // hkv
    splits = chunks.used_k.shape[0] // n
    # (Hkv, G, n, chunk, d) -> (n, G, chunk, Hkv, d): chunk i's G x chunk queries of each KV head
    # are a sequence, as the reader folds its question (one read of the prefix per KV head); once per part
    folded = q[0].reshape(hkv, g, n, chunk, d).permute(2, 1, 3, 0, 4).reshape(1, rows * g, hkv, d)
    folded = folded.expand(splits, -1, -1, -1).reshape(splits * rows * g, hkv, d)
    in_place = lambda t: t[0].transpose(0, 1)  # (L, Hkv, d) views: flash reads the document where it is
    part = -(-length // splits)
    out, lse = varlen_pass(folded, in_place(k), in_place(v), *chunks, g * chunk, part, scale)
    out, lse = out.reshape(splits, rows * g, hkv, d), lse.reshape(hkv, splits, rows * g).permute(1, 2, 0)
    # a sequence with no key: out 0 and lse +inf; -inf makes it contribute nothing to a merge
    no_key = (chunks.used_k == 0).reshape(splits, n, 1, 1).expand(-1, -1, g * chunk, 1).reshape(splits, -1, 1)
    lse = lse.masked_fill(no_key, float("-inf"))  # (S, n x G x chunk, Hkv); out is 0 there (varlen_pass)
    if splits > 1:
        out, lse = merge_stacked(out, lse, dim=0)  # a chunk at 0: every part -inf, so out 0 and lse -inf
    else:
        out, lse = out[0], lse[0]
    out = out.reshape(n, g, chunk, hkv, d).permute(3, 1, 0, 2, 4).reshape(1, heads, rows, d)
    return out, lse.reshape(n, g, chunk, hkv).permute(3, 1, 0, 2).reshape(1, heads, rows)
