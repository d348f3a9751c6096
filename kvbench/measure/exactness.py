"""Is reuse token-exact? Greedy continuations, first-token logit statistics, rates with intervals.

For one document and question three paths are run:

* one-pass: prefill(document + question) -- the reference a reader without KV would run;
* two-stage: prefill(document), then the question on that same cache -- the identical
  computation reuse performs, so it must match bitwise;
* reuse: the document's KV snapshot attached to a fresh cache, then the question.

Rates over many documents are aggregated by :func:`aggregate`, each with a 95% Wilson interval.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from scipy.stats import binomtest

from kvbench.forward import inference
from kvbench.kv.artifact import KVArtifact

CONFIDENCE = 0.95


@dataclass
class PairResult:
    """Comparison of reuse against the two references for one document x question."""

    exact: bool  # reuse == one-pass on all G tokens
    first_divergence: int  # first differing index, G when none
    first_token_agree: bool
    max_abs_logit_diff: float  # first-token logits, reuse vs one-pass
    kl: float  # KL(one-pass || reuse), nats
    bitwise_twostage: bool  # reuse logits and tokens identical to two-stage
    twostage_logits_bitwise: bool  # first-token logits alone identical to two-stage
    twostage_max_abs_logit_diff: float  # first-token logits, reuse vs two-stage
    repeatable: bool  # reuse run twice gives identical first-token logits and tokens
    divergence_margin: Optional[float]  # one-pass top-1 minus top-2 logit at first_divergence; None if exact
    reference_attn_impl: str  # attention kernel the one-pass reference ran with


def first_divergence(a: list[int], b: list[int]) -> int:
    """Index of the first position where two equal-length token lists differ (len when none)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), len(a))


def kl_divergence(ref_logits: torch.Tensor, test_logits: torch.Tensor) -> float:
    """KL(softmax(ref) || softmax(test)) in nats, computed in float64. Logits ``(1, vocab)``."""
    ref = torch.log_softmax(ref_logits.double(), dim=-1)
    test = torch.log_softmax(test_logits.double(), dim=-1)
    return float(torch.sum(ref.exp() * (ref - test)))


@contextmanager
def attention_kernel(model, impl: Optional[str]) -> Iterator[str]:
    """Run the block with the model's attention implementation set to ``impl`` (None: as loaded).

    Yields the implementation actually in force, which is what rows record.
    """
    loaded = model.config._attn_implementation
    if impl is None or impl == loaded:
        yield loaded
        return
    model.set_attn_implementation(impl)
    try:
        yield model.config._attn_implementation
    finally:
        model.set_attn_implementation(loaded)


def one_pass_reference(
    model, doc_ids: torch.Tensor, query_ids: torch.Tensor, gen_tokens: int, reference_attn_impl: Optional[str] = None
):
    """The reference a reader without KV runs: prefill(document + question) and its greedy continuation.

    Returns ``(logits (1, vocab), tokens, margins, attention implementation used)``.
    """
    with attention_kernel(model, reference_attn_impl) as reference_impl:
        logits, cache = inference.prefill(model, torch.cat([doc_ids, query_ids], dim=1))
        tokens, margins = inference.greedy_continue(model, cache, logits, gen_tokens)
    return logits, tokens, margins, reference_impl


def compare_pair(
    model,
    doc_ids: torch.Tensor,
    query_ids: torch.Tensor,
    gen_tokens: int,
    artifact_from_cache,
    reference_attn_impl: Optional[str] = None,
    reference=None,
) -> PairResult:
    """Run one-pass, two-stage and reuse for a document ``(1, L)`` and question ``(1, Q)``.

    ``artifact_from_cache(cache, doc_ids) -> KVArtifact`` snapshots the publisher's cache (and
    may round-trip it through storage), so the same code checks every reuse path.
    ``reference_attn_impl`` runs the one-pass reference alone with another attention kernel
    (the kernel-choice control); None keeps the model's own. ``reference``: that reference
    already computed (:func:`one_pass_reference`'s result for these inputs), e.g. for another reader.
    """
    ref_logits, ref_tokens, ref_margins, reference_impl = reference or one_pass_reference(
        model, doc_ids, query_ids, gen_tokens, reference_attn_impl
    )

    _, doc_cache = inference.prefill(model, doc_ids)
    artifact: KVArtifact = artifact_from_cache(doc_cache, doc_ids)
    two_logits = inference.extend(model, doc_cache, query_ids)
    two_tokens, _ = inference.greedy_continue(model, doc_cache, two_logits, gen_tokens)
    del doc_cache

    reuse_logits, reuse_cache = inference.reuse(model, artifact, query_ids)
    reuse_tokens, _ = inference.greedy_continue(model, reuse_cache, reuse_logits, gen_tokens)
    del reuse_cache
    # Control: the same reuse again. If this differs, the kernels are not run-to-run
    # deterministic and a two-stage mismatch says nothing about reuse itself.
    again_logits, again_cache = inference.reuse(model, artifact, query_ids)
    again_tokens, _ = inference.greedy_continue(model, again_cache, again_logits, gen_tokens)
    del again_cache, artifact

    return judge(
        (ref_logits, ref_tokens, ref_margins),
        (reuse_logits, reuse_tokens),
        (two_logits, two_tokens),
        (again_logits, again_tokens),
        reference_impl,
    )


