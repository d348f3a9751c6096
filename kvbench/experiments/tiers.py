"""Experiment ``tiers``: reuse from each storage tier, stage by stage, next to prefill.

Per point (model, dtype, L, tier, variant, codec, reader): the publisher prefills the
document, encodes the artifact and puts it in a fresh tier; the reader (the first of
``readers``) then reads it back ``repeats`` times (at least :data:`MIN_READS`), each read
``fetch -> decode -> h2d -> attach -> query``. The fast reader hands the tier its KV pool,
so the host-to-device copy writes where the forward reads; a GPU-resident KV is read where
it lies. Stages are timed by :class:`kvbench.tiers.StageTimer` (host stages by
``perf_counter``, device stages by CUDA events, one synchronisation per read); the row's
``timer`` names each stage's clock. Crossover lengths come from the rows
(:mod:`kvbench.economics.crossover`).

Prefill depends on the model and document, not on the tier, so it is timed once per process
(eager and fast paths interleaved, :func:`kvbench.experiments.base.prefill_fields`) and
every tier's rows compare against the same samples: re-timing a 1-2 s prefill beside every
multi-second remote read would double the run for no information about the tier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kvbench.codecs import get_codec
from kvbench.experiments.base import RunContext, prefill_fields, publish
from kvbench.forward.readers import make_reader, prefill_paths
from kvbench.kv.artifact import KVArtifact
from kvbench.measure import flops
from kvbench.measure.calibrate import calibrate
from kvbench.measure.floors import point_floors, weight_bytes
from kvbench.measure.timing import SampleStats, gbps, ratio_ci, time_interleaved
from kvbench.model.corpus import corpus_hash
from kvbench.tiers import StageTimer, Tier, TierError, TierUnavailableError, open_tier, too_slow, variants

STAGES = ("fetch", "decode", "h2d", "attach", "query")
MIN_READS = 5

# (model fingerprint, dtype, device, document, question, timing) -> prefill row fields and best samples
_PREFILL_MEMO: dict[tuple, tuple[dict[str, Any], np.ndarray]] = {}


def time_prefill(
    ctx: RunContext, doc_hash: str, doc_ids: torch.Tensor, query_ids: torch.Tensor
) -> tuple[dict[str, Any], np.ndarray]:
    """Prefill of document + question, eager and fast interleaved: row fields and the faster path's samples."""
    timing = ctx.settings.timing
    key = (
        ctx.lm.fingerprint,
        str(ctx.dtype),
        str(ctx.device),
        doc_hash,
        tuple(query_ids.flatten().tolist()),
        timing.warmup,
        timing.repeats,
        timing.graph,
    )
    if key not in _PREFILL_MEMO:
        graph = timing.graph and ctx.device.type == "cuda"
        paths = prefill_paths(ctx.lm.model, ctx.fast_forward(), torch.cat([doc_ids, query_ids], dim=1), graph)
        samples = time_interleaved(paths, ctx.device, warmup=timing.warmup, repeats=timing.repeats)
        _PREFILL_MEMO[key] = prefill_fields({name: [s] for name, s in samples.items()})
    return _PREFILL_MEMO[key]


def read_once(ctx: RunContext, tier: Tier, reader, query_ids: torch.Tensor) -> tuple[dict[str, Any], KVArtifact]:
    """One read through every stage; stage milliseconds and bytes moved, and the KV as read."""
    tier.prepare()
    timer = StageTimer(ctx.device)
    read = tier.get(timer, reader.pool if reader.attach_mode == "reference" else None)
    with timer.device("attach"):
        read.kv.check_compatible(model_fingerprint=ctx.lm.fingerprint, tokenizer_hash=ctx.lm.tokenizer_hash)
        reader.attach(read.kv)
    with timer.device("query"):
        reader.query(query_ids)
    times = timer.results()
    stages = {s: times.get(s, 0.0) for s in STAGES}
    return dict(stages, clocks=timer.clocks(), fetch_bytes=read.fetch_bytes, h2d_bytes=read.h2d_bytes), read.kv


def _empty_like(artifact: KVArtifact) -> KVArtifact:
    """A device KV pool shaped like ``artifact`` (contents undefined until a tier writes it)."""
    return KVArtifact(
        [torch.empty_like(k) for k in artifact.keys],
        [torch.empty_like(v) for v in artifact.values],
        dict(artifact.meta),
    )


