"""Is the fast reader token-exact? Its first token and greedy continuation against a one-pass prefill.

The same questions as :mod:`kvbench.exactness` asks of the reference reader, asked of
:class:`kvbench.fast_forward.FastForward` reading the document's KV in place:

* one-pass: HF's prefill of document + question and its greedy continuation (the reference);
* fast: the fast forward on the stored KV (after a safetensors round trip, as a buyer gets it),
  its greedy continuation re-running question + tokens so far on the same KV;
* in-memory: the fast forward on the publisher's KV before serialisation; bitwise equality
  with ``fast`` says serialisation changed nothing;
* repeat: ``fast`` again; below 1 the kernels are not run-to-run deterministic.
"""

from __future__ import annotations

import torch

from kvbench import inference
from kvbench.artifact import KVArtifact
from kvbench.exactness import PairResult, first_divergence, kl_divergence, one_pass_reference
from kvbench.fast_forward import FastForward, greedy_continue_fast


def _fast_run(fwd: FastForward, kv: KVArtifact, query_ids: torch.Tensor, steps: int) -> tuple[torch.Tensor, list[int]]:
    logits = fwd(query_ids, kv)
    return logits, greedy_continue_fast(fwd, kv, query_ids, logits, steps)


def compare_fast(model, fwd: FastForward, doc_ids: torch.Tensor, query_ids: torch.Tensor, gen_tokens: int,
                 publish, serialise, reference_attn_impl: str | None = None) -> PairResult:
    """Compare the fast reader with the one-pass reference for a document ``(1, L)`` and question ``(1, Q)``.

    ``publish(cache, doc_ids) -> KVArtifact`` snapshots the publisher's cache on the device;
    ``serialise(artifact) -> KVArtifact`` returns it after a round trip through bytes.
    ``bitwise_twostage`` here compares the reader on the serialised KV with the same reader
    on the in-memory KV (logits and tokens).
    """
    ref_logits, ref_tokens, ref_margins, reference_impl = one_pass_reference(
        model, doc_ids, query_ids, gen_tokens, reference_attn_impl)
    _, doc_cache = inference.prefill(model, doc_ids)
    in_memory = publish(doc_cache, doc_ids)
    del doc_cache
    stored = serialise(in_memory)
    logits, tokens = _fast_run(fwd, stored, query_ids, gen_tokens)
    mem_logits, mem_tokens = _fast_run(fwd, in_memory, query_ids, gen_tokens)
    again_logits, again_tokens = _fast_run(fwd, stored, query_ids, gen_tokens)
    diverged_at = first_divergence(ref_tokens, tokens)
    return PairResult(
        exact=tokens == ref_tokens,
        first_divergence=diverged_at,
        first_token_agree=tokens[0] == ref_tokens[0],
        max_abs_logit_diff=float((logits - ref_logits).abs().max()),
        kl=kl_divergence(ref_logits, logits),
        bitwise_twostage=torch.equal(mem_logits, logits) and mem_tokens == tokens,
        twostage_logits_bitwise=torch.equal(mem_logits, logits),
        twostage_max_abs_logit_diff=float((logits - mem_logits).abs().max()),
        repeatable=torch.equal(again_logits, logits) and again_tokens == tokens,
        divergence_margin=ref_margins[diverged_at] if diverged_at < gen_tokens else None,
        reference_attn_impl=reference_impl,
    )