def judge(reference, reuse, twostage, again, reference_impl: str) -> PairResult:
    """One pair's comparison from its runs: ``reference`` is ``(logits, tokens, margins)`` of the
    one-pass prefill; ``reuse``, ``twostage`` (the same computation another way) and ``again``
    (reuse repeated) are ``(logits, tokens)``, first-token logits ``(1, vocab)``."""
    (ref_logits, ref_tokens, ref_margins), (logits, tokens) = reference, reuse
    diverged_at = first_divergence(ref_tokens, tokens)
    return PairResult(
        exact=tokens == ref_tokens,
        first_divergence=diverged_at,
        first_token_agree=tokens[0] == ref_tokens[0],
        max_abs_logit_diff=float((logits - ref_logits).abs().max()),
        kl=kl_divergence(ref_logits, logits),
        bitwise_twostage=torch.equal(twostage[0], logits) and twostage[1] == tokens,
        twostage_logits_bitwise=torch.equal(twostage[0], logits),
        twostage_max_abs_logit_diff=float((logits - twostage[0]).abs().max()),
        repeatable=torch.equal(again[0], logits) and again[1] == tokens,
        divergence_margin=ref_margins[diverged_at] if diverged_at < len(ref_tokens) else None,
        reference_attn_impl=reference_impl,
    )


def wilson_interval(successes: int, trials: int) -> tuple[Optional[float], Optional[float]]:
    """95% Wilson score interval of a binomial proportion; ``(None, None)`` over zero trials."""
    if trials == 0:
        return None, None
    ci = binomtest(successes, trials).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def rate_columns(name: str, outcomes: list[bool]) -> dict[str, Optional[float]]:
    """``name`` (the fraction of true outcomes) with ``name_ci_low`` / ``name_ci_high``; None when empty."""
    successes, trials = int(sum(outcomes)), len(outcomes)
    low, high = wilson_interval(successes, trials)
    return {name: successes / trials if trials else None, f"{name}_ci_low": low, f"{name}_ci_high": high}


def aggregate(results: list[PairResult]) -> dict[str, Any]:
    """Rates (with Wilson intervals) and extremes over pairs, named as row columns.

    The two-stage rates count only the pairs whose reuse repeated bitwise: where the kernels
    themselves are not run-to-run deterministic, a two-stage mismatch says nothing about reuse.
    Divergence margins are over the pairs whose continuation diverged from the one-pass one.
    """
    repeated = [r for r in results if r.repeatable]
    margins = [r.divergence_margin for r in results if r.divergence_margin is not None]
    return {
        "num_docs": len(results),
        **rate_columns("exact_fraction", [r.exact for r in results]),
        "first_divergence_mean": float(np.mean([r.first_divergence for r in results])),
        **rate_columns("first_token_agree", [r.first_token_agree for r in results]),
        "max_abs_logit_diff": float(np.max([r.max_abs_logit_diff for r in results])),
        "kl_mean": float(np.mean([r.kl for r in results])),
        "kl_max": float(np.max([r.kl for r in results])),
        **rate_columns("bitwise_twostage", [r.bitwise_twostage for r in repeated]),
        **rate_columns("twostage_logits_bitwise", [r.twostage_logits_bitwise for r in repeated]),
        "bitwise_twostage_n": len(repeated),
        "twostage_max_abs_logit_diff": float(np.max([r.twostage_max_abs_logit_diff for r in results])),
        **rate_columns("repeatable_fraction", [r.repeatable for r in results]),
        "divergence_margin_mean": float(np.mean(margins)) if margins else None,
        "divergence_margin_min": float(np.min(margins)) if margins else None,
        "reference_attn_impl": "|".join(sorted({r.reference_attn_impl for r in results})),
    }
