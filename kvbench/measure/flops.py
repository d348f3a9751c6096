"""Analytic FLOPs and KV bytes of a model's forwards, and the row columns of a point.

The arithmetic is :mod:`kvbench.config.shape_math` (shared with the floors of hardware not at
hand, :mod:`kvbench.economics.ridge`); this module adds what a measurement point records.
"""

from __future__ import annotations

from kvbench.config.shape_math import forward_flops, kv_bytes, linear_flops_per_token

__all__ = ["forward_flops", "kv_bytes", "linear_flops_per_token", "point_fields"]


def point_fields(config, doc_tokens: int, query_tokens: int, itemsize: int) -> dict[str, float]:
    """Row columns of what a (document, question) point is, timed or not: the question's
    length, the document's KV bytes, and the FLOPs of a one-pass prefill and of reuse."""
    return dict(
        query_tokens=query_tokens,
        kv_bytes=kv_bytes(config, doc_tokens, itemsize),
        prefill_flops=forward_flops(config, doc_tokens + query_tokens),
        reuse_flops=forward_flops(config, query_tokens, cached_tokens=doc_tokens),
    )
