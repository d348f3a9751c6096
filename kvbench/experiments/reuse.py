"""Experiment ``reuse``: prefill vs. KV reuse per reader, beside the roofline floors, and exactness.

One row per (model, dtype, L, reader). A length is measured once for all readers, so their
rows share one prefill measurement:

* latency on ``timing.docs`` documents (unless ``timing.enabled`` is false, for runs that
  share a device): the publisher prefills each document and keeps its
  KV on the device; eager and fast prefill of document + question and reuse through every
  reader (:mod:`kvbench.forward.readers`) are timed in interleaved rounds (:mod:`kvbench.measure.timing`).
  ``speedup`` divides the faster prefill by the reader's reuse;
* floors from the device's measured ceilings (:mod:`kvbench.measure.floors`) and efficiencies;
  for the fast reader also the question's forward with no document (``query_only_ms``),
  which splits its time into document attention and the rest of the forward;
* reader agreement from the timed calls themselves: each reader's first-token logits
  against HF reuse's and the one-pass prefill's;
* exactness over ``exactness.num_docs`` documents, on a KV that went through serialisation:
  the ``hf`` reader by :func:`kvbench.measure.exactness.compare_pair`, the ``fast`` reader by
  :func:`kvbench.measure.exactness_fast.compare_fast` (the ``graph`` reader has agreement only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from kvbench.experiments.base import RunContext, fast_fields, fuse_logit_diff, prefill_fields, publish
from kvbench.forward.readers import make_reader, prefill_paths
from kvbench.kv.artifact import KVArtifact
from kvbench.kv.binding import check_document
from kvbench.measure import flops
from kvbench.measure.calibrate import calibrate
from kvbench.measure.exactness import aggregate, compare_pair, one_pass_reference
from kvbench.measure.exactness_fast import compare_fast
from kvbench.measure.floors import point_floors, weight_bytes
from kvbench.measure.timing import SampleStats, ratio_ci, time_interleaved, timer_name
from kvbench.model.corpus import corpus_hash
from kvbench.rows.schema import one_line


def fixed_query(query_ids: torch.Tensor, tokens: int | None) -> torch.Tensor:
    """The question ``(1, Q)`` as written, or its tokens repeated/cut to exactly ``tokens``."""
    if tokens is None:
        return query_ids
    return query_ids.repeat(1, math.ceil(tokens / query_ids.shape[1]))[:, :tokens]


def serialised(artifact: KVArtifact, device: torch.device, doc_ids: torch.Tensor) -> KVArtifact:
    """``artifact`` as a buyer of the document ``doc_ids`` ``(1, L)`` gets it: through safetensors
    bytes (checksum verified), bound to those token ids (length and hash), back on ``device``."""
    stored = KVArtifact.from_bytes(artifact.to_bytes())
    check_document(stored, doc_ids)
    return stored.to(device, copy=True)


def _agreement(logits: dict[tuple[int, str], torch.Tensor], docs: int, reader: str) -> dict[str, Any]:
    """First-token agreement of ``reader`` with HF reuse and with the eager one-pass prefill (timed calls)."""
    fields: dict[str, Any] = {}
    for ref, prefix in (("hf", "reader"), ("prefill_eager", "onepass")):
        pairs = [(logits[(d, reader)], logits[(d, ref)]) for d in range(docs) if (d, ref) in logits]
        if pairs and reader != ref:
            fields[f"{prefix}_top1_agree"] = float(np.mean([int(a.argmax() == b.argmax()) for a, b in pairs]))
            fields[f"{prefix}_max_abs_logit_diff"] = float(max((a - b).abs().max() for a, b in pairs))
    return fields


def _reuse_call(reader, artifact: KVArtifact, query_ids: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One timed reuse: ``reader`` attaches ``artifact`` and answers ``query_ids``; its logits."""
    return lambda: (reader.attach(artifact), reader.query(query_ids))[1]


