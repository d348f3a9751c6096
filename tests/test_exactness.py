"""Exactness metrics: identical paths agree bitwise; a perturbed KV is detected."""

from __future__ import annotations

import torch

from kvbench.artifact import KVArtifact
from kvbench.exactness import aggregate, compare_pair, first_divergence, kl_divergence


def _snapshot(lm):
    return lambda cache, ids: KVArtifact.from_cache(cache, model_fingerprint=lm.fingerprint,
                                                    tokenizer_hash=lm.tokenizer_hash, token_ids=ids)


def _ids(seed, n):
    return torch.randint(0, 5000, (1, n), generator=torch.Generator().manual_seed(seed))


def test_first_divergence_and_kl():
    assert first_divergence([1, 2, 3], [1, 2, 3]) == 3
    assert first_divergence([1, 2, 3], [1, 9, 3]) == 1
    logits = torch.randn(1, 50)
    assert kl_divergence(logits, logits) == 0.0
    assert kl_divergence(logits, logits.flip(-1)) > 0


def test_reuse_matches_two_stage_bitwise(tiny_lm):
    result = compare_pair(tiny_lm.model, _ids(0, 48), _ids(1, 6), 6, _snapshot(tiny_lm))
    assert result.bitwise_twostage and result.first_token_agree
    assert result.max_abs_logit_diff < 1e-4 and result.kl < 1e-8


def test_perturbed_kv_is_detected(tiny_lm):
    def corrupt(cache, ids):
        art = _snapshot(tiny_lm)(cache, ids)
        art.values = [v * 3.0 for v in art.values]
        return art

    result = compare_pair(tiny_lm.model, _ids(0, 48), _ids(1, 6), 6, corrupt)
    assert not result.bitwise_twostage
    assert result.max_abs_logit_diff > 1e-3 and result.kl > 0


def test_aggregate_rates(tiny_lm):
    pairs = [compare_pair(tiny_lm.model, _ids(s, 32), _ids(s + 100, 4), 4, _snapshot(tiny_lm)) for s in range(3)]
    agg = aggregate(pairs)
    assert agg["num_docs"] == 3 and agg["bitwise_twostage"] == 1.0
    assert 0.0 <= agg["exact_fraction"] <= 1.0 and agg["first_divergence_mean"] <= 4


def test_static_cache_reader_matches_eager_reuse(tiny_lm):
    from kvbench import inference
    from kvbench.graph_reader import StaticGraphForward

    doc, query = _ids(3, 40), _ids(4, 5)
    _, cache = inference.prefill(tiny_lm.model, doc)
    art = _snapshot(tiny_lm)(cache, doc)
    eager, _ = inference.reuse(tiny_lm.model, art, query)
    reader = StaticGraphForward(tiny_lm.model, 40, 5)  # no capture on CPU: the same static forward, eagerly
    first = reader(art, query)
    assert torch.allclose(first, eager, atol=1e-4)
    assert torch.equal(reader(art, query), first)  # re-attach resets the cache length
    one_pass, _ = inference.prefill(tiny_lm.model, torch.cat([doc, query], dim=1))
    assert torch.allclose(StaticGraphForward(tiny_lm.model, 0, 45)(None, torch.cat([doc, query], dim=1)),
                          one_pass, atol=1e-4)
