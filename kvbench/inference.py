"""The three forward passes the harness compares: prefill, reuse, and greedy continuation.

All run under ``torch.inference_mode`` with batch size 1 and keep only the last position's
logits (``logits_to_keep=1``), as a server computing time-to-first-token would.
"""

from __future__ import annotations

import torch

from kvbench.artifact import KVArtifact


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
def greedy_continue(model, cache, first_logits: torch.Tensor, steps: int) -> list[int]:
    """Greedy tokens: the argmax of ``first_logits`` then ``steps - 1`` more decoded from ``cache``."""
    token = first_logits.argmax(dim=-1, keepdim=True)
    tokens = [int(token)]
    for _ in range(steps - 1):
        token = extend(model, cache, token).argmax(dim=-1, keepdim=True)
        tokens.append(int(token))
    return tokens