def measure_length(ctx: RunContext, doc_tokens: int) -> dict[str, dict[str, Any]]:
    """Row fields per reader for one document length (see the module docstring)."""
    s, model, device = ctx.settings, ctx.lm.model, ctx.device
    timing, graph = s.timing, s.timing.graph and device.type == "cuda"
    fwd = ctx.fast_forward()
    docs = ctx.corpus.documents(doc_tokens, timing.docs)
    paths: dict[tuple[int, str], Callable[[], torch.Tensor]] = {}  # (document, path) -> one timed call
    errors: dict[str, str] = {}
    attach_modes: dict[str, str] = {}
    queries: list[int] = []
    first: tuple[KVArtifact, torch.Tensor] | None = None  # the first document's artifact and question
    ctx.stage(f"publishing {len(docs)} documents, preparing readers")
    for d, doc in enumerate(docs):
        doc_ids = doc.doc_ids.to(device)
        query_ids = fixed_query(doc.query_ids, timing.query_tokens).to(device)
        queries.append(query_ids.shape[1])
        artifact = publish(ctx, doc_ids)
        first = first or (artifact, query_ids)
        for name, fn in prefill_paths(model, fwd, torch.cat([doc_ids, query_ids], dim=1), graph).items():
            paths[(d, f"prefill_{name}")] = fn
        for name in s.readers:
            try:
                reader = make_reader(name, model, fwd, artifact, query_ids, graph)
            except Exception as exc:
                errors[name] = one_line(exc)
                continue
            attach_modes[name] = reader.attach_mode
            paths[(d, name)] = _reuse_call(reader, artifact, query_ids)
            if d == 0 and name == "fast":  # the question alone: the forward but for the document's attention
                paths[(0, "query_only")] = prefill_paths(model, fwd, query_ids, graph)["fast"]
    # one stage: prefill and every reader are timed in the same rounds, so drift hits them alike
    what = f"timing prefill (eager, fast) and reuse ({', '.join(r for r in s.readers if r not in errors)}), rounds"
    timed = time_interleaved(
        {f"{d}:{n}": fn for (d, n), fn in paths.items()},
        device,
        warmup=timing.warmup,
        repeats=timing.repeats,
        on_round=lambda done, total: ctx.stage(what, done, total),
    )
    logits = {key: fn().clone() for key, fn in paths.items()}
    samples = {key: timed[f"{key[0]}:{key[1]}"] for key in paths}

    def per_doc(name: str) -> list[np.ndarray]:
        return [samples[(d, name)] for d in range(len(docs)) if (d, name) in samples]

    prefill, best_samples = prefill_fields(
        {name: per_doc(f"prefill_{name}") for name in ("eager", "fast") if per_doc(f"prefill_{name}")}
    )
    cal = calibrate(device, ctx.dtype)
    point: dict[str, Any] = flops.point_fields(model.config, doc_tokens, queries[0], ctx.dtype.itemsize)
    common = dict(
        doc_hash=docs[0].doc_hash,
        corpus_hash=corpus_hash(d.doc_hash for d in docs),
        timing_docs=len(docs),
        repeats=timing.repeats,
        timer=timer_name(device),
        **point,
        **point_floors(
            model.config,
            doc_tokens,
            point["query_tokens"],
            weight_bytes(model),
            point["kv_bytes"],
            cal,
            prefill["prefill_best_ms"],
        ),
        **prefill,
    )
    rows = {}
    for name in s.readers:
        if name in errors:
            rows[name] = dict(common, status="failed", reason=f"reader {name}: {errors[name]}")
            continue
        reuse_samples = np.concatenate(per_doc(name))
        reuse = SampleStats.of(*per_doc(name))
        low, high = ratio_ci(best_samples, reuse_samples)
        rows[name] = dict(
            common,
            **reuse.columns("reuse_ms"),
            reader_attach=attach_modes[name],
            speedup=prefill["prefill_best_ms"] / reuse.median,
            speedup_ci_low=low,
            speedup_ci_high=high,
            speedup_ci_n=min(len(best_samples), len(reuse_samples)),
            reuse_efficiency=common["reuse_floor_ms"] / reuse.median,
            **_agreement(logits, len(docs), name),
        )
    if "fast" in rows and (0, "query_only") in samples:
        rows["fast"]["query_only_ms"] = float(np.median(samples[(0, "query_only")]))
    if "fast" in rows and "status" not in rows["fast"]:
        rows["fast"].update(fast_fields(fwd, model, device, queries[0], doc_tokens, batch=1))
        if fwd.fused:
            assert first is not None  # set by the first document (timing.docs >= 1)
            rows["fast"]["fuse_max_abs_logit_diff"] = fuse_logit_diff(fwd, *first)
    return rows


