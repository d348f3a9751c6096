"""Analytic FLOPs and KV bytes of a decoder-only transformer, from its shape alone.

A shape is anything with the transformers config attributes (``num_hidden_layers``,
``hidden_size``, ``num_attention_heads``, optional ``num_key_value_heads`` and ``head_dim``,
``intermediate_size``, ``vocab_size``): a model's config, or an entry of
:data:`kvbench.config.catalog.ARCHITECTURES` wrapped by :func:`shape`. Torch-free and at the
bottom of the house, so that the measured floors (:mod:`kvbench.measure.flops`) and the floors
of hardware not at hand (:mod:`kvbench.economics.ridge`) count the same FLOPs.

Counts multiply-adds as 2 FLOPs; includes the layers' projections and MLPs, causal
attention scores and weighted sums, and the LM head for the one position whose logits are
kept (``logits_to_keep=1``). Norms, rotary embeddings and softmax are left out (<1%).
"""

from __future__ import annotations

import types
from collections.abc import Mapping


def shape(spec: Mapping) -> types.SimpleNamespace:
    """A catalogue entry (a dict of config keys) as an object with attributes, like a config."""
    return types.SimpleNamespace(**spec)


def head_dim(config) -> int:
    """Per-head dimension (explicit ``head_dim``, else hidden / heads)."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _dims(config) -> tuple[int, int, int, int, int, int, int]:
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return (
        config.num_hidden_layers,
        config.hidden_size,
        config.num_attention_heads,
        kv_heads,
        head_dim(config),
        config.intermediate_size,
        config.vocab_size,
    )


def linear_flops_per_token(config) -> float:
    """2 x (weights of every per-layer projection and MLP matrix)."""
    layers, hidden, heads, kv_heads, dim, inter, _ = _dims(config)
    attn = hidden * dim * (2 * heads + 2 * kv_heads)  # q, o and k, v projections
    mlp = 3 * hidden * inter  # gate, up, down
    return 2.0 * layers * (attn + mlp)


def forward_flops(config, new_tokens: int, cached_tokens: int = 0) -> float:
    """FLOPs of one forward over ``new_tokens`` after ``cached_tokens`` already in the cache.

    Token ``i`` (0-based) of the new ones attends to ``cached_tokens + i + 1`` keys.
    """
    layers, hidden, heads, _, dim, _, vocab = _dims(config)
    keys_attended = new_tokens * cached_tokens + new_tokens * (new_tokens + 1) / 2
    attention = 2.0 * 2 * layers * heads * dim * keys_attended  # QK^T and AV
    lm_head = 2.0 * hidden * vocab  # one kept position
    return linear_flops_per_token(config) * new_tokens + attention + lm_head


def kv_bytes(config, tokens: int, itemsize: int) -> int:
    """Bytes of keys and values for ``tokens``: 2 x layers x kv_heads x head_dim x itemsize x tokens."""
    layers, _, _, kv_heads, dim, _, _ = _dims(config)
    return 2 * layers * kv_heads * dim * itemsize * tokens
