"""The three forward passes the harness compares: prefill, reuse, and greedy continuation.

All run under ``torch.inference_mode`` with batch size 1 and keep only the last position's
logits (``logits_to_keep=1``), as a server computing time-to-first-token would.
"""

from __future__ import annotations

import torch

from kvbench.kv.artifact import KVArtifact


@torch.inference_mode()
def prefill(model, input_ids: torch.Tensor):
    """Forward ``input_ids`` ``(1, T)`` from an empty cache.

    Returns
    -------
    logits : torch.Tensor
        ``(1, vocab)`` float32 logits of the last position.
    cache : transformers.DynamicCache
        KV of all ``T`` tokens; layer ``i`` holds ``(1, kv_heads, T, head_dim)``.
    """
    out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1].float(), out.past_key_values


@torch.inference_mode()
def extend(model, cache, input_ids: torch.Tensor) -> torch.Tensor:
    """Forward ``input_ids`` ``(1, Q)`` on top of ``cache`` (which grows by Q); ``(1, vocab)`` logits."""
    out = model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    return out.logits[:, -1].float()


@torch.inference_mode()
def reuse(model, artifact: KVArtifact, query_ids: torch.Tensor):
    """Reader path: attach the artifact to a fresh cache and run only the question.

    Returns ``(logits (1, vocab), cache)``; the artifact's tensors are not modified because
    the cache's first append concatenates into new storage.
    """
    cache = artifact.to_cache(model.config)
    return extend(model, cache, query_ids), cache


@torch.inference_mode()
def greedy_continue(model, cache, first_logits: torch.Tensor, steps: int) -> tuple[list[int], list[float]]:
    """Greedy decoding: the argmax of ``first_logits`` ``(1, vocab)``, then ``steps - 1`` more from ``cache``.

    Returns
    -------
    tokens : list[int]
        The ``steps`` chosen token ids.
    margins : list[float]
        Per step, the top-1 logit minus the top-2 logit of the logits the token was chosen
        from: how near a tie each choice was (0 at an exact tie).
    """
    logits = first_logits
    chosen: list[torch.Tensor] = []
    top2: list[torch.Tensor] = []
    for step in range(steps):
        if step:
            logits = extend(model, cache, chosen[-1])
        chosen.append(logits.argmax(dim=-1, keepdim=True))  # (1, 1), fed back without a host sync
        top2.append(logits.topk(2, dim=-1).values)  # (1, 2)
    best = torch.cat(top2).float().cpu()
    return torch.cat(chosen).flatten().tolist(), (best[:, 0] - best[:, 1]).tolist()
