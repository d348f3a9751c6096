"""Attention over a shared, read-only document prefix: two passes merged by log-sum-exp.

A reader's question tokens attend to the document's KV (``L`` tokens, stored once, read in
place) and to their own KV (``T`` tokens, causal). Instead of copying both into one buffer,
each part is attended separately and the partial results are merged exactly by their
log-sum-exp (the cascade / FlashDecoding identity):

    out = sum_i out_i * exp(lse_i - lse),   lse = logsumexp_i(lse_i)

The prefix pass needs no mask (every question token sees the whole document), so the
query dimension may hold anything: the ``G = heads / kv_heads`` query heads that share a KV
head and all ``B`` readers of one document are folded into it. The prefix is then read once
per KV head for the whole batch, and grouped-query attention needs no repeated KV. Which
kernel runs that pass (FlashAttention-2 or cuDNN, the faster per shape) is
:mod:`kvbench.forward.document_pass`'s business.

Decoding readers keep their own KV between forwards (:func:`cached_prefix_attention`,
:mod:`kvbench.forward.own_pass`): a static buffer per reader that each forward writes its new
tokens into at slots held on the device, so one captured CUDA graph serves every decode step. An
audit recomputes several chunks of one document in one forward (:func:`chunked_prefix_attention`):
each chunk sees the document's KV before it and, causally, its own tokens.

On CUDA the question's own pass is PyTorch's FlashAttention-2 kernel
(``aten._scaled_dot_product_flash_attention``: native GQA, lower-right causal alignment when
``T_q < T_k``, log-sum-exp returned). Elsewhere a float32 reference computes the same
quantities (tests, CPU runs).
"""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from kvbench.forward.document_pass import chunked_document_pass, document_own_pass, document_pass
from kvbench.forward.own_pass import own_cache_pass, write_cache
from kvbench.forward.reference import merge, on_flash, reference_pass
from kvbench.forward.varlen import Sequences

KV = tuple[torch.Tensor, torch.Tensor]  # a layer's keys and values


def flash_layout(out: torch.Tensor) -> torch.Tensor:
    """``out`` ``(B, H, T, d)`` stored as ``(B, T, H, d)`` (a no-op when it already is): what
    FlashAttention-2 writes for queries stored so, as the layer's projections store them."""
    return out.transpose(1, 2).contiguous().transpose(1, 2)


