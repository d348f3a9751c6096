"""Float32 attention that also returns its log-sum-exp: the reference every kernel is checked against.

Used where no fused kernel runs (CPU, float32) and for the readers' own few keys, where a
float32 matmul is cheap and a mask built on the device keeps shapes static.
"""

from __future__ import annotations

import torch


def masked_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor | None, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention where query ``i`` sees key ``j`` iff ``allowed[i, j]`` (``(Tq, Tk)`` bool; None: all).

    ``q`` ``(B, H, Tq, d)``; ``k``, ``v`` ``(B, Hkv, Tk, d)`` with ``H % Hkv == 0`` (grouped-query
    attention). Returns ``(B, H, Tq, d)`` out in ``q``'s dtype and ``(B, H, Tq)`` float32 natural
    log-sum-exp. A query that sees no key gets out 0 and lse -inf (it contributes nothing to a
    :func:`kvbench.forward.attention.merge`).
    """
    groups = q.shape[1] // k.shape[1]
    kf = k.float().repeat_interleave(groups, dim=1)
    vf = v.float().repeat_interleave(groups, dim=1)
    scores = torch.matmul(q.float(), kf.transpose(-1, -2)) * scale  # (B, H, Tq, Tk)
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(scores, dim=-1)
    probs = torch.softmax(scores, dim=-1)
    if allowed is not None:
        probs = probs.nan_to_num(0.0)  # rows with no key: softmax of all -inf
    return torch.matmul(probs, vf).to(q.dtype), lse


def reference_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`masked_pass` with no mask, or lower-right causal (query ``i`` sees keys ``<= Tk - Tq + i``)."""
    allowed = None
    if causal:
        tq, tk = q.shape[2], k.shape[2]
        allowed = torch.ones(tq, tk, dtype=torch.bool, device=q.device).tril(diagonal=tk - tq)
    return masked_pass(q, k, v, allowed, scale)
