"""Experiment ``reuse``: prefill vs. KV reuse latency, and reuse exactness, per document length.

Per point (model, dtype, L):

* latency on the first document: one-pass prefill of document + question against reuse
  (the KV resident on the compute device, attached to a fresh cache, question forward);
* exactness over ``exactness.num_docs`` documents: one-pass, two-stage and reuse compared
  (:mod:`kvbench.exactness`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from kvbench import flops, inference
from kvbench.artifact import KVArtifact
from kvbench.exactness import aggregate, compare_pair
from kvbench.experiments.base import RunContext
from kvbench.graph_reader import StaticGraphForward
from kvbench.measure import Summary, ratio_ci, time_ms, timer_name
from kvbench.rows import one_line


def measure_latency(ctx: RunContext, doc_ids: torch.Tensor, query_ids: torch.Tensor) -> dict[str, Any]:
    """Time one-pass prefill and device-resident reuse; return the latency row fields."""
    model, timing = ctx.lm.model, ctx.settings.timing
    full_ids = torch.cat([doc_ids, query_ids], dim=1)
    _, cache = inference.prefill(model, doc_ids)
    artifact = ctx.snapshot(cache, doc_ids)
    del cache

    prefill_samples = time_ms(lambda: inference.prefill(model, full_ids), ctx.device,
                              warmup=timing.warmup, repeats=timing.repeats)
    reuse_samples = time_ms(lambda: inference.reuse(model, artifact, query_ids), ctx.device,
                            warmup=timing.warmup, repeats=timing.repeats)
    pre, reu = Summary.of(prefill_samples), Summary.of(reuse_samples)
    row = {}
    if ctx.device.type == "cuda" and timing.graph:
        row = measure_graph(ctx, artifact, doc_ids, query_ids, pre.median)
    ci_low, ci_high = ratio_ci(prefill_samples, reuse_samples)
    L, Q = doc_ids.shape[1], query_ids.shape[1]
    return dict(
        row, **pre.columns("prefill_ms"), **reu.columns("reuse_ms"),
        speedup=pre.median / reu.median, speedup_ci_low=ci_low, speedup_ci_high=ci_high,
        repeats=timing.repeats, timer=timer_name(ctx.device),
        kv_bytes=artifact.nbytes,
        prefill_flops=flops.forward_flops(model.config, L + Q),
        reuse_flops=flops.forward_flops(model.config, Q, cached_tokens=L),
    )


def measure_graph(ctx: RunContext, artifact: KVArtifact, doc_ids: torch.Tensor,
                  query_ids: torch.Tensor, prefill_eager_ms: float) -> dict[str, Any]:
    """Time prefill and reuse as CUDA-graph replays over static caches (the serving setting).

    ``speedup_graph`` divides the faster of eager and graph prefill by graph reuse, so a
    slower static-cache prefill kernel can never flatter reuse. A capture failure is
    recorded in ``graph_error``; the eager measurement stands either way.
    """
    model, timing = ctx.lm.model, ctx.settings.timing
    L, Q = doc_ids.shape[1], query_ids.shape[1]
    full_ids = torch.cat([doc_ids, query_ids], dim=1)
    try:
        reuse_fwd, prefill_fwd = StaticGraphForward(model, L, Q), StaticGraphForward(model, 0, L + Q)
        reuse_fwd.capture(artifact, query_ids)
        prefill_fwd.capture(None, full_ids)
        reuse_s = Summary.of(time_ms(lambda: reuse_fwd(artifact, query_ids), ctx.device,
                                     warmup=timing.warmup, repeats=timing.repeats))
        prefill_s = Summary.of(time_ms(lambda: prefill_fwd(None, full_ids), ctx.device,
                                       warmup=timing.warmup, repeats=timing.repeats))
        graph_logits = reuse_fwd(artifact, query_ids)
        del reuse_fwd, prefill_fwd
    except Exception as exc:  # noqa: BLE001 -- the eager measurement still stands
        return dict(graph_error=one_line(exc))
    eager_logits, _ = inference.reuse(model, artifact, query_ids)
    return dict(**reuse_s.columns("reuse_graph_ms"), **prefill_s.columns("prefill_graph_ms"),
                speedup_graph=min(prefill_eager_ms, prefill_s.median) / reuse_s.median,
                graph_max_abs_logit_diff=float((graph_logits - eager_logits).abs().max()))


class ReuseExperiment:
    name = "reuse"

    def points(self, ctx: RunContext) -> list[dict[str, Any]]:
        return [{"doc_tokens": int(n)} for n in ctx.settings.doc_tokens]

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]:
        ex = ctx.settings.exactness
        docs = ctx.corpus.documents(point["doc_tokens"], ex.num_docs if ex.enabled else 1)
        move = lambda t: t.to(ctx.device)  # noqa: E731
        row = dict(
            doc_hash=docs[0].doc_hash,
            query_tokens=docs[0].query_tokens,
            corpus_hash=hashlib.sha256("".join(d.doc_hash for d in docs).encode()).hexdigest()[:16],
        )
        row.update(measure_latency(ctx, move(docs[0].doc_ids), move(docs[0].query_ids)))
        if ex.enabled:
            pairs = [compare_pair(ctx.lm.model, move(d.doc_ids), move(d.query_ids), ex.gen_tokens,
                                  ctx.snapshot) for d in docs]
            row.update(aggregate(pairs), gen_tokens=ex.gen_tokens)
        return row