@torch.library.custom_op("kvbench::attention_pass", mutates_args=())
def attention_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One attention pass that also returns its log-sum-exp.

    Parameters
    ----------
    q : torch.Tensor
        ``(B, H, Tq, d)``.
    k, v : torch.Tensor
        ``(B, Hkv, Tk, d)`` with ``H % Hkv == 0`` (grouped-query attention, no repeat).
    causal : bool
        Lower-right aligned causal mask (query ``i`` sees keys ``<= Tk - Tq + i``).

    Returns
    -------
    out : torch.Tensor
        ``(B, H, Tq, d)`` in ``q``'s dtype.
    lse : torch.Tensor
        ``(B, H, Tq)`` float32, natural log-sum-exp of the scaled scores.
    """
    if on_flash(q):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, causal, False, scale=scale)[:2]
    else:
        out, lse = reference_pass(q, k, v, causal, scale)
    # one layout on every path, the one flash writes ((B, T, H, d) memory), as the fake promises
    return flash_layout(out), lse.contiguous()


@attention_pass.register_fake
def _(q, k, v, causal, scale):
    return flash_layout(q.new_empty(q.shape)), q.new_empty(q.shape[:-1], dtype=torch.float32)


def prefix_attention(
    q: torch.Tensor,
    k_own: torch.Tensor,
    v_own: torch.Tensor,
    k_prefix: torch.Tensor,
    v_prefix: torch.Tensor,
    scale: float,
    kernel: str = "flash",
) -> torch.Tensor:
    """Attention of new tokens over a document prefix plus their own causal keys.

    Parameters
    ----------
    q : torch.Tensor
        ``(B, H, T, d)``: T new tokens of each of B readers.
    k_own, v_own : torch.Tensor
        ``(B, Hkv, T', d)``, ``T' >= T``: each reader's own keys (its new tokens last).
    k_prefix, v_prefix : torch.Tensor
        ``(1, Hkv, L, d)``: one document shared by every reader and read once for all of
        them; or ``(B, Hkv, L, d)``: a copy per reader, each read by its reader alone (what a
        plain batched cache does).
    kernel : str
        The document pass's kernel (:data:`kvbench.forward.document_pass.KERNELS`).

    Returns
    -------
    torch.Tensor
        ``(B, H, T, d)``.
    """
    if kernel == "triton" and k_prefix.shape[0] == 1:  # the document and the own keys in one launch
        return _document_and_own_pass(q, (k_own, v_own), (k_prefix, v_prefix), scale)
    doc_out, doc_lse = _document_pass(q, k_prefix, v_prefix, scale, kernel)
    own_out, own_lse = attention_pass(q, k_own, v_own, True, scale)
    return merge([doc_out, own_out], [doc_lse, own_lse])


def _document_and_own_pass(
    q: torch.Tensor, own: KV, document: KV, scale: float, slots: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`prefix_attention` (or, with ``slots``, :func:`cached_prefix_attention`) of ``q``
    ``(B, H, T, d)`` over a shared ``document`` ``(1, Hkv, L, d)`` and its ``own`` keys and values
    (or its cache) on :func:`kvbench.forward.document_pass.document_own_pass`, folded as
    :func:`_document_pass` folds. Returns ``(B, H, T, d)``."""
    B, H, T, d = q.shape
    hkv = document[0].shape[1]
    folded = q.reshape(B, hkv, (H // hkv) * T, d).transpose(0, 1).reshape(1, hkv, -1, d)  # row b*G*T + g*T + t
    out = document_own_pass(folded, *document, *own, T, scale, slots)
    return out.reshape(hkv, B, -1, d).transpose(0, 1).reshape(B, H, T, d)


def _document_pass(
    q: torch.Tensor, k_prefix: torch.Tensor, v_prefix: torch.Tensor, scale: float, kernel: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unmasked attention of ``q`` ``(B, H, T, d)`` over the document ``(1 or B, Hkv, L, d)``.

    Returns ``(B, H, T, d)`` out and ``(B, H, T)`` float32 log-sum-exp.
    """
    B, H, T, d = q.shape
    hkv = k_prefix.shape[1]
    shared = k_prefix.shape[0] == 1
    # (B, Hkv, G, T, d) -> (1, Hkv, B*G*T, d) for a shared prefix, (B, Hkv, G*T, d) per reader:
    # no mask on the prefix, so any order of the queries is fine
    folded = q.reshape(B, hkv, (H // hkv) * T, d)
    if shared:
        folded = folded.transpose(0, 1).reshape(1, hkv, -1, d)
        doc_out, doc_lse = document_pass(folded, k_prefix, v_prefix, scale, kernel)
    else:  # a copy per reader: B documents, each read by its own rows
        doc_out, doc_lse = attention_pass(folded, k_prefix, v_prefix, False, scale)
    if shared:
        doc_out, doc_lse = doc_out.reshape(hkv, B, -1, d).transpose(0, 1), doc_lse.reshape(hkv, B, -1).transpose(0, 1)
    return doc_out.reshape(B, H, T, d), doc_lse.reshape(B, H, T)


def cached_prefix_attention(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    k_prefix: torch.Tensor,
    v_prefix: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
    scale: float,
    kernel: str = "flash",
    own_kernel: str = "masked",
    steps: Sequences | None = None,
) -> torch.Tensor:
    """:func:`prefix_attention` for readers that keep their own KV between forwards (decoding).

    The new tokens' ``k_new``, ``v_new`` ``(B, Hkv, T, d)`` are written into each reader's cache
    ``(B, Hkv, S, d)`` at ``slots`` (``(T,)`` long on the device), then ``q``
    ``(B, H, T, d)`` attends to the document (``(1 or B, Hkv, L, d)``, as in
    :func:`prefix_attention`) and, causally, to the reader's cache: its past and the new tokens
    in one pass (writing first makes the new token one more cache slot, so two parts, not
    three, are merged by log-sum-exp; ``own_kernel`` and ``steps``: :func:`own_cache_pass`'s).
    With ``kernel="triton"`` and a shared document both run in one Triton launch, the cache one
    more part of it. Returns ``(B, H, T, d)``.
    """
    write_cache(k_cache, v_cache, k_new, v_new, slots)
    if kernel == "triton" and k_prefix.shape[0] == 1:  # the document and the cache in one launch
        return _document_and_own_pass(q, (k_cache, v_cache), (k_prefix, v_prefix), scale, slots)
    doc_out, doc_lse = _document_pass(q, k_prefix, v_prefix, scale, kernel)
    own_out, own_lse = own_cache_pass(q, k_cache, v_cache, slots, scale, own_kernel, steps)
    return merge([doc_out, own_out], [doc_lse, own_lse])


def chunked_prefix_attention(
    q: torch.Tensor,
    k_new: torch.Tensor,
    v_new: torch.Tensor,
    k_doc: torch.Tensor,
    v_doc: torch.Tensor,
    chunks: Sequences,
    chunk: int,
    k_out: torch.Tensor,
    v_out: torch.Tensor,
    scale: float,
    kernel: str = "varlen",
) -> torch.Tensor:
    """Several chunks of one document recomputed in one forward, each from the stored KV before it (an audit).

    ``q`` ``(1, H, n * chunk, d)`` and ``k_new``, ``v_new`` ``(1, Hkv, n * chunk, d)`` are the
    chunks' tokens side by side. Chunk ``i`` sees the document's stored ``k_doc``, ``v_doc``
    ``(1, Hkv, L, d)`` before its first position (``chunks``:
    :func:`kvbench.forward.document_pass.chunk_sequences` of the chunks' first positions) and,
    causally, its own tokens, never another chunk's. The recomputed keys and values are written
    into ``k_out``, ``v_out`` (same shape as ``k_new``) for the auditor to compare with the stored
    ones. ``kernel``: ``varlen`` (FlashAttention-2's variable-length call over the prefixes, in as
    many parts as ``chunks`` holds, a causal pass over the chunks' own keys, and a merge) or
    ``triton`` (all of it in one launch, :func:`kvbench.forward.document_pass.document_own_pass`
    with a chunk as a reader: ``chunks`` whole, its ``used_k`` the starts). Returns ``(1, H, n * chunk, d)``.
    """
    k_out.copy_(k_new)
    v_out.copy_(v_new)
    heads, rows, n = q.shape[1], q.shape[2], q.shape[2] // chunk
    # each chunk's own keys: the chunks as a batch, (1, h, n * chunk, d) -> (n, h, chunk, d)
    per_chunk = lambda t: t[0].unflatten(1, (n, chunk)).transpose(0, 1)
    if kernel == "triton":
        hkv, d = k_doc.shape[1], q.shape[3]
        # (Hkv, G, n, chunk, d) -> (Hkv, n, G, chunk, d): rows grouped by chunk, G x chunk rows each
        folded = q[0].reshape(hkv, heads // hkv, n, chunk, d).transpose(1, 2).reshape(1, hkv, rows * heads // hkv, d)
        own = (per_chunk(k_new), per_chunk(v_new))
        out = document_own_pass(folded, k_doc, v_doc, *own, chunk, scale, limits=chunks.used_k)
        return out.reshape(hkv, n, heads // hkv, chunk, d).transpose(1, 2).reshape(1, heads, rows, d)
    doc_out, doc_lse = chunked_document_pass(q, k_doc, v_doc, chunks, chunk, scale)
    own_out, own_lse = attention_pass(per_chunk(q), per_chunk(k_new), per_chunk(v_new), True, scale)
    own_out = own_out.transpose(0, 1).reshape(1, heads, rows, q.shape[3])
    return merge([doc_out, own_out], [doc_lse, own_lse.transpose(0, 1).reshape(1, heads, rows)])


# In an isolated causal GQA benchmark on an H200 (bf16, 8k-32k tokens) cuDNN's fused attention ran
# ~600 TFLOP/s and FlashAttention-2 ~350; flash, efficient and math remain as fallbacks.
_PREFILL_BACKENDS = [
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]


@torch.library.custom_op("kvbench::causal_attention", mutates_args=())
def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal self-attention of a prefill: ``(B, H, T, d)`` queries on ``(B, Hkv, T, d)`` keys.

    A custom op so the backend is chosen when it runs (the fastest available, in the order
    above), not frozen by the compiler's decomposition of SDPA into one kernel.
    """
    with sdpa_kernel(_PREFILL_BACKENDS, set_priority=True):
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
    return out.contiguous()


@causal_attention.register_fake
def _(q, k, v, scale):
    return q.new_empty(q.shape)


def kvbench_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    scaling=None,
    dropout=0.0,
    kvbench_prefix=None,
    kvbench_own=None,
    kvbench_chunks=None,
    kvbench_kernel="flash",
    **kwargs,
):
    """transformers attention function (``AttentionInterface``) of the fast reader.

    ``query`` ``(B, H, T, d)``, ``key``/``value`` ``(B, Hkv, T', d)`` as the layer made them;
    ``kvbench_prefix`` is the layer's ``(k, v)`` document KV or None (a prefill);
    ``kvbench_own`` the layer's ``(k_cache, v_cache, slots, own_kernel, steps)`` of each reader's own KV
    (:func:`cached_prefix_attention`; needs ``kvbench_prefix``) or None; ``kvbench_chunks`` the
    layer's ``(chunks, chunk_kernel, chunk, k_out, v_out)`` of an audit
    (:func:`chunked_prefix_attention`; needs ``kvbench_prefix``) or None; ``kvbench_kernel`` the
    document pass's kernel. No mask is read:
    the alignment is lower-right causal by construction. Returns ``((B, T, H, d), None)`` as
    transformers expects.
    """
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    if kvbench_prefix is None:
        if kvbench_chunks is not None or kvbench_own is not None:
            raise ValueError("kvbench_chunks and kvbench_own need the document's KV (kvbench_prefix)")
        out = causal_attention(query, key, value, scale)
        return out.transpose(1, 2).contiguous(), None
    k_doc, v_doc = kvbench_prefix
    if kvbench_chunks is not None:
        chunks, chunk_kernel, chunk, k_out, v_out = kvbench_chunks
        out = chunked_prefix_attention(
            query, key, value, k_doc, v_doc, chunks, chunk, k_out, v_out, scale, chunk_kernel
        )
    elif kvbench_own is not None:
        k_cache, v_cache, slots, own_kernel, steps = kvbench_own
        out = cached_prefix_attention(
            query, key, value, k_doc, v_doc, k_cache, v_cache, slots, scale, kvbench_kernel, own_kernel, steps
        )
    else:
        out = prefix_attention(query, key, value, k_doc, v_doc, scale, kvbench_kernel)
    return out.transpose(1, 2).contiguous(), None


ATTN_IMPL = "kvbench"


def register() -> str:
    """Register :func:`kvbench_attention` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_IMPL, kvbench_attention)
    return ATTN_IMPL