class TiersExperiment:
    name = "tiers"

    def __init__(self):
        self._published: tuple[int, dict[str, Any]] | None = None  # (L, what one L's points share)

    def points(self, ctx: RunContext) -> list[dict[str, Any]]:
        tier, codec, reader = ctx.settings.tier, ctx.settings.codec.name, ctx.settings.readers[0]
        return [
            {"doc_tokens": int(n), "tier": tier.name, "tier_variant": v, "codec": codec, "reader": reader}
            for n in ctx.settings.doc_tokens
            for v in variants(tier)
        ]

    def publish(self, ctx: RunContext, doc_tokens: int) -> dict[str, Any]:
        """Document, artifact (on the device) and prefill for ``doc_tokens``, cached per L."""
        if self._published is not None and self._published[0] == doc_tokens:
            return self._published[1]
        self._published = None  # free the previous length's KV before making this one's
        doc = ctx.corpus.documents(doc_tokens, 1)[0]
        doc_ids, query_ids = doc.doc_ids.to(ctx.device), doc.query_ids.to(ctx.device)
        artifact = publish(ctx, doc_ids)
        prefill, prefill_samples = time_prefill(ctx, doc.doc_hash, doc_ids, query_ids)
        model, L, Q = ctx.lm.model, doc_tokens, doc.query_tokens
        shared = dict(
            artifact=artifact,
            query_ids=query_ids,
            prefill_samples=prefill_samples,
            fields=dict(
                doc_hash=doc.doc_hash,
                corpus_hash=corpus_hash([doc.doc_hash]),
                timing_docs=1,
                **flops.point_fields(model.config, L, Q, artifact.keys[0].element_size()),
                **point_floors(
                    model.config,
                    L,
                    Q,
                    weight_bytes(model),
                    artifact.nbytes,
                    calibrate(ctx.device, ctx.dtype),
                    prefill["prefill_best_ms"],
                ),
                **prefill,
            ),
        )
        self._published = (doc_tokens, shared)
        return shared

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]:
        shared = self.publish(ctx, point["doc_tokens"])
        cfg, timing = ctx.settings.tier, ctx.settings.timing
        warmup = timing.warmup if cfg.warmup is None else cfg.warmup
        repeats = max(MIN_READS, timing.repeats if cfg.repeats is None else cfg.repeats)
        codec = get_codec(ctx.settings.codec.name)
        row = dict(shared["fields"])
        timer = StageTimer(torch.device("cpu"))  # the publisher's one-off work: wall clock
        with timer.host("encode"):
            blob = codec.encode(shared["artifact"])
        row["encode_ms"] = timer.results()["encode"]
        reason = too_slow(cfg, point["tier_variant"], len(blob))
        if reason is not None:
            return dict(row, status="skipped", reason=reason)
        query_ids = shared["query_ids"]
        try:
            with open_tier(cfg, point["tier_variant"], codec, ctx.device) as tier:
                with timer.host("put"):
                    tier.put(blob)
                row["put_ms"] = timer.results()["put"]
                del blob  # the tier holds what it needs
                pool = tier.resident() or _empty_like(shared["artifact"])
                graph = timing.graph and ctx.device.type == "cuda"
                reader = make_reader(point["reader"], ctx.lm.model, ctx.fast_forward(), pool, query_ids, graph)
                for _ in range(warmup):
                    read_once(ctx, tier, reader, query_ids)
                reads = [read_once(ctx, tier, reader, query_ids) for _ in range(repeats)]
                row.update(tier.info(), stored_bytes=tier.stored_bytes(), reader_attach=reader.attach_mode)
        except TierUnavailableError as exc:
            return dict(row, status="skipped", reason=str(exc))
        except TierError as exc:  # the tier failed (disk full, server gone): the prefill measured stays in the row
            return dict(row, status="failed", reason=str(exc))
        row["tier_bitwise"] = reads[-1][1].equals(shared["artifact"])
        row.update(self._stage_fields([r for r, _ in reads], shared["prefill_samples"], repeats))
        row["reuse_efficiency"] = (
            row["reuse_floor_ms"] / row["reuse_ms"]
        )  # against the device floor: the tier's cost shows
        return row

    @staticmethod
    def _stage_fields(reads: list[dict[str, Any]], prefill_samples: np.ndarray, repeats: int) -> dict[str, Any]:
        """Median per stage, bytes and GB/s, and reuse (the per-read sum of stages) against the faster prefill."""
        fields: dict[str, Any] = {f"{s}_ms": float(np.median([r[s] for r in reads])) for s in STAGES}
        totals = np.array([sum(r[s] for s in STAGES) for r in reads])
        fetch_bytes, h2d_bytes = reads[-1]["fetch_bytes"], reads[-1]["h2d_bytes"]
        clocks = reads[-1]["clocks"]
        fields.update(
            fetch_bytes=fetch_bytes,
            h2d_bytes=h2d_bytes,
            repeats=repeats,
            timer=",".join(f"{s}={clocks[s]}" for s in STAGES if s in clocks),
            fetch_gbps=gbps(fetch_bytes, fields["fetch_ms"]),
            h2d_gbps=gbps(h2d_bytes, fields["h2d_ms"]),
            **SampleStats.of(totals).columns("reuse_ms"),
        )
        fields["speedup"] = float(np.median(prefill_samples)) / fields["reuse_ms"]
        fields["speedup_ci_low"], fields["speedup_ci_high"] = ratio_ci(prefill_samples, totals)
        fields["speedup_ci_n"] = min(len(prefill_samples), len(totals))
        return fields
