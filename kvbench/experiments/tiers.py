"""Experiment ``tiers``: reuse from each storage tier, stage by stage, next to prefill.

Per point (model, dtype, L, tier, variant, codec): the publisher prefills the document,
encodes the artifact and puts it in a fresh tier; the reader then reads it back ``repeats``
times, each read timed as fetch -> decode -> h2d -> attach -> query. Crossover lengths come
from the rows (:mod:`kvbench.crossover`).

On CUDA (``timing.graph``) the reader is the serving-style one of :mod:`kvbench.graph_reader`:
``attach`` copies the KV into a preallocated static cache and ``query`` replays the question's
captured CUDA graph, so the stages measure data movement rather than Python dispatch. Prefill
is then timed both eagerly and as a graph, and reuse is compared with the faster of the two.
Prefill depends on the model and document, not on the tier, so it is timed once per process
and every tier's rows compare against the same samples.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from kvbench import flops, inference
from kvbench.artifact import KVArtifact
from kvbench.codecs import get_codec
from kvbench.experiments.base import RunContext
from kvbench.graph_reader import StaticGraphForward
from kvbench.measure import Summary, ratio_ci, time_ms, timer_name
from kvbench.rows import one_line
from kvbench.tiers import Tier, TierUnavailableError, open_tier, too_slow, variants
from kvbench.tiers.base import Stopwatch

STAGES = ("fetch_ms", "decode_ms", "h2d_ms", "attach_ms", "query_ms")

# (model fingerprint, dtype, device, document, question, timing) -> prefill row fields and samples
_PREFILL_MEMO: dict[tuple, tuple[dict[str, Any], np.ndarray]] = {}


def read_once(ctx: RunContext, tier: Tier, query_ids: torch.Tensor,
              reader: StaticGraphForward | None) -> tuple[dict[str, float], KVArtifact]:
    """One reader read: the tier's fetch/decode/h2d, then attach and the question's forward.

    ``reader`` (CUDA) attaches by copying into its static cache and replays the question's
    graph; without one the KV goes into a fresh ``DynamicCache`` and HF's eager forward runs.
    Returns the stage times (ms) with bytes moved, and the KV as read (on the device).
    """
    tier.prepare()
    kv, stages = tier.get()
    watch = Stopwatch(ctx.device)
    kv.check_compatible(model_fingerprint=ctx.lm.fingerprint, tokenizer_hash=ctx.lm.tokenizer_hash)
    if reader is None:
        cache = kv.to_cache(ctx.lm.model.config)
        attach_ms = watch.lap()
        inference.extend(ctx.lm.model, cache, query_ids)
    else:
        reader.attach(kv)
        attach_ms = watch.lap()
        reader.forward(query_ids)
    return dict(fetch_ms=stages.fetch_ms, decode_ms=stages.decode_ms, h2d_ms=stages.h2d_ms, attach_ms=attach_ms,
                query_ms=watch.lap(), fetch_bytes=stages.fetch_bytes, h2d_bytes=stages.h2d_bytes), kv


def time_prefill(ctx: RunContext, doc_ids: torch.Tensor, query_ids: torch.Tensor,
                 doc_hash: str) -> tuple[dict[str, Any], np.ndarray]:
    """Prefill of document + question: row fields, and the samples of the faster way (eager or graph).

    Memoised per process, so the tiers of one sweep all compare against one measurement.
    """
    model, timing = ctx.lm.model, ctx.settings.timing
    key = (ctx.lm.fingerprint, str(model.dtype), str(ctx.device), doc_hash,
           tuple(query_ids.flatten().tolist()), timing.warmup, timing.repeats, timing.graph)
    if key in _PREFILL_MEMO:
        return _PREFILL_MEMO[key]
    full_ids = torch.cat([doc_ids, query_ids], dim=1)
    best = time_ms(lambda: inference.prefill(model, full_ids), ctx.device, warmup=timing.warmup, repeats=timing.repeats)
    fields: dict[str, Any] = Summary.of(best).columns("prefill_ms")
    if ctx.device.type == "cuda" and timing.graph:
        try:
            fwd = StaticGraphForward(model, 0, full_ids.shape[1])
            fwd.capture(None, full_ids, warmup=1)  # kernels are warm from the eager prefill
            graph = time_ms(lambda: fwd(None, full_ids), ctx.device, warmup=0, repeats=timing.repeats)
            del fwd
            fields.update(Summary.of(graph).columns("prefill_graph_ms"))
            best = graph if np.median(graph) < np.median(best) else best
        except Exception as exc:  # noqa: BLE001 -- the eager prefill still stands
            fields["graph_error"] = one_line(exc)
    _PREFILL_MEMO[key] = fields, best
    return fields, best


def _gbps(nbytes: int, ms: float) -> float | None:
    return nbytes / (ms * 1e-3) / 1e9 if nbytes and ms > 0 else None


class TiersExperiment:
    name = "tiers"

    def __init__(self):
        self._published: tuple[int, dict[str, Any]] | None = None  # (L, what one L's points share)

    def points(self, ctx: RunContext) -> list[dict[str, Any]]:
        tier, codec = ctx.settings.tier, ctx.settings.codec.name
        return [{"doc_tokens": int(n), "tier": tier.name, "tier_variant": v, "codec": codec}
                for n in ctx.settings.doc_tokens for v in variants(tier)]

    def publish(self, ctx: RunContext, doc_tokens: int) -> dict[str, Any]:
        """Document, artifact (on the device), graph reader and prefill for ``doc_tokens``, cached per L."""
        if self._published is not None and self._published[0] == doc_tokens:
            return self._published[1]
        self._published = None  # free the previous length's KV before making this one's
        doc = ctx.corpus.documents(doc_tokens, 1)[0]
        doc_ids, query_ids = doc.doc_ids.to(ctx.device), doc.query_ids.to(ctx.device)
        model = ctx.lm.model
        _, cache = inference.prefill(model, doc_ids)
        artifact = ctx.snapshot(cache, doc_ids)
        del cache
        prefill_fields, prefill_samples = time_prefill(ctx, doc_ids, query_ids, doc.doc_hash)
        reader = None
        if ctx.device.type == "cuda" and ctx.settings.timing.graph and "graph_error" not in prefill_fields:
            try:
                reader = StaticGraphForward(model, doc_ids.shape[1], query_ids.shape[1])
                reader.capture(artifact, query_ids)
            except Exception as exc:  # noqa: BLE001 -- the eager reader still measures every tier
                reader, prefill_fields = None, dict(prefill_fields, graph_error=one_line(exc))
        L, Q = doc_ids.shape[1], query_ids.shape[1]
        shared = dict(artifact=artifact, query_ids=query_ids, prefill_samples=prefill_samples, reader=reader,
                      fields=dict(
                          doc_hash=doc.doc_hash, query_tokens=doc.query_tokens,
                          corpus_hash=hashlib.sha256(doc.doc_hash.encode()).hexdigest()[:16],
                          kv_bytes=artifact.nbytes, timer=timer_name(ctx.device),
                          tier_query="eager" if reader is None else "cuda_graph",
                          prefill_flops=flops.forward_flops(model.config, L + Q),
                          reuse_flops=flops.forward_flops(model.config, Q, cached_tokens=L),
                          **prefill_fields))
        self._published = (doc_tokens, shared)
        return shared

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]:
        shared = self.publish(ctx, point["doc_tokens"])
        cfg, timing = ctx.settings.tier, ctx.settings.timing
        warmup = timing.warmup if cfg.warmup is None else cfg.warmup
        repeats = timing.repeats if cfg.repeats is None else cfg.repeats
        codec = get_codec(ctx.settings.codec.name)
        row = dict(shared["fields"])

        watch = Stopwatch(ctx.device)
        blob = codec.encode(shared["artifact"])
        row["encode_ms"] = watch.lap()
        reason = too_slow(cfg, point["tier_variant"], len(blob))
        if reason is not None:
            return dict(row, status="skipped", reason=reason)
        try:
            with open_tier(cfg, point["tier_variant"], codec, ctx.device) as tier:
                watch.lap()
                tier.put(blob)
                row["put_ms"] = watch.lap()
                del blob  # the tier holds what it needs
                query_ids, reader = shared["query_ids"], shared["reader"]
                for _ in range(warmup):
                    read_once(ctx, tier, query_ids, reader)
                reads = [read_once(ctx, tier, query_ids, reader) for _ in range(repeats)]
                row.update(tier.info(), stored_bytes=tier.stored_bytes())
        except TierUnavailableError as exc:
            return dict(row, status="skipped", reason=str(exc))
        row["tier_bitwise"] = reads[-1][1].equals(shared["artifact"])
        row.update(self._stage_fields([r for r, _ in reads], shared["prefill_samples"], repeats))
        return row

    @staticmethod
    def _stage_fields(reads: list[dict[str, float]], prefill_samples: np.ndarray, repeats: int) -> dict[str, Any]:
        """Median per stage, bytes and GB/s, and reuse (the per-read sum of stages) against the faster prefill."""
        fields: dict[str, Any] = {s: float(np.median([r[s] for r in reads])) for s in STAGES}
        totals = np.array([sum(r[s] for s in STAGES) for r in reads])
        fetch_bytes, h2d_bytes = reads[-1]["fetch_bytes"], reads[-1]["h2d_bytes"]
        fields.update(fetch_bytes=fetch_bytes, h2d_bytes=h2d_bytes, repeats=repeats,
                      fetch_gbps=_gbps(fetch_bytes, fields["fetch_ms"]), h2d_gbps=_gbps(h2d_bytes, fields["h2d_ms"]),
                      **Summary.of(totals).columns("reuse_ms"))
        fields["speedup"] = float(np.median(prefill_samples)) / fields["reuse_ms"]
        fields["speedup_ci_low"], fields["speedup_ci_high"] = ratio_ci(prefill_samples, totals)
        return fields

