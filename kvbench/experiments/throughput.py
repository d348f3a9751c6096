"""Experiment ``throughput``: many readers of one document, answered in one batched forward.

A provider batches the readers of a hot document: B questions (``timing.query_tokens`` each)
run in one forward of the fast reader over the document's KV. Two methods:

* ``shared``: one copy of the document KV, read once per forward for the whole batch (the
  readers and grouped query heads folded into one attention pass; :mod:`kvbench.forward.attention`);
* ``naive``: a copy of the document KV per reader, each read by its reader alone (what a
  plain batched cache holds). Its memory grows with B; past the device, the row is ``oom``.

Per (L, B, method): device ms per batch and per reader (CUDA-graph replays, CUDA events),
question tokens/s, peak device memory, and the floors per reader (compute: the reader's own
FLOPs at peak; memory: weights + document KV once per batch, over B). Each reader's
first-token logits in the batch are compared with the same question answered alone.

With ``throughput.gen_tokens`` = G > 0 each reader then decodes G greedy tokens, one batched
step per token, over the document's KV and its own (:class:`~kvbench.forward.fast.GreedyDecoder`).
The step at the middle of the answer (own KV: Q + G // 2 tokens) is timed, per batch and per
reader, beside its floors (:func:`~kvbench.measure.floors.decode_floors_ms`): a provider pays for
decoding whether or not the prefix was cached. Each reader's tokens in the batch are compared
with the same reader decoded alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from kvbench.experiments.base import RunContext, fast_fields, kernel_times, plan_fields, publish
from kvbench.forward.cuda_graph import Replayable
from kvbench.forward.fast import GreedyDecoder
from kvbench.kv.artifact import KVArtifact
from kvbench.measure import flops
from kvbench.measure.calibrate import calibrate
from kvbench.measure.floors import batch_floors_ms, decode_floors_ms, weight_bytes
from kvbench.measure.timing import SampleStats, time_ms, timer_name


def reader_questions(questions: list[torch.Tensor], filler: torch.Tensor, readers: int, tokens: int) -> torch.Tensor:
    """``(readers, tokens)`` question ids, a different question per reader.

    Reader ``b`` asks question ``b mod n``, its tokens repeated or cut to ``tokens``, opening
    with its own quote: ``k = tokens // 4`` tokens of ``filler`` (1-D ids, e.g. corpus text)
    taken at ``b * k``. So readers beyond the question set still ask different questions.
    """
    quote = max(1, tokens // 4)
    rows = []
    for b in range(readers):
        q = questions[b % len(questions)].flatten()
        body = q.repeat(math.ceil(tokens / q.numel()))[: tokens - quote]
        rows.append(torch.cat([filler[b * quote : (b + 1) * quote], body]))
    return torch.stack(rows)


def per_reader_copies(artifact: KVArtifact, readers: int) -> KVArtifact:
    """The document KV copied once per reader: layers ``(readers, kv_heads, L, head_dim)``."""
    copy = lambda t: t.expand(readers, -1, -1, -1).contiguous()
    return KVArtifact([copy(k) for k in artifact.keys], [copy(v) for v in artifact.values], dict(artifact.meta))


class ThroughputExperiment:
    name = "throughput"

    def __init__(self):
        self._doc: tuple[int, dict[str, Any]] | None = None  # (L, the document and its lone answers)

    def points(self, ctx: RunContext) -> list[dict[str, Any]]:
        tp = ctx.settings.throughput
        return [
            {"doc_tokens": int(n), "batch": int(b), "method": m, "reader": "fast"}
            for n in ctx.settings.doc_tokens
            for m in tp.methods
            for b in tp.batches
        ]

    def document(self, ctx: RunContext, doc_tokens: int) -> dict[str, Any]:
        """The document's KV on the device, every reader's question, and each answered alone."""
        if self._doc is not None and self._doc[0] == doc_tokens:
            return self._doc[1]
        self._doc = None
        doc = ctx.corpus.documents(doc_tokens, 1)[0]
        artifact = publish(ctx, doc.doc_ids.to(ctx.device))
        tokens = ctx.settings.timing.query_tokens or min(q.shape[1] for q in ctx.corpus.questions)
        readers = max(ctx.settings.throughput.batches)
        ids = reader_questions(ctx.corpus.questions, ctx.corpus.stream, readers, tokens).to(ctx.device)
        alone = Replayable(lambda x: ctx.fast_forward()(x, artifact), ids[:1], graph=self._graph(ctx))
        lone = torch.cat([alone(ids[b : b + 1]).clone() for b in range(ids.shape[0])])
        self._doc = (
            doc_tokens,
            dict(doc=doc, artifact=artifact, ids=ids, lone=lone, lone_tokens=self._lone_tokens(ctx, artifact, ids)),
        )
        return self._doc[1]

    def _lone_tokens(self, ctx: RunContext, artifact: KVArtifact, ids: torch.Tensor) -> torch.Tensor | None:
        """``(readers, gen_tokens + 1)`` greedy tokens of each reader decoded alone; None when not decoding."""
        steps = ctx.settings.throughput.gen_tokens
        if steps == 0:
            return None
        alone = GreedyDecoder(ctx.fast_forward(), artifact, 1, ids.shape[1], steps, graph=self._graph(ctx))
        return torch.cat([alone.tokens(ids[b : b + 1]) for b in range(ids.shape[0])])

    @staticmethod
    def _graph(ctx: RunContext) -> bool:
        return ctx.settings.timing.graph and ctx.device.type == "cuda"

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]:
        doc = self.document(ctx, point["doc_tokens"])
        B, L, model, timing = point["batch"], point["doc_tokens"], ctx.lm.model, ctx.settings.timing
        ids = doc["ids"][:B]
        cuda = ctx.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(ctx.device)
        kv = doc["artifact"] if point["method"] == "shared" else per_reader_copies(doc["artifact"], B)
        batch = Replayable(lambda x: ctx.fast_forward()(x, kv), ids, graph=self._graph(ctx))
        samples = time_ms(lambda: batch(ids), ctx.device, warmup=timing.warmup, repeats=timing.repeats)
        logits = batch(ids)
        stats = SampleStats.of(samples)
        Q, cal, weights = ids.shape[1], calibrate(ctx.device, ctx.dtype), weight_bytes(model)
        peak_mem = torch.cuda.max_memory_allocated(ctx.device) if cuda else None  # before any decoding
        floors = batch_floors_ms(model.config, B, Q, L, weights, doc["artifact"].nbytes, cal)
        per_reader = stats.median / B
        lone = doc["lone"][:B]
        return dict(
            doc_hash=doc["doc"].doc_hash,
            query_tokens=Q,
            kv_bytes=doc["artifact"].nbytes,
            weight_bytes=weights,
            peak_tflops=cal.matmul_tflops,
            hbm_gbps=cal.hbm_gbps,
            timer=timer_name(ctx.device),
            repeats=timing.repeats,
            reuse_flops=flops.forward_flops(model.config, Q, cached_tokens=L) * B,
            **stats.columns("batch_ms"),
            per_reader_ms=per_reader,
            tokens_per_s=B * Q / (stats.median * 1e-3),
            efficiency=floors["per_reader_floor_ms"] / per_reader,
            **floors,
            peak_mem_bytes=peak_mem,
            batch_top1_agree=float((logits.argmax(-1) == lone.argmax(-1)).float().mean()),
            batch_max_abs_logit_diff=float((logits - lone).abs().max()),
            # the document pass runs only on a shared document; a copy per reader runs flash on each
            **fast_fields(
                ctx.fast_forward(), model, ctx.device, B * Q if point["method"] == "shared" else None, L, batch=B
            ),
            **(self._decode(ctx, doc, kv, ids, cal, weights) if ctx.settings.throughput.gen_tokens else {}),
        )

    def _decode(
        self, ctx: RunContext, doc: dict[str, Any], kv: KVArtifact, ids: torch.Tensor, cal, weights: int
    ) -> dict[str, Any]:
        """Decode columns: B readers decode ``gen_tokens`` greedy tokens; the middle step is timed."""
        (B, Q), steps, timing = ids.shape, ctx.settings.throughput.gen_tokens, ctx.settings.timing
        decoder = GreedyDecoder(ctx.fast_forward(), kv, B, Q, steps, graph=self._graph(ctx))
        tokens = decoder.tokens(ids)
        # every step has the same shapes (static cache), so one in the middle stands for all; replaying
        # it at a fixed length rewrites the slot it wrote during decoding, with the same token
        mid = steps // 2
        decoder.cache.rewind(Q + mid)
        token = tokens[:, mid : mid + 1]
        stats = SampleStats.of(
            time_ms(lambda: decoder.step(token), ctx.device, warmup=timing.warmup, repeats=timing.repeats)
        )
        per_reader = stats.median / B
        config, artifact = ctx.lm.model.config, doc["artifact"]
        copies = kv.keys[0].shape[0]  # of the document's KV: 1 (shared) or B (naive)
        floors = decode_floors_ms(
            config,
            B,
            artifact.num_tokens,
            Q + mid,
            weights,
            artifact.nbytes,
            flops.kv_bytes(config, Q + mid, artifact.keys[0].element_size()),
            copies,
            cal,
        )
        return dict(
            gen_tokens=steps,
            **stats.columns("decode_step_ms"),
            decode_per_reader_ms=per_reader,
            decode_tokens_per_s=B / (stats.median * 1e-3),
            **floors,
            decode_efficiency=floors["decode_per_reader_floor_ms"] / per_reader,
            decode_top1_agree=float((tokens == doc["lone_tokens"][:B]).float().mean()),
            decode_own_kernel=decoder.cache.kernel,
            **kernel_times("decode_own", decoder.cache.timed),
            decode_doc_kernel=fast_fields(
                ctx.fast_forward(), ctx.lm.model, ctx.device, B if copies == 1 else None, artifact.num_tokens
            ).get("doc_kernel"),
            **plan_fields(
                "decode_attention",
                ctx.fast_forward().document_kernel,
                B,
                1,
                artifact.num_tokens,
                slots=decoder.cache.keys[0].shape[2],
            ),
        )
