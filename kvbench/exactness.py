"""Is reuse token-exact? Greedy continuations and first-token logit statistics.

For one document and question three paths are run:

* one-pass: prefill(document + question) -- the reference a reader without KV would run;
* two-stage: prefill(document), then the question on that same cache -- the identical
  computation reuse performs, so it must match bitwise;
* reuse: the document's KV snapshot attached to a fresh cache, then the question.

Rates over many documents are aggregated by :func:`aggregate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kvbench import inference
from kvbench.artifact import KVArtifact


@dataclass
class PairResult:
    """Comparison of reuse against the two references for one document x question."""

    exact: bool                 # reuse == one-pass on all G tokens
    first_divergence: int       # first differing index, G when none
    first_token_agree: bool
    max_abs_logit_diff: float   # first-token logits, reuse vs one-pass
    kl: float                   # KL(one-pass || reuse), nats
    bitwise_twostage: bool      # reuse logits and tokens identical to two-stage
    twostage_logits_bitwise: bool       # first-token logits alone identical to two-stage
    twostage_max_abs_logit_diff: float  # first-token logits, reuse vs two-stage
    repeatable: bool            # reuse run twice gives identical first-token logits and tokens


def first_divergence(a: list[int], b: list[int]) -> int:
    """Index of the first position where two equal-length token lists differ (len when none)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))


def kl_divergence(ref_logits: torch.Tensor, test_logits: torch.Tensor) -> float:
    """KL(softmax(ref) || softmax(test)) in nats, computed in float64. Logits ``(1, vocab)``."""
    ref = torch.log_softmax(ref_logits.double(), dim=-1)
    test = torch.log_softmax(test_logits.double(), dim=-1)
    return float(torch.sum(ref.exp() * (ref - test)))


def compare_pair(model, doc_ids: torch.Tensor, query_ids: torch.Tensor, gen_tokens: int,
                 artifact_from_cache) -> PairResult:
    """Run one-pass, two-stage and reuse for a document ``(1, L)`` and question ``(1, Q)``.

    ``artifact_from_cache(cache, doc_ids) -> KVArtifact`` snapshots the publisher's cache (and
    may round-trip it through storage), so the same code checks every reuse path.
    """
    ref_logits, ref_cache = inference.prefill(model, torch.cat([doc_ids, query_ids], dim=1))
    ref_tokens = inference.greedy_continue(model, ref_cache, ref_logits, gen_tokens)
    del ref_cache

    _, doc_cache = inference.prefill(model, doc_ids)
    artifact: KVArtifact = artifact_from_cache(doc_cache, doc_ids)
    two_logits = inference.extend(model, doc_cache, query_ids)
    two_tokens = inference.greedy_continue(model, doc_cache, two_logits, gen_tokens)
    del doc_cache

    reuse_logits, reuse_cache = inference.reuse(model, artifact, query_ids)
    reuse_tokens = inference.greedy_continue(model, reuse_cache, reuse_logits, gen_tokens)
    del reuse_cache
    # Control: the same reuse again. If this differs, the kernels are not run-to-run
    # deterministic and a two-stage mismatch says nothing about reuse itself.
    again_logits, again_cache = inference.reuse(model, artifact, query_ids)
    again_tokens = inference.greedy_continue(model, again_cache, again_logits, gen_tokens)
    del again_cache, artifact

    return PairResult(
        exact=reuse_tokens == ref_tokens,
        first_divergence=first_divergence(ref_tokens, reuse_tokens),
        first_token_agree=reuse_tokens[0] == ref_tokens[0],
        max_abs_logit_diff=float((reuse_logits - ref_logits).abs().max()),
        kl=kl_divergence(ref_logits, reuse_logits),
        bitwise_twostage=torch.equal(two_logits, reuse_logits) and two_tokens == reuse_tokens,
        twostage_logits_bitwise=torch.equal(two_logits, reuse_logits),
        twostage_max_abs_logit_diff=float((reuse_logits - two_logits).abs().max()),
        repeatable=torch.equal(again_logits, reuse_logits) and again_tokens == reuse_tokens,
    )


def aggregate(results: list[PairResult]) -> dict[str, float]:
    """Rates and extremes over pairs, named as row columns."""
    return {
        "num_docs": len(results),
        "exact_fraction": float(np.mean([r.exact for r in results])),
        "first_divergence_mean": float(np.mean([r.first_divergence for r in results])),
        "first_token_agree": float(np.mean([r.first_token_agree for r in results])),
        "max_abs_logit_diff": float(np.max([r.max_abs_logit_diff for r in results])),
        "kl_mean": float(np.mean([r.kl for r in results])),
        "kl_max": float(np.max([r.kl for r in results])),
        "bitwise_twostage": float(np.mean([r.bitwise_twostage for r in results])),
        "twostage_logits_bitwise": float(np.mean([r.twostage_logits_bitwise for r in results])),
        "twostage_max_abs_logit_diff": float(np.max([r.twostage_max_abs_logit_diff for r in results])),
        "repeatable_fraction": float(np.mean([r.repeatable for r in results])),
    }
