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

import time
from typing import Any

import numpy as np
import torch

from kvbench.codecs import get_codec
from kvbench.experiments.base import RunContext, prefill_fields, publish
from kvbench.forward.readers import make_reader, prefill_paths
from kvbench.kv.artifact import KVArtifact
from kvbench.kv.binding import Document, check_document
from kvbench.measure import flops
from kvbench.measure.calibrate import calibrate
from kvbench.measure.floors import point_floors, weight_bytes
from kvbench.measure.links import host_links
from kvbench.measure.timing import SampleStats, gbps, ratio_ci, time_interleaved
from kvbench.model.corpus import corpus_hash
from kvbench.tiers import StageTimer, Tier, TierError, TierUnavailableError, open_tier, too_slow, variants
from kvbench.tiers.base import BlobTier
from kvbench.tiers.disk import DEFAULT_DIR

SERIAL_STAGES = ("fetch", "decode", "h2d", "attach", "query")  # one after another
STREAM_STAGES = ("load", "decode", "attach", "query")  # load: fetch, verify and h2d overlapped
MIN_READS = 5  # timed reads per point, over all its documents

# (model fingerprint, dtype, device, document, question, timing) -> prefill row fields and best samples
_PREFILL_MEMO: dict[tuple, dict[str, np.ndarray]] = {}


def time_prefill(
    ctx: RunContext, doc_hash: str, doc_ids: torch.Tensor, query_ids: torch.Tensor
) -> dict[str, np.ndarray]:
    """Prefill of document + question, eager and fast interleaved: each path's samples (memoised per document)."""
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
        full_ids = torch.cat([doc_ids, query_ids], dim=1)
        paths = prefill_paths(ctx.lm.model, ctx.fast_forward(), full_ids, graph)
        _PREFILL_MEMO[key] = time_interleaved(paths, ctx.device, warmup=timing.warmup, repeats=timing.repeats)
    return _PREFILL_MEMO[key]


