"""Roofline floors: the least time the hardware allows for a prefill, a reuse, a batch of readers.

A forward must read every weight it uses once and do its FLOPs; a reuse must also read the
document's KV once. Its floor is the larger of bytes / measured bandwidth and FLOPs /
measured matmul peak (:mod:`kvbench.measure.calibrate`). Efficiency = floor / measured time (1.0 is
the roofline).
"""

from __future__ import annotations

from typing import Any

from kvbench.measure.calibrate import Calibration
from kvbench.measure.flops import forward_flops


def weight_bytes(model: Any) -> int:
    """Bytes of weights one forward of ``model`` (a transformers ``PreTrainedModel``) reads.

    Every parameter once, except an untied input embedding table, of which a forward reads only
    its tokens' rows (negligible).
    """
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight.data_ptr() == embed.data_ptr()
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    return total if tied else total - embed.numel() * embed.element_size()


def _memory_ms(nbytes: float, cal: Calibration) -> float:
    """``nbytes`` read once at the measured device bandwidth, ms."""
    return nbytes / (cal.hbm_gbps * 1e9) * 1e3


def _compute_ms(flops: float, cal: Calibration) -> float:
    """``flops`` at the measured matmul peak, ms."""
    return flops / (cal.matmul_tflops * 1e12) * 1e3


def _floor_ms(nbytes: float, flops: float, cal: Calibration) -> float:
    return max(_memory_ms(nbytes, cal), _compute_ms(flops, cal))


def prefill_floor_ms(config, tokens: int, weights: int, cal: Calibration) -> float:
    """One-pass prefill of ``tokens``: its FLOPs at peak, or one read of the weights."""
    return _floor_ms(weights, forward_flops(config, tokens), cal)


def reuse_floor_ms(config, query_tokens: int, doc_tokens: int, weights: int, kv_bytes: int, cal: Calibration) -> float:
    """A question of ``query_tokens`` on a cached document: weights + document KV read once, or its FLOPs."""
    return _floor_ms(weights + kv_bytes, forward_flops(config, query_tokens, cached_tokens=doc_tokens), cal)


def point_floors(
    config, doc_tokens: int, query_tokens: int, weights: int, kv_bytes: int, cal: Calibration, prefill_ms: float
) -> dict[str, float]:
    """Row columns of one (document, question) point: the ceilings used, the prefill and reuse
    floors, and the prefill's efficiency against ``prefill_ms`` (the best prefill measured)."""
    prefill = prefill_floor_ms(config, doc_tokens + query_tokens, weights, cal)
    return dict(
        weight_bytes=weights,
        peak_tflops=cal.matmul_tflops,
        hbm_gbps=cal.hbm_gbps,
        prefill_floor_ms=prefill,
        reuse_floor_ms=reuse_floor_ms(config, query_tokens, doc_tokens, weights, kv_bytes, cal),
        prefill_efficiency=prefill / prefill_ms,
    )


def batch_floors_ms(
    config, batch: int, query_tokens: int, doc_tokens: int, weights: int, kv_bytes: int, cal: Calibration
) -> dict[str, float]:
    """Per-reader floors of ``batch`` readers answering one shared document in one forward.

    The weights and the document KV are read once per batch (memory floor divided by B); each
    reader does its own question's FLOPs (compute floor). The per-reader floor is the larger.
    """
    compute = _compute_ms(forward_flops(config, query_tokens, cached_tokens=doc_tokens), cal)
    memory = _memory_ms(weights + kv_bytes, cal) / batch
    return dict(compute_floor_ms=compute, memory_floor_ms=memory, per_reader_floor_ms=max(compute, memory))


def decode_floors_ms(
    config,
    batch: int,
    doc_tokens: int,
    own_tokens: int,
    weights: int,
    kv_bytes: int,
    own_kv_bytes: int,
    doc_copies: int,
    cal: Calibration,
) -> dict[str, float]:
    """Per-reader floors (ms) of one batched decode step: ``batch`` readers, one new token each.

    compute = forward_flops(1 token, cached_tokens = doc_tokens + own_tokens) / peak FLOP/s:
    each reader's token attends to the document and to its own ``own_tokens`` (question and
    answer so far).
    memory = (weights + doc_copies x kv_bytes + batch x own_kv_bytes) / bandwidth / batch:
    the weights once per step, the document's KV (``kv_bytes``) once (``doc_copies`` = 1,
    shared) or once per reader (``doc_copies`` = batch, naive), and every reader's own KV
    (``own_kv_bytes`` each). Bytes in B, peak in TFLOP/s, bandwidth in GB/s (1e9 B/s).
    """
    compute = _compute_ms(forward_flops(config, 1, cached_tokens=doc_tokens + own_tokens), cal)
    memory = _memory_ms(weights + doc_copies * kv_bytes + batch * own_kv_bytes, cal) / batch
    return dict(
        decode_compute_floor_ms=compute, decode_memory_floor_ms=memory, decode_per_reader_floor_ms=max(compute, memory)
    )
