"""Is the fast reader token-exact? Its first token and greedy continuation against a one-pass prefill.

The same questions as :mod:`kvbench.measure.exactness` asks of the reference reader, asked of
:class:`kvbench.forward.fast.FastForward` reading the document's KV in place:

* one-pass: HF's prefill of document + question and its greedy continuation (the reference);
* fast: the fast forward on the stored KV (after a safetensors round trip, as a buyer gets it),
  its greedy continuation decoded incrementally on a cache of the reader's own beside the same
  KV (:func:`~kvbench.forward.fast.greedy_continue_fast`; rows before issue 24 re-ran the
  question and the tokens so far at every step: the same tokens, other kernel shapes);
* in-memory: the fast forward on the publisher's KV before serialisation; bitwise equality
  with ``fast`` says serialisation changed nothing;
* repeat: ``fast`` again; below 1 the kernels are not run-to-run deterministic.
"""

from __future__ import annotations

import torch

from kvbench.forward import inference
from kvbench.forward.fast import FastForward, greedy_continue_fast
from kvbench.kv.artifact import KVArtifact
from kvbench.measure.exactness import PairResult, judge


def _fast_run(fwd: FastForward, kv: KVArtifact, query_ids: torch.Tensor, steps: int) -> tuple[torch.Tensor, list[int]]:
    logits = fwd(query_ids, kv)
    return logits, greedy_continue_fast(fwd, kv, query_ids, logits, steps)


def compare_fast(
    model,
    fwd: FastForward,
    doc_ids: torch.Tensor,
    query_ids: torch.Tensor,
    gen_tokens: int,
    publish,
    serialise,
    reference,
) -> PairResult:
    """Compare the fast reader with the one-pass reference for a document ``(1, L)`` and question ``(1, Q)``.

    ``publish(cache, doc_ids) -> KVArtifact`` snapshots the publisher's cache on the device;
    ``serialise(artifact) -> KVArtifact`` returns it after a round trip through bytes.
    ``bitwise_twostage`` here compares the reader on the serialised KV with the same reader
    on the in-memory KV (logits and tokens). ``reference``: :func:`~kvbench.measure.exactness.one_pass_reference`'s
    result for these inputs, computed once per document for every reader.
    """
    ref_logits, ref_tokens, ref_margins, reference_impl = reference
    _, doc_cache = inference.prefill(model, doc_ids)
    in_memory = publish(doc_cache, doc_ids)
    del doc_cache
    stored = serialise(in_memory)
    logits, tokens = _fast_run(fwd, stored, query_ids, gen_tokens)
    mem_logits, mem_tokens = _fast_run(fwd, in_memory, query_ids, gen_tokens)
    again_logits, again_tokens = _fast_run(fwd, stored, query_ids, gen_tokens)
    return judge(
        (ref_logits, ref_tokens, ref_margins),
        (logits, tokens),
        (mem_logits, mem_tokens),
        (again_logits, again_tokens),
        reference_impl,
    )
