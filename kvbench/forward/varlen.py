"""FlashAttention-2's variable-length pass as one op: many short query sequences, each over keys of its own.

Two of the reader's passes are a batch of small, independent, unmasked attentions:

* a decode step over each reader's own cache (:mod:`kvbench.forward.own_pass`): sequence ``b`` is
  reader ``b``'s ``G`` query heads of one token over the slots it has filled;
* an audit's chunked document pass (:mod:`kvbench.forward.document_pass`): a sequence is a chunk's
  queries over the document's keys before it, or over one part of them (the document cut in parts,
  since this call does not split keys across CTAs itself).

FlashAttention-2's variable-length call runs such a batch as one kernel and reads every
sequence's keys where they are. :func:`varlen_pass` is that call as a custom op (on CUDA half
types; elsewhere a float32 reference with the same semantics, so CPU tests exercise every
caller's folding). Its callers keep everything else outside the op, in the compiled decoder
layer, where Inductor fuses it with its neighbours: the folding of queries into rows and back,
and the :class:`Sequences` index, which they build once per forward, not once per layer (its
offsets and key counts are a few tiny kernels, which a 36-layer step would otherwise launch 36
times; inside the op they ran eagerly, unfused).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from kvbench.forward.reference import masked_pass, on_flash


class Sequences(NamedTuple):
    """Where each sequence's queries and keys are, in FlashAttention-2's variable-length terms.

    Attributes
    ----------
    cu_q : torch.Tensor
        ``(n + 1,)`` int32: sequence ``i``'s query rows are ``cu_q[i] .. cu_q[i + 1] - 1``.
    cu_k : torch.Tensor
        ``(n + 1,)`` int32: its keys begin at ``cu_k[i]``.
    used_k : torch.Tensor
        ``(n,)`` int32: and it reads ``used_k[i]`` of them (0: none).
    """

    cu_q: torch.Tensor
    cu_k: torch.Tensor
    used_k: torch.Tensor


@torch.library.custom_op("kvbench::varlen_pass", mutates_args=())
def varlen_pass(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_q: torch.Tensor,
    cu_k: torch.Tensor,
    used_k: torch.Tensor,
    max_q: int,
    max_k: int,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unmasked attention of each sequence's queries over its keys (:class:`Sequences`' fields).

    Parameters
    ----------
    q : torch.Tensor
        ``(rows, Hkv, d)``: one query head per KV head (callers fold a KV head's ``G`` query heads
        into rows, so the keys are read once for all of them).
    k, v : torch.Tensor
        ``(keys, Hkv, d)``, read in place (a strided view is fine: its last dimension contiguous).
    max_q, max_k : int
        The most query rows and keys of any one sequence (the kernel's grid).

    Returns
    -------
    out : torch.Tensor
        ``(rows, Hkv, d)`` contiguous, in ``q``'s dtype; 0 for a sequence with no key.
    lse : torch.Tensor
        ``(Hkv, rows)`` float32 natural log-sum-exp; ``+inf`` for a sequence with no key (what
        FlashAttention-2 writes; callers that can have one mask it).
    """
    if on_flash(q):
        out, lse = torch.ops.aten._flash_attention_forward(
            q, k, v, cu_q, cu_k, max_q, max_k, 0.0, False, False, scale=scale, seqused_k=used_k
        )[:2]
    else:
        out, lse = _reference(q, k, v, Sequences(cu_q, cu_k, used_k), scale)
    # flash writes out in q's layout, and folded queries may be a strided view (one reader's step:
    # its heads are its rows already); contiguous on every path, as the fake promises
    return out.contiguous(), lse


@varlen_pass.register_fake
def _(q, k, v, cu_q, cu_k, used_k, max_q, max_k, scale):
    return q.new_empty(q.shape), q.new_empty(q.shape[1], q.shape[0], dtype=torch.float32)


def _reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seqs: Sequences, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`varlen_pass` in float32 as one masked pass over every key: row ``r`` of sequence ``s``
    sees key ``j`` iff ``cu_k[s] <= j < cu_k[s] + used_k[s]``. Built on the device without a host
    sync, so it also runs inside a CUDA graph (float32 on CUDA); its mask is every row by every key,
    fine for tests and CPU runs, not for speed. Returns what flash returns (out, which the op makes
    contiguous, and lse ``+inf`` where a sequence has no key)."""
    rows = torch.arange(q.shape[0], dtype=seqs.cu_q.dtype, device=q.device)
    seq = torch.searchsorted(seqs.cu_q, rows, right=True) - 1  # (rows,)
    first = seqs.cu_k[seq].unsqueeze(-1)
    keys = torch.arange(k.shape[0], device=q.device)
    allowed = (keys >= first) & (keys < first + seqs.used_k[seq].unsqueeze(-1))  # (rows, keys)
    heads_first = lambda t: t.transpose(0, 1).unsqueeze(0)  # (n, Hkv, d) -> (1, Hkv, n, d)
    out, lse = masked_pass(heads_first(q), heads_first(k), heads_first(v), allowed, scale)
    return out[0].transpose(0, 1), lse[0].masked_fill(lse[0].isneginf(), float("inf"))