def untimed_fields(ctx: RunContext, doc_tokens: int) -> dict[str, dict[str, Any]]:
    """Row fields per reader for a length when ``timing.enabled`` is false: what the point is
    (question length, KV bytes, FLOPs), no latency, so that runs sharing a device (several
    exactness runs at once) record no contended timing."""
    s, model = ctx.settings, ctx.lm.model
    doc = ctx.corpus.documents(doc_tokens, 1)[0]
    Q = fixed_query(doc.query_ids, s.timing.query_tokens).shape[1]
    point = flops.point_fields(model.config, doc_tokens, Q, ctx.dtype.itemsize)
    common = dict(doc_hash=doc.doc_hash, timing_docs=0, **point)
    return {name: dict(common) for name in s.readers}


def exactness_fields(ctx: RunContext, doc_tokens: int, reader: str, references: dict) -> dict[str, Any]:
    """Exactness rates of ``reader`` over ``exactness.num_docs`` documents (empty for ``graph``).

    ``references`` maps (document hash, question ids) to the one-pass reference (logits, tokens,
    margins, kernel), filled by the first reader of a length and read by the next: the
    reference is the same computation for every reader, so it runs once per document.
    """
    ex, device, model = ctx.settings.exactness, ctx.device, ctx.lm.model
    if reader == "graph":
        return {}
    docs = ctx.corpus.documents(doc_tokens, ex.num_docs)
    move = lambda t: t.to(device)
    store = lambda cache, ids: serialised(ctx.snapshot(cache, ids), device, ids)
    pairs = []
    for k, d in enumerate(docs):
        ctx.stage(f"exactness ({reader} reader), documents", k, len(docs))
        doc_ids, query_ids = move(d.doc_ids), move(d.query_ids)
        key = (d.doc_hash, tuple(d.query_ids.flatten().tolist()))
        if key not in references:
            references[key] = one_pass_reference(model, doc_ids, query_ids, ex.gen_tokens, ex.reference_attn_impl)
        if reader == "hf":
            pairs.append(compare_pair(model, doc_ids, query_ids, ex.gen_tokens, store, reference=references[key]))
        else:
            pairs.append(
                compare_fast(
                    model,
                    ctx.fast_forward(),
                    doc_ids,
                    query_ids,
                    ex.gen_tokens,
                    ctx.snapshot,
                    lambda a, ids=doc_ids: serialised(a, device, ids),
                    references[key],
                )
            )
    ctx.stage(f"exactness ({reader} reader), documents", len(docs), len(docs))
    return dict(aggregate(pairs), gen_tokens=ex.gen_tokens)


class ReuseExperiment:
    name = "reuse"

    def __init__(self):
        self._measured: tuple[int, dict[str, dict[str, Any]]] | None = None  # (L, rows per reader)
        self._references: dict[tuple, tuple] = {}  # one-pass references of L's documents

    def points(self, ctx: RunContext) -> list[dict[str, Any]]:
        return [{"doc_tokens": int(n), "reader": r} for n in ctx.settings.doc_tokens for r in ctx.settings.readers]

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]:
        L = point["doc_tokens"]
        if self._measured is None or self._measured[0] != L:
            measure = measure_length if ctx.settings.timing.enabled else untimed_fields
            self._measured, self._references = (L, measure(ctx, L)), {}
        row = dict(self._measured[1][point["reader"]])
        if row.get("status", "ok") == "ok" and ctx.settings.exactness.enabled:
            row.update(exactness_fields(ctx, L, point["reader"], self._references))
        return row
