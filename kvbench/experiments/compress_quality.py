"""What a lossy codec costs: exactness of reuse and the change in the document's own loss.

Both compare the reader's model run on the exact document KV against the same run on
``decode(encode(KV))``. Exactness uses :func:`kvbench.measure.exactness.compare_pair` with the
round trip as the storage step (its rates carry Wilson intervals). The loss is the mean next-token NLL of a held-out
continuation of each document (the ``C`` corpus tokens that follow it), forwarded on top
of the document's KV: the continuation's first token is only context, tokens 2..C are
scored, so every scored prediction attends to the (lossy) document KV. The mean change
carries a percentile bootstrap interval over documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from kvbench.forward import inference
from kvbench.kv.artifact import KVArtifact
from kvbench.measure.exactness import aggregate, compare_pair


@dataclass
class Passage:
    """A document with its question and held-out continuation: ``(1, L)``, ``(1, Q)``, ``(1, C)`` ids."""

    doc_ids: torch.Tensor
    query_ids: torch.Tensor
    cont_ids: torch.Tensor


@torch.inference_mode()
def continuation_nll(model, artifact: KVArtifact, cont_ids: torch.Tensor) -> float:
    """Mean NLL (nats) of ``cont_ids[:, 1:]`` given the artifact's KV and the preceding continuation tokens."""
    out = model(input_ids=cont_ids, past_key_values=artifact.to_cache(model.config), use_cache=True)
    logits = out.logits[0, :-1].float()
    return float(torch.nn.functional.cross_entropy(logits, cont_ids[0, 1:]))


def relative_rmse(reference: KVArtifact, decoded: KVArtifact) -> float:
    """``||decoded - reference|| / ||reference||`` over every value of every layer (float64 sums)."""
    err = ref = 0.0
    for a, b in zip((*reference.keys, *reference.values), (*decoded.keys, *decoded.values)):
        a, b = a.double(), b.to(a.device).double()
        err += float(((b - a) ** 2).sum())
        ref += float((a**2).sum())
    return (err / ref) ** 0.5 if ref else 0.0


def mean_ci(samples: np.ndarray, confidence: float = 0.95, seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of per-document ``samples`` (None below 2 documents)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size < 2:
        return None, None
    if np.ptp(samples) == 0:
        return float(samples[0]), float(samples[0])
    res = stats.bootstrap(
        (samples,), np.mean, confidence_level=confidence, n_resamples=4000, method="percentile",
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def lossy_quality(model, passages: list[Passage], snapshot, roundtrip, gen_tokens: int | None) -> dict:
    """Exactness (when ``gen_tokens``) and continuation NLL of exact vs round-tripped KV.

    ``snapshot(cache, doc_ids) -> KVArtifact`` takes the publisher's artifact;
    ``roundtrip(artifact) -> KVArtifact`` is ``decode(encode(artifact))`` on the model's device.
    Each document is prefilled once: the exactness pass keeps both artifacts for the NLL.
    """
    exact: list[KVArtifact] = []
    lossy: list[KVArtifact] = []

    def publish(cache, doc_ids):
        exact.append(snapshot(cache, doc_ids))
        lossy.append(roundtrip(exact[-1]))
        return lossy[-1]

    fields: dict[str, Any] = {}
    if gen_tokens:
        pairs = [compare_pair(model, p.doc_ids, p.query_ids, gen_tokens, publish) for p in passages]
        fields.update(aggregate(pairs), gen_tokens=gen_tokens)
    else:
        for p in passages:
            publish(inference.prefill(model, p.doc_ids)[1], p.doc_ids)
    nll_exact = [continuation_nll(model, a, p.cont_ids) for a, p in zip(exact, passages)]
    nll_lossy = [continuation_nll(model, a, p.cont_ids) for a, p in zip(lossy, passages)]
    low, high = mean_ci(np.subtract(nll_lossy, nll_exact))
    fields.update(
        nll_delta_ci_low=low,
        nll_delta_ci_high=high,
        nll_exact=float(np.mean(nll_exact)),
        nll_lossy=float(np.mean(nll_lossy)),
        nll_delta=float(np.mean(nll_lossy) - np.mean(nll_exact)),
        num_docs=len(passages),
    )
    return fields
