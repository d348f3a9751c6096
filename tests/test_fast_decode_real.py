"""The fast reader's incremental greedy decode on real weights (SmolLM2, CPU float32): the same tokens as
HF's greedy continuation and as the re-run-per-token decode it replaced."""

from __future__ import annotations

import pytest
import torch
from test_fast_forward import rerun_greedy

from kvbench.config.schema import CorpusConfig, ModelConfig
from kvbench.forward import inference
from kvbench.forward.fast import FastForward, greedy_continue_fast
from kvbench.kv.artifact import KVArtifact
from kvbench.model.corpus import Corpus
from kvbench.model.loading import load_model, load_tokenizer

pytestmark = pytest.mark.slow  # loads the embedded SmolLM2 (~20 s on 2 cores)


@pytest.fixture(scope="module")
def smollm2():
    spec = ModelConfig()
    tokenizer = load_tokenizer(spec)
    cpu = torch.device("cpu")
    lm = load_model(spec, device=cpu, dtype=torch.float32, attn_impl="sdpa", seed=0, tokenizer=tokenizer)
    return lm.model, Corpus(CorpusConfig(), tokenizer[0])


@pytest.mark.parametrize("doc_tokens", [128, 512])
def test_incremental_decode_gives_hf_and_rerun_tokens(smollm2, doc_tokens):
    model, corpus = smollm2
    fwd = FastForward(model, compile=False)
    for doc in corpus.documents(doc_tokens, 2):
        _, cache = inference.prefill(model, doc.doc_ids)
        art = KVArtifact.from_cache(cache, model_fingerprint="", tokenizer_hash="", token_ids=doc.doc_ids)
        hf_logits, hf_cache = inference.reuse(model, art, doc.query_ids)
        hf_tokens, _ = inference.greedy_continue(model, hf_cache, hf_logits, 12)
        first = fwd(doc.query_ids, art)
        tokens = greedy_continue_fast(fwd, art, doc.query_ids, first, 12)
        assert tokens == hf_tokens == rerun_greedy(fwd, art, doc.query_ids, first, 12)
