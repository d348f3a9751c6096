"""Transformers configs for the random-weight architectures, and the shape questions every part asks.

The shapes themselves are data in :mod:`kvbench.config.catalog` (``ARCHITECTURES``).
"""

from __future__ import annotations

from kvbench.config.catalog import ARCHITECTURES
from kvbench.config.shape_math import head_dim

__all__ = ["ARCHITECTURES", "build_config", "head_dim"]


def build_config(arch: str):
    """A transformers ``PretrainedConfig`` for the named architecture."""
    from transformers import AutoConfig

    spec = dict(ARCHITECTURES[arch])
    return AutoConfig.for_model(spec.pop("model_type"), **spec)
