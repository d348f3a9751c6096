"""Transformers configs for the random-weight architectures, and the shape questions every part asks.

The shapes themselves are data in :mod:`kvbench.config.catalog` (``ARCHITECTURES``).
"""

from __future__ import annotations

from kvbench.config.catalog import ARCHITECTURES

__all__ = ["ARCHITECTURES", "build_config", "head_dim"]


def head_dim(config) -> int:
    """Per-head dimension of a transformers config (explicit ``head_dim``, else hidden / heads)."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def build_config(arch: str):
    """A transformers ``PretrainedConfig`` for the named architecture."""
    from transformers import AutoConfig

    spec = dict(ARCHITECTURES[arch])
    return AutoConfig.for_model(spec.pop("model_type"), **spec)
