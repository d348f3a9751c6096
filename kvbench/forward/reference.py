"""Float32 attention that also returns its log-sum-exp: the reference every kernel is checked against.

Used where no fused kernel runs (CPU, float32) and for the readers' own few keys, where a
float32 matmul is cheap and a mask built on the device keeps shapes static. Also the merge of
partial attentions by their log-sum-exp, which every pass over split keys ends with.
"""

from __future__ import annotations

from typing import cast

import torch


def on_flash(q: torch.Tensor) -> bool:
    """Whether FlashAttention takes queries like ``q`` (CUDA, half types); elsewhere the reference runs."""
    return q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)


def masked_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention where query ``i`` sees key ``j`` iff ``allowed[i, j]`` (``(Tq, Tk)`` bool; None: all).

    ``q`` ``(B, H, Tq, d)``; ``k``, ``v`` ``(B, Hkv, Tk, d)`` with ``H % Hkv == 0`` (grouped-query
    attention). Returns ``(B, H, Tq, d)`` out in ``q``'s dtype and ``(B, H, Tq)`` float32 natural
    log-sum-exp. A query that sees no key gets out 0 and lse -inf (it contributes nothing to a
    :func:`merge`).
    """
    batch, heads, tq, d = q.shape
    hkv, tk = k.shape[1], k.shape[2]
    # query head h reads KV head h // G: fold the G heads of a KV head into its rows, so K and V
    # are read as they are instead of repeated G times (a decode step's own-cache pass is this)
    qf = q.float().reshape(batch, hkv, (heads // hkv) * tq, d)
    scores = (torch.matmul(qf, k.float().transpose(-1, -2)) * scale).view(batch, hkv, heads // hkv, tq, tk)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1).reshape(batch, heads, tq)
    probs = torch.softmax(scores, dim=-1)
    if allowed is not None:
        probs = probs.nan_to_num(0.0)  # rows with no key: softmax of all -inf
    out = torch.matmul(probs.reshape(batch, hkv, -1, tk), v.float()).reshape(batch, heads, tq, d)
    return out.to(q.dtype), lse


def reference_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`masked_pass` with no mask, or lower-right causal (query ``i`` sees keys ``<= Tk - Tq + i``)."""
    allowed = None
    if causal:
        tq, tk = q.shape[2], k.shape[2]
        allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=tk - tq)
    return masked_pass(q, k, v, allowed, scale)


def _weight(lse: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """A part's share of the union, ``exp(lse - total)``, 0 where the part saw no key (lse -inf);
    with a trailing unit dimension, to scale the part's ``(..., T, d)`` out."""
    return torch.where(lse.isneginf(), 0.0, (lse - total).exp()).unsqueeze(-1)


def merge(outs: list[torch.Tensor], lses: list[torch.Tensor]) -> torch.Tensor:
    """Combine partial attentions over disjoint key sets into the attention over their union.

    ``outs[i]`` ``(..., T, d)`` with ``lses[i]`` ``(..., T)``. A part whose lse is -inf (it saw
    no key) contributes nothing. Returns ``(..., T, d)`` in the dtype of ``outs[0]``,
    accumulated in float32.
    """
    lse = torch.stack(lses).logsumexp(dim=0)
    total = sum(o.float() * _weight(l, lse) for o, l in zip(outs, lses))
    return cast(torch.Tensor, total).to(outs[0].dtype)  # a tensor, not sum's 0: stack above needs a part


def merge_stacked(out: torch.Tensor, lse: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`merge` of parts stacked along ``dim`` of ``out`` ``(..., P, ..., T, d)`` and ``lse``
    (the same without ``d``), for many parts in one tensor: out without ``dim`` in ``out``'s dtype,
    and the union's float32 lse."""
    total = lse.logsumexp(dim=dim)
    merged = (out.float() * _weight(lse, total.unsqueeze(dim))).sum(dim=dim)
    return merged.to(out.dtype), total
