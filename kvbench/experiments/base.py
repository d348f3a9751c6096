"""What every experiment gets, and what it must provide.

An experiment turns settings into measurement points and a point into the measured fields
of one row. The runner (:mod:`kvbench.run.app`) owns everything else: identity columns, skip
and resume, status on failure, atomic writes, progress and tracking.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from kvbench.config.schema import KVBenchConfig
from kvbench.forward import document_pass, inference, reuse_plan
from kvbench.forward.fast import FastForward
from kvbench.kv.artifact import KVArtifact
from kvbench.measure.timing import SampleStats
from kvbench.model.corpus import Corpus
from kvbench.model.loading import LoadedModel


def _quiet(text: str, done: int | None = None, total: int | None = None) -> None:
    """No progress display (tests, library use)."""


@dataclass
class RunContext:
    """The loaded world one experiment runs in.

    ``stage(text, done=None, total=None)`` tells the runner what the point is doing now (e.g.
    ``exactness (fast reader)``, 3 of 8 documents): it shows it under the progress bar and logs
    it with timestamps. Experiments call it instead of printing (they may not import the runner).
    """

    settings: KVBenchConfig
    lm: LoadedModel
    corpus: Corpus
    device: torch.device
    device_name: str
    dtype: torch.dtype
    stage: Callable[..., None] = _quiet

    def fast_forward(self) -> FastForward:
        """The model's fast forward as ``fast`` configures it, compiled on CUDA unless ``compile`` says otherwise."""
        compile = self.settings.compile if self.settings.compile is not None else self.device.type == "cuda"
        fast = self.settings.fast
        return _fast_forward(self.lm.model, compile, fast.fuse, fast.document_kernel, fast.own_kernel)

    def snapshot(self, cache, doc_ids: torch.Tensor) -> KVArtifact:
        """The publisher's artifact: a cloned snapshot of the document cache, stamped with provenance."""
        return KVArtifact.from_cache(
            cache, model_fingerprint=self.lm.fingerprint, tokenizer_hash=self.lm.tokenizer_hash, token_ids=doc_ids
        )


@functools.lru_cache(maxsize=1)
def _fast_forward(model, compile: bool, fuse: bool, document_kernel: str, own_kernel: str) -> FastForward:
    # built once per model: compiling its layers takes seconds to a minute
    return FastForward(model, compile=compile, fuse=fuse, document_kernel=document_kernel, own_kernel=own_kernel)


def publish(ctx: RunContext, doc_ids: torch.Tensor) -> KVArtifact:
    """The publisher: prefill the document ``(1, L)`` and keep its KV snapshot on the device."""
    _, cache = inference.prefill(ctx.lm.model, doc_ids)
    return ctx.snapshot(cache, doc_ids)


def fast_fields(
    fwd: FastForward,
    model,
    device: torch.device,
    readers: int | None = None,
    doc_tokens: int | None = None,
    batch: int | None = None,
) -> dict[str, Any]:
    """Row fields of the fast forward: its fusion, the document pass's kernel for ``readers`` x
    the question's tokens over ``doc_tokens`` (left out when either is None), and, for a reuse of
    ``batch`` readers, how its attention ran (:mod:`kvbench.forward.reuse_plan`; left out when
    ``batch`` is None or the plan was not timed).

    ``readers`` counts the query rows per query head (B readers x T tokens): the document pass
    folds the G query heads of a KV head in, so it sees ``G * readers`` rows per KV head.
    """
    fields: dict[str, Any] = dict(fast_fused=fwd.fused, fused_weight_bytes=fwd.fused_weight_bytes)
    if device.type != "cuda" or readers is None or doc_tokens is None:
        return fields  # off CUDA the float32 reference ran, not a kernel
    groups = model.config.num_attention_heads // model.config.num_key_value_heads
    name, timed = document_pass.chosen(groups * readers, doc_tokens)
    fields["doc_kernel"] = name if fwd.document_kernel == "auto" else fwd.document_kernel
    fields.update(kernel_times("doc_kernel", timed))
    if batch:
        fields.update(plan_fields("reuse_attention", fwd.document_kernel, batch, readers // batch, doc_tokens))
    return fields


def plan_fields(
    prefix: str, document_kernel: str, batch: int, tokens: int, doc_tokens: int, slots: int | None = None
) -> dict[str, Any]:
    """Row fields ``{prefix}`` (``passes`` | ``fused``) and ``{prefix}_{way}_ms`` of how a reader's
    attention ran under ``auto`` (:mod:`kvbench.forward.reuse_plan`; with the caches' ``slots``, a
    decoding reader's); none under a named kernel or where that shape was not timed."""
    plan, timed = reuse_plan.plan_chosen(batch, tokens, doc_tokens, slots)
    if document_kernel != "auto" or plan is None:
        return {}
    return {prefix: plan, **kernel_times(prefix, timed)}


def kernel_times(prefix: str, timed: dict[str, float]) -> dict[str, float | None]:
    """Row fields ``{prefix}_{kernel}_ms`` of an ``auto`` choice's timings; a kernel that failed (inf) is None."""
    return {f"{prefix}_{name}_ms": ms if math.isfinite(ms) else None for name, ms in timed.items()}


def fuse_logit_diff(fwd: FastForward, prefix: KVArtifact, query_ids: torch.Tensor) -> float:
    """Max |logit difference| of ``fwd``'s fused layers against the model's own on ``query_ids`` ``(1, Q)``
    after ``prefix``.

    Both uncompiled, with ``fwd``'s document kernel, so the fusion (GEMM accumulation order) is the
    only difference; the fused side reuses ``fwd``'s weight copies (:meth:`FastForward.eager`).
    """
    plain = FastForward(fwd.model, compile=False, document_kernel=fwd.document_kernel)(query_ids, prefix)
    return float((plain - fwd.eager()(query_ids, prefix)).abs().max())


def prefill_fields(per_path: dict[str, list[np.ndarray]]) -> tuple[dict[str, Any], np.ndarray]:
    """Row fields of the timed prefill paths (``eager``, ``fast``), and the faster one's samples.

    ``per_path[name]`` holds one sample array per document. ``prefill_best_ms`` is the
    smaller median: the prefill every speedup divides.
    """
    stats = {name: SampleStats.of(*samples) for name, samples in per_path.items()}
    best = min(stats, key=lambda name: stats[name].median)
    fields = dict(stats["eager"].columns("prefill_ms"), prefill_best_ms=stats[best].median, prefill_best_path=best)
    if "fast" in stats:
        fields.update(stats["fast"].columns("prefill_fast_ms"))
    return fields, np.concatenate(per_path[best])


class Experiment(Protocol):
    """One experiment kind. ``points`` enumerates coordinates; ``run_point`` measures one.

    A point is a dict holding at least ``doc_tokens``; other keys (``tier``, ``codec``, ...)
    join the point's identity. ``run_point`` returns row fields (see :mod:`kvbench.rows.schema`);
    it raises to mark the point failed, or returns ``status``/``reason`` to mark it skipped.
    """

    name: str

    def points(self, ctx: RunContext) -> list[dict[str, Any]]: ...

    def run_point(self, ctx: RunContext, point: dict[str, Any]) -> dict[str, Any]: ...


@runtime_checkable
class RowsExperiment(Protocol):
    """An experiment that derives rows from committed rows (economics): no device, no model,
    no points. ``derive`` returns the rows, recomputed whole; ``report`` prints them."""

    name: str

    def derive(self, settings: KVBenchConfig) -> list[dict[str, Any]]: ...

    def report(self, rows: list[dict[str, Any]]) -> None: ...
