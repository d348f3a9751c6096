"""Experiment ``audit``: what recomputing k random chunks of a bought artifact catches, and what it costs.

Per document length L (work shared by every row of that L, done once):

1. calibration: ``audit.calibration_docs`` untampered artifacts, every chunk checked; the
   tolerance per layer and side is ``audit.margin`` x the largest error seen (0 where all were
   bitwise equal) (:func:`kvbench.audit.recompute.calibrate`);
2. evaluation on ``audit.docs`` other documents: each tamper kind (:mod:`kvbench.audit.tamper`)
   applied to each document's artifact, every chunk checked, and the flagged ones counted;
3. cost, on the first evaluated honest artifact: with ``audit.forward=fast`` one audit of k
   random full-length chunks per k (all k in one fast forward, captured once per k as a CUDA
   graph over the artifact's KV, as a reader's forward is; a new draw each repeat, its
   errors back on the host inside the timing), with ``hf`` every
   chunk check timed (``timing.repeats``); and the one-pass prefill of document + question it
   saves, eager and fast (the faster divides).

Every chunk check, in calibration and evaluation too, recomputes through ``audit.forward``: the
tolerance is calibrated on the path that audits. (With ``fast`` on a GPU the chunked document pass
may run whole or in parts merged by log-sum-exp, whichever timed faster for the number of chunks
checked together: the two differ by one bf16 rounding of the merged parts, at most 0.4% of a
value, small against the honest errors the tolerance is made from: up to 3.5% on the Qwen3-4B shape.)

One row per (L, tamper, k): ``detection_rate`` is the exact chance, averaged over the
evaluated documents, that k chunks drawn at random include a flagged one (for
``tamper=none``, the false-positive rate); ``audit_ms`` is the median audit of k chunks
(``fast``) or k x the mean chunk check time (``hf``).
Checking every chunk once and drawing subsets from the verdicts equals running the audit
with every possible draw, since each chunk's check reads only the artifact, never another chunk's.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from kvbench.audit import recompute as audit
from kvbench.audit.tamper import tamper
from kvbench.experiments.base import RunContext, fast_fields, kernel_times, prefill_fields, publish
from kvbench.forward import audit_chunks
from kvbench.forward.readers import prefill_paths
from kvbench.measure import flops
from kvbench.measure.timing import time_ms, timer_name


class AuditExperiment:
    name = "audit"

    def __init__(self):
        self._study: tuple[int, dict[str, Any]] | None = None  # (L, what every row of that L shares)

    def points(self, ctx: RunContext) -> list[dict[str, Any]]:
        cfg = ctx.settings.audit
        return [
            {"doc_tokens": int(n), "tamper": t, "audit_k": int(k)}
            for n in ctx.settings.doc_tokens
            for t in cfg.tampers
            for k in cfg.ks
        ]

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]:
        study = self.study(ctx, point["doc_tokens"])
        n, k = study["fields"]["audit_chunks"], point["audit_k"]
        if k > n:
            return dict(
                study["fields"],
                status="skipped",
                reason=f"audit.ks: k={k} exceeds the {n} chunks of a {point['doc_tokens']}-token document",
            )
        counts = study["flagged"][point["tamper"]]
        audit_ms = study["audit_ms"].get(k)  # None: fewer than k full-length chunks to time
        return dict(
            study["fields"],
            **study["chunk_split"].get(k, {}),
            detection_rate=float(np.mean([audit.detection_probability(n, m, k) for m in counts])),
            flagged_chunk_fraction=float(np.mean(counts)) / n,
            audit_ms=audit_ms,
            audit_cost_fraction=None if audit_ms is None else audit_ms / study["fields"]["prefill_best_ms"],
            audit_flops_fraction=k * study["chunk_flops"] / study["fields"]["prefill_flops"],
        )

    def study(self, ctx: RunContext, doc_tokens: int) -> dict[str, Any]:
        """Calibration, tamper verdicts and timings for ``doc_tokens``, cached per L."""
        if self._study is not None and self._study[0] == doc_tokens:
            return self._study[1]
        self._study = None
        cfg, model = ctx.settings.audit, ctx.lm.model
        docs = ctx.corpus.documents(doc_tokens, cfg.calibration_docs + cfg.docs + 1)
        evaluated = docs[cfg.calibration_docs : -1]
        ids = [d.doc_ids.to(ctx.device) for d in docs]
        fwd = ctx.fast_forward() if cfg.forward == "fast" else None
        check_all = lambda artifact, doc_ids: audit.check_all(
            model, artifact, doc_ids, cfg.chunk_tokens, fwd, cfg.batch_chunks
        )

        honest = []
        for i in range(cfg.calibration_docs):
            honest.append(check_all(publish(ctx, ids[i]), ids[i]))
        tolerance = audit.calibrate(honest, cfg.margin)

        generator = torch.Generator().manual_seed(ctx.settings.seed)
        flagged: dict[str, list[int]] = {kind: [] for kind in cfg.tampers}
        timed_artifact = None  # the first evaluated honest artifact, which the cost is timed on
        for j in range(cfg.calibration_docs, cfg.calibration_docs + cfg.docs):
            artifact = publish(ctx, ids[j])
            timed_artifact = artifact if timed_artifact is None else timed_artifact
            for kind in cfg.tampers:
                altered = tamper(
                    kind,
                    model,
                    artifact,
                    ids[j],
                    ids[j + 1],
                    span_tokens=cfg.tamper_tokens,
                    spans=cfg.tamper_spans,
                    noise_rel=cfg.noise_rel,
                    generator=generator,
                )
                errors = check_all(altered, ids[j])
                flagged[kind].append(int(audit.flagged(errors, tolerance).sum()))

        shared = dict(flagged=flagged, **self._cost(ctx, evaluated[0], ids[cfg.calibration_docs], timed_artifact, fwd))
        honest_max = max(float(e.max()) for e in honest)
        shared["fields"].update(
            doc_hash=evaluated[0].doc_hash,
            corpus_hash=hashlib.sha256("".join(d.doc_hash for d in evaluated).encode()).hexdigest()[:16],
            audit_chunk_tokens=cfg.chunk_tokens,
            audit_chunks=len(audit.chunk_bounds(doc_tokens, cfg.chunk_tokens)),
            audit_docs=cfg.docs,
            audit_tolerance_max=float(tolerance.max()),
            audit_honest_error_max=honest_max,
            audit_bitwise_layers=float((tolerance == 0).float().mean()),
            audit_forward=cfg.forward,
        )
        self._study = (doc_tokens, shared)
        return shared

    @staticmethod
    def _cost(ctx: RunContext, doc, doc_ids: torch.Tensor, artifact, fwd) -> dict[str, Any]:
        """The audit's time per k on ``artifact`` (``doc``'s, of ``doc_ids``), its FLOPs per chunk, and
        the prefill of document + question it is set against."""
        model, timing, cfg = ctx.lm.model, ctx.settings.timing, ctx.settings.audit
        bounds = audit.chunk_bounds(doc_ids.shape[1], cfg.chunk_tokens)
        ks = sorted({int(k) for k in cfg.ks if k <= len(bounds)})
        timed = lambda fn, first: time_ms(fn, ctx.device, warmup=timing.warmup if first else 0, repeats=timing.repeats)
        graph = timing.graph and ctx.device.type == "cuda"
        if fwd is not None:  # one audit of k full-length chunks, a fresh random draw each call
            generator = torch.Generator().manual_seed(ctx.settings.seed)
            full = [b for b in bounds if b[1] - b[0] == cfg.chunk_tokens]
            audit_ms, chunk_split = {}, {}
            for k in (k for k in ks if k <= len(full)):
                draws = iter(
                    [
                        [full[i] for i in sorted(torch.randperm(len(full), generator=generator)[:k].tolist())]
                        for _ in range(timing.warmup + timing.repeats)
                    ]
                )
                check = audit.ChunkCheck(fwd, artifact, doc_ids, k, cfg.chunk_tokens, graph=graph)
                audit_ms[k] = float(np.median(timed(lambda: check(next(draws)), True)))
                chunk_split[k] = chunk_split_fields(model, k, cfg.chunk_tokens, doc_ids.shape[1])
        else:
            chunk_ms = [
                float(np.median(timed(lambda: audit.check_chunk(model, artifact, doc_ids, s, e), i == 0)))
                for i, (s, e) in enumerate(bounds)
            ]
            audit_ms, chunk_split = {k: k * float(np.mean(chunk_ms)) for k in ks}, {}
        full_ids = torch.cat([doc_ids, doc.query_ids.to(ctx.device)], dim=1)
        paths = prefill_paths(model, ctx.fast_forward(), full_ids, graph)
        prefill, _ = prefill_fields({name: [timed(fn, True)] for name, fn in paths.items()})
        return dict(
            audit_ms=audit_ms,
            chunk_split=chunk_split,
            chunk_flops=float(np.mean([flops.forward_flops(model.config, e - s, cached_tokens=s) for s, e in bounds])),
            fields=dict(
                **prefill,
                repeats=timing.repeats,
                timer=timer_name(ctx.device),
                query_tokens=doc.query_tokens,
                kv_bytes=artifact.nbytes,
                prefill_flops=flops.forward_flops(model.config, full_ids.shape[1]),
                **(fast_fields(fwd, model, ctx.device) if fwd is not None else {}),
            ),
        )


def chunk_split_fields(model, k: int, chunk_tokens: int, doc_tokens: int) -> dict[str, Any]:
    """Row fields of the attention of ``k`` chunks (:func:`kvbench.forward.audit_chunks.chunk_plan`):
    its kernel, the parts it ran in, the split candidate's parts, and each candidate's ms on one
    layer (none where nothing was timed: off CUDA)."""
    groups = model.config.num_attention_heads // model.config.num_key_value_heads
    chosen, plan, timed = audit_chunks.chunk_plan_chosen(k, groups, chunk_tokens, doc_tokens)
    fields: dict[str, Any] = dict(audit_chunk_kernel=chosen.kernel, audit_chunk_splits=chosen.splits)
    if timed:
        fields.update(audit_chunk_split_plan=plan, **kernel_times("audit_chunk", timed))
    return fields