def read_once(
    ctx: RunContext, tier: Tier, reader, query_ids: torch.Tensor, document: Document
) -> tuple[dict[str, Any], KVArtifact]:
    """One read through every stage; stage milliseconds and bytes moved, and the KV as read.

    What the tier returned (the reader's pool carries the metadata of the blob it was filled
    from) is bound to the reader's ``document`` (length and token-id hash, precomputed: no device sync, no timed
    work) before it is attached: a stored object swapped for another document's is refused.
    """
    tier.prepare()
    timer = StageTimer(ctx.device)
    read = tier.get(timer, reader.pool if reader.attach_mode == "reference" else None)
    kv = read.kv
    check_document(kv, document)
    with timer.device("attach"):
        kv.check_compatible(model_fingerprint=ctx.lm.fingerprint, tokenizer_hash=ctx.lm.tokenizer_hash)
        reader.attach(read.kv)
    with timer.device("query"):
        reader.query(query_ids)
    times = timer.results()
    sample: dict[str, Any] = {s: times.get(s, 0.0) for s in (*SERIAL_STAGES, "load")}
    sample.update(clocks=timer.clocks(), fetch_bytes=read.fetch_bytes, h2d_bytes=read.h2d_bytes, streamed=False)
    if read.stream is not None:  # overlapped stages: the load's own time, and what each stage took inside it
        st = read.stream
        sample.update(
            streamed=True,
            fetch=st.per_worker(st.fetch_ms),
            verify=st.per_worker(st.verify_ms),
            wait=st.per_worker(st.wait_ms),
            h2d=st.h2d_ms,
            chunks=st.chunks,
        )
    total = sum(sample[s] for s in (STREAM_STAGES if sample["streamed"] else SERIAL_STAGES))
    return dict(sample, total=total), read.kv


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
        self._published: tuple[int, list[dict[str, Any]]] | None = None  # (L, one entry per document)

    def points(self, ctx: RunContext) -> list[dict[str, Any]]:
        tier, codec, reader = ctx.settings.tier, ctx.settings.codec.name, ctx.settings.readers[0]
        return [
            {"doc_tokens": int(n), "tier": tier.name, "tier_variant": v, "codec": codec, "reader": reader}
            for n in ctx.settings.doc_tokens
            for v in variants(tier)
        ]

    def publish(self, ctx: RunContext, doc_tokens: int) -> list[dict[str, Any]]:
        """Per document of ``doc_tokens`` (``timing.docs`` of them): its artifact on the device, question and
        prefill samples, cached per L (every tier and variant of L reads the same documents)."""
        if self._published is not None and self._published[0] == doc_tokens:
            return self._published[1]
        self._published = None  # free the previous length's KV before making this one's
        docs = []
        for doc in ctx.corpus.documents(doc_tokens, ctx.settings.timing.docs):
            doc_ids, query_ids = doc.doc_ids.to(ctx.device), doc.query_ids.to(ctx.device)
            artifact = publish(ctx, doc_ids)
            prefill = time_prefill(ctx, doc.doc_hash, doc_ids, query_ids)
            docs.append(
                dict(
                    doc=doc,
                    document=Document.of(doc.doc_ids),  # what a read is bound to (host ids: hashed once, here)
                    artifact=artifact,
                    query_ids=query_ids,
                    prefill=prefill,
                    blobs={},
                    encode_ms={},
                )
            )
        self._published = (doc_tokens, docs)
        return docs

    @staticmethod
    def _encoded(doc: dict[str, Any], codec, chunk_bytes: int) -> bytes:
        """The publisher's blob of ``doc`` under ``codec``, encoded once per L (every tier of L stores it)."""
        key = (codec.name, chunk_bytes)
        if key not in doc["blobs"]:
            start = time.perf_counter()
            doc["blobs"][key] = codec.encode(doc["artifact"], chunk_bytes=chunk_bytes)
            doc["encode_ms"][key] = (time.perf_counter() - start) * 1e3
        return doc["blobs"][key]

    def _fields(self, ctx: RunContext, docs: list[dict[str, Any]]) -> tuple[dict[str, Any], np.ndarray]:
        """The row fields every tier of this L shares (documents, FLOPs, floors, prefill) and the prefill samples."""
        prefill, prefill_samples = prefill_fields(
            {name: [d["prefill"][name] for d in docs] for name in docs[0]["prefill"]}
        )
        model, first = ctx.lm.model, docs[0]
        L, Q = first["doc"].doc_tokens, first["doc"].query_tokens
        artifact = first["artifact"]
        cal = calibrate(ctx.device, ctx.dtype)
        return dict(
            doc_hash=first["doc"].doc_hash,
            corpus_hash=corpus_hash([d["doc"].doc_hash for d in docs]),
            timing_docs=len(docs),
            **flops.point_fields(model.config, L, Q, artifact.keys[0].element_size()),
            **point_floors(model.config, L, Q, weight_bytes(model), artifact.nbytes, cal, prefill["prefill_best_ms"]),
            **prefill,
        ), prefill_samples

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]:
        docs = self.publish(ctx, point["doc_tokens"])
        cfg, timing = ctx.settings.tier, ctx.settings.timing
        warmup = timing.warmup if cfg.warmup is None else cfg.warmup
        repeats = max(-(-MIN_READS // len(docs)), timing.repeats if cfg.repeats is None else cfg.repeats)
        codec = get_codec(ctx.settings.codec.name)
        row, prefill_samples = self._fields(ctx, docs)
        timer = StageTimer(torch.device("cpu"))  # the publisher's one-off work: wall clock
        blobs = [self._encoded(d, codec, cfg.chunk_mib << 20) for d in docs]
        row["encode_ms"] = docs[-1]["encode_ms"][(codec.name, cfg.chunk_mib << 20)]
        reason = too_slow(cfg, point["tier_variant"], len(blobs[0]))
        if reason is not None:
            return dict(row, status="skipped", reason=reason)
        per_doc, bitwise = [], True
        graph = timing.graph and ctx.device.type == "cuda"
        try:
            with open_tier(cfg, point["tier_variant"], codec, ctx.device) as tier:
                for d, blob in zip(docs, blobs):
                    with timer.host("put"):
                        tier.put(blob)
                    row["put_ms"] = timer.results()["put"]
                    pool = tier.resident() or _empty_like(d["artifact"])
                    reader = make_reader(point["reader"], ctx.lm.model, ctx.fast_forward(), pool, d["query_ids"], graph)
                    read = lambda: read_once(ctx, tier, reader, d["query_ids"], d["document"])
                    for _ in range(warmup):
                        read()
                    reads = [read() for _ in range(repeats)]
                    bitwise = bitwise and reads[-1][1].equals(d["artifact"])
                    per_doc.append([r for r, _ in reads])
                row.update(tier.info(), stored_bytes=tier.stored_bytes(), reader_attach=reader.attach_mode)
                if isinstance(tier, BlobTier):  # gpu and host tiers hold the KV decoded: no loader to choose
                    row["tier_io"] = "stream" if per_doc[0][0]["streamed"] else "serial"
                if row.get("tier_io") == "stream":
                    row.update(tier_workers=cfg.workers, tier_chunk_bytes=cfg.chunk_mib << 20)
                path = tier.link_path(host_links(cfg.dir or DEFAULT_DIR, ctx.device, cfg.workers))
        except TierUnavailableError as exc:
            return dict(row, status="skipped", reason=str(exc))
        except TierError as exc:  # the tier failed (disk full, server gone): the prefill measured stays in the row
            return dict(row, status="failed", reason=str(exc))
        row["tier_bitwise"] = bitwise
        row.update(self._stage_fields(per_doc, prefill_samples, row["prefill_best_ms"], repeats))
        row["reuse_efficiency"] = row["reuse_floor_ms"] / row["reuse_ms"]  # against the device floor alone
        floor = path.floor_ms(row["stored_bytes"], row["reuse_floor_ms"])
        row.update(
            storage_link_gbps=path.link("storage"),
            hash_link_gbps=path.link("hash"),
            h2d_link_gbps=path.link("h2d"),
            tier_floor_ms=floor,  # the bytes over the tier's links on this host, plus the reuse floor
            tier_efficiency=floor / row["reuse_ms"],
        )
        return row

    @staticmethod
    def _stage_fields(
        per_doc: list[list[dict[str, Any]]], prefill_samples: np.ndarray, prefill_ms: float, repeats: int
    ) -> dict[str, Any]:
        """Per stage, the median over documents of each document's median; bytes and GB/s; and reuse (the
        per-read total of the stages that run one after another) against the faster prefill."""
        last = per_doc[-1][-1]

        def median(stage: str) -> float:
            return float(np.median([np.median([r.get(stage, 0.0) for r in reads]) for reads in per_doc]))

        stages = (*SERIAL_STAGES, "load", "verify", "wait") if last["streamed"] else SERIAL_STAGES
        fields: dict[str, Any] = {f"{s}_ms": median(s) for s in stages}
        totals = [np.array([r["total"] for r in reads]) for reads in per_doc]
        fetch_bytes, h2d_bytes = last["fetch_bytes"], last["h2d_bytes"]
        order = STREAM_STAGES if last["streamed"] else SERIAL_STAGES
        fields.update(
            fetch_bytes=fetch_bytes,
            h2d_bytes=h2d_bytes,
            repeats=repeats,
            timer=",".join(f"{s}={last['clocks'][s]}" for s in order if s in last["clocks"]),
            fetch_gbps=gbps(fetch_bytes, fields["fetch_ms"]),
            h2d_gbps=gbps(h2d_bytes, fields["h2d_ms"]),
            **SampleStats.of(*totals).columns("reuse_ms"),
        )
        if last["streamed"]:
            fields.update(
                verify_gbps=gbps(fetch_bytes, fields["verify_ms"]), load_gbps=gbps(fetch_bytes, fields["load_ms"])
            )
        pooled = np.concatenate(totals)
        fields["speedup"] = prefill_ms / fields["reuse_ms"]
        fields["speedup_ci_low"], fields["speedup_ci_high"] = ratio_ci(prefill_samples, pooled)
        fields["speedup_ci_n"] = min(len(prefill_samples), len(pooled))
        return fields
