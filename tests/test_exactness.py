"""Exactness metrics: identical paths agree bitwise; a perturbed KV is detected."""

from __future__ import annotations

import torch

from kvbench.kv.artifact import KVArtifact
from kvbench.measure.exactness import aggregate, compare_pair, first_divergence, kl_divergence


def _snapshot(lm):
    return lambda cache, ids: KVArtifact.from_cache(
        cache, model_fingerprint=lm.fingerprint, tokenizer_hash=lm.tokenizer_hash, token_ids=ids
    )


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
    from kvbench.forward import inference
    from kvbench.forward.graph import StaticGraphForward

    doc, query = _ids(3, 40), _ids(4, 5)
    _, cache = inference.prefill(tiny_lm.model, doc)
    art = _snapshot(tiny_lm)(cache, doc)
    eager, _ = inference.reuse(tiny_lm.model, art, query)
    reader = StaticGraphForward(tiny_lm.model, 40, 5)  # no capture on CPU: the same static forward, eagerly
    first = reader(art, query)
    assert torch.allclose(first, eager, atol=1e-4)
    assert torch.equal(reader(art, query), first)  # re-attach resets the cache length
    one_pass, _ = inference.prefill(tiny_lm.model, torch.cat([doc, query], dim=1))
    assert torch.allclose(
        StaticGraphForward(tiny_lm.model, 0, 45)(None, torch.cat([doc, query], dim=1)), one_pass, atol=1e-4
    )


# --- rates with intervals, margins, the repeated-pairs rule -------------------------------------

import math  # noqa: E402
from dataclasses import replace  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402

from kvbench.forward import inference  # noqa: E402
from kvbench.measure import exactness  # noqa: E402
from kvbench.measure.exactness import PairResult, attention_kernel, wilson_interval  # noqa: E402


def _wilson_by_hand(k, n, z=1.959963984540054):
    """The Wilson score interval from its textbook formula."""
    p, denom = k / n, 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return center - half, center + half


@pytest.mark.parametrize("k, n", [(8, 8), (3, 5), (0, 32), (31, 32), (1, 1)])
def test_wilson_interval_matches_the_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(_wilson_by_hand(k, n), abs=1e-12)


def test_wilson_interval_pinned():
    # 8/8 exact cannot tell 100% from 80%: the lower bound is 0.676.
    assert wilson_interval(8, 8) == pytest.approx((0.675592, 1.0), abs=1e-6)
    assert wilson_interval(3, 5) == pytest.approx((0.230724, 0.882379), abs=1e-6)
    assert wilson_interval(32, 32) == pytest.approx((0.892821, 1.0), abs=1e-6)
    assert wilson_interval(0, 0) == (None, None)


def _pair(exact, fd, fta, diff, kl, bw, tlb, tdiff, rep, margin):
    return PairResult(
        exact=exact,
        first_divergence=fd,
        first_token_agree=fta,
        max_abs_logit_diff=diff,
        kl=kl,
        bitwise_twostage=bw,
        twostage_logits_bitwise=tlb,
        twostage_max_abs_logit_diff=tdiff,
        repeatable=rep,
        divergence_margin=margin,
        reference_attn_impl="sdpa",
    )


MIXED = [  # G = 4
    _pair(True, 4, True, 0.1, 0.01, True, True, 0.0, True, None),
    _pair(False, 2, True, 0.5, 0.02, False, True, 0.0, True, 0.25),  # tokens differ from two-stage later
    _pair(False, 0, False, 2.0, 0.30, False, False, 0.5, True, 0.125),
    _pair(True, 4, True, 0.0, 0.00, False, True, 0.0, False, None),  # not repeatable: left out of two-stage
    _pair(True, 4, True, 0.2, 0.07, True, True, 0.0, True, None),
]


def test_aggregate_on_exact_and_inexact_pairs():
    agg = aggregate(MIXED)
    lo35, hi35 = _wilson_by_hand(3, 5)
    lo45, hi45 = _wilson_by_hand(4, 5)
    lo24, hi24 = _wilson_by_hand(2, 4)
    lo34, hi34 = _wilson_by_hand(3, 4)
    expected = {
        "num_docs": 5,
        "exact_fraction": 0.6,
        "exact_fraction_ci_low": lo35,
        "exact_fraction_ci_high": hi35,
        "first_divergence_mean": 2.8,
        "first_token_agree": 0.8,
        "first_token_agree_ci_low": lo45,
        "first_token_agree_ci_high": hi45,
        "max_abs_logit_diff": 2.0,
        "kl_mean": 0.08,
        "kl_max": 0.3,
        "bitwise_twostage": 0.5,
        "bitwise_twostage_ci_low": lo24,
        "bitwise_twostage_ci_high": hi24,
        "twostage_logits_bitwise": 0.75,
        "twostage_logits_bitwise_ci_low": lo34,
        "twostage_logits_bitwise_ci_high": hi34,
        "bitwise_twostage_n": 4,
        "twostage_max_abs_logit_diff": 0.5,
        "repeatable_fraction": 0.8,
        "repeatable_fraction_ci_low": lo45,
        "repeatable_fraction_ci_high": hi45,
        "divergence_margin_mean": 0.1875,
        "divergence_margin_min": 0.125,
        "reference_attn_impl": "sdpa",
    }
    assert set(agg) == set(expected)
    for key, value in expected.items():
        assert agg[key] == (pytest.approx(value, abs=1e-12) if isinstance(value, float) else value), key


def test_twostage_rates_count_only_pairs_that_repeated():
    unrepeatable = [_pair(True, 4, True, 0.0, 0.0, False, False, 0.1, False, None) for _ in range(3)]
    agg = aggregate(unrepeatable)
    assert agg["bitwise_twostage_n"] == 0 and agg["repeatable_fraction"] == 0.0
    assert agg["bitwise_twostage"] is None and agg["bitwise_twostage_ci_low"] is None
    assert agg["twostage_logits_bitwise"] is None and agg["twostage_logits_bitwise_ci_high"] is None
    assert agg["divergence_margin_mean"] is None and agg["divergence_margin_min"] is None
    # One repeated pair that matches: 1/1, not 1/4.
    agg = aggregate(unrepeatable + [_pair(True, 4, True, 0.0, 0.0, True, True, 0.0, True, None)])
    assert agg["bitwise_twostage"] == 1.0 and agg["bitwise_twostage_n"] == 1


def test_aggregate_names_every_reference_kernel_once():
    pairs = [replace(MIXED[0], reference_attn_impl=impl) for impl in ("sdpa", "eager", "sdpa")]
    assert aggregate(pairs)["reference_attn_impl"] == "eager|sdpa"


class ScriptedInference:
    """``kvbench.forward.inference`` on scripted paths, each ``(first-token logits, greedy tokens)``.

    A path is its own cache.
    """

    def __init__(self, one_pass, two_stage, reuses, margins):
        self.one_pass, self.two_stage, self.reuses, self.margins = one_pass, two_stage, iter(reuses), margins

    def prefill(self, model, ids):  # document + question: the one-pass reference; the document alone: two-stage
        return (self.one_pass[0], self.one_pass) if ids.shape[1] > DOC.shape[1] else (None, self.two_stage)

    def extend(self, model, cache, ids):
        return cache[0]

    def reuse(self, model, artifact, ids):
        path = next(self.reuses)
        return path[0], path

    def greedy_continue(self, model, cache, logits, steps):
        return list(cache[1]), self.margins


DOC, QUERY = torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long)


def test_compare_pair_holds_reuse_against_one_pass_two_stage_and_itself(monkeypatch):
    one_pass = (torch.tensor([[0.0, 2.0, 1.0]]), [5, 6, 7, 8])
    two_stage = (torch.tensor([[0.0, 2.5, 1.0]]), [5, 9, 7, 8])
    reuse = (torch.tensor([[0.0, 2.25, 1.0]]), [5, 9, 7, 8])  # first token agrees, second diverges
    again = (torch.tensor([[0.0, 2.25, 1.0]]), [5, 9, 7, 7])  # same logits, tokens not repeated
    monkeypatch.setattr(
        exactness, "inference", ScriptedInference(one_pass, two_stage, [reuse, again], margins=[0.5, 1.5, 2.5, 3.5])
    )
    model = SimpleNamespace(config=SimpleNamespace(_attn_implementation="sdpa"))
    result = compare_pair(model, DOC, QUERY, 4, lambda cache, ids: "artifact")
    assert result == PairResult(
        exact=False,
        first_divergence=1,
        first_token_agree=True,
        max_abs_logit_diff=0.25,
        kl=kl_divergence(one_pass[0], reuse[0]),
        bitwise_twostage=False,
        twostage_logits_bitwise=False,
        twostage_max_abs_logit_diff=0.25,
        repeatable=False,
        divergence_margin=1.5,
        reference_attn_impl="sdpa",
    )


class ScriptedModel:
    """Stands in for a causal LM: each call returns the next scripted last-position logits."""

    def __init__(self, logits):
        self.logits, self.fed = list(logits), []

    def __call__(self, input_ids, past_key_values, use_cache, logits_to_keep):
        self.fed.append(input_ids.tolist())
        return SimpleNamespace(logits=torch.tensor(self.logits.pop(0)).view(1, 1, -1))


def test_greedy_continue_returns_tokens_and_top1_margins():
    model = ScriptedModel([[5.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.25, 1.0]])
    tokens, margins = inference.greedy_continue(model, None, torch.tensor([[0.0, 3.0, 1.0, 2.5]]), 3)
    assert tokens == [1, 0, 2]
    assert margins == [0.5, 4.0, 0.25]
    assert model.fed == [[[1]], [[0]]]  # each chosen token is fed back


def test_divergence_margin_is_the_references_margin_at_the_first_divergence(tiny_lm):
    def corrupt(cache, ids):  # another document's KV under this one's name: the continuation must change
        art = _snapshot(tiny_lm)(cache, ids)
        noise = torch.Generator().manual_seed(7)
        art.keys = [torch.randn(k.shape, generator=noise) * 10 for k in art.keys]
        art.values = [torch.randn(v.shape, generator=noise) * 10 for v in art.values]
        return art

    doc, query = _ids(0, 48), _ids(1, 6)
    result = compare_pair(tiny_lm.model, doc, query, 6, corrupt)
    logits, cache = inference.prefill(tiny_lm.model, torch.cat([doc, query], dim=1))
    tokens, margins = inference.greedy_continue(tiny_lm.model, cache, logits, 6)
    assert not result.exact and result.first_divergence < 6
    assert result.divergence_margin == margins[result.first_divergence] and result.divergence_margin >= 0
    assert compare_pair(tiny_lm.model, doc, query, 6, _snapshot(tiny_lm)).divergence_margin is None


def test_reference_kernel_control_changes_only_the_reference(tiny_lm):
    model = tiny_lm.model
    with attention_kernel(model, "eager") as impl:
        assert impl == "eager" == model.config._attn_implementation
    assert model.config._attn_implementation == "sdpa"  # restored
    result = compare_pair(model, _ids(5, 40), _ids(6, 5), 4, _snapshot(tiny_lm), reference_attn_impl="eager")
    assert result.reference_attn_impl == "eager" and model.config._attn_implementation == "sdpa"
    assert result.bitwise_twostage and result.repeatable  # reuse vs two-stage ran with the model's own kernel
    assert 0 < result.max_abs_logit_diff < 1e-3  # another kernel: close, not bitwise


RATE_DENOMINATORS = {
    "exact_fraction": "num_docs",
    "first_token_agree": "num_docs",
    "repeatable_fraction": "num_docs",
    "bitwise_twostage": "bitwise_twostage_n",
    "twostage_logits_bitwise": "bitwise_twostage_n",
}


def test_rows_and_summary_carry_rates_with_intervals(make_cfg, tmp_path, capsys):
    from conftest import TINY

    from kvbench.run.app import run

    rows = run(make_cfg(*TINY), tmp_path / "run")
    for row in rows:
        assert row["bitwise_twostage_n"] == row["num_docs"] == 2  # CPU float32 reuse repeats bitwise
        assert row["reference_attn_impl"] == row["attn_impl"] == "sdpa"
        for rate, denominator in RATE_DENOMINATORS.items():
            trials = row[denominator]
            low, high = wilson_interval(round(row[rate] * trials), trials)
            assert (row[f"{rate}_ci_low"], row[f"{rate}_ci_high"]) == (low, high)
    assert ".34-1.00" in capsys.readouterr().out  # 2/2 bitwise two-stage: its Wilson interval [0.342, 1]


def test_deterministic_mode_is_enforced_not_warned(make_cfg, monkeypatch):
    from conftest import TINY

    from kvbench.config.schema import load_settings
    from kvbench.run.app import preflight

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        preflight(load_settings(make_cfg(*TINY, "deterministic=true")))
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        preflight(load_settings(make_cfg(*TINY)))  # the next job of a multirun does not inherit it
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_exactness_matrix_is_real_weights_only_with_32_documents(make_cfg):
    from kvbench.config.schema import load_settings

    cfg = make_cfg("+exp=exactness", with_hydra=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweeper.params.model.split(",") == ["smollm2", "qwen2_5_0_5b"]
    assert cfg.hydra.sweeper.params.dtype.split(",") == ["float32", "float16", "bfloat16"]
    for model in ("smollm2", "qwen2_5_0_5b"):
        settings = load_settings(make_cfg("+exp=exactness", f"model={model}"))
        assert settings.model.source in ("embedded", "gguf") and settings.exactness.num_docs == 32
        assert min(settings.doc_tokens) == 256 and settings.skip_beyond_context
    control = load_settings(make_cfg("+exp=exactness", "exactness.reference_attn_impl=eager"))
    assert control.exactness.reference_attn_impl == "eager" and control.attn_impl == "sdpa"


def test_the_one_pass_reference_runs_once_per_document_for_both_readers(make_cfg, tmp_path, monkeypatch):
    """hf and fast are judged against the same one-pass reference: computed once, used twice."""
    from conftest import TINY

    import kvbench.experiments.reuse as reuse_experiment
    from kvbench.run.app import run

    calls = []
    real = reuse_experiment.one_pass_reference
    monkeypatch.setattr(reuse_experiment, "one_pass_reference", lambda *a, **k: calls.append(1) or real(*a, **k))
    rows = run(make_cfg(*TINY, "doc_tokens=[32]"), tmp_path / "run")
    assert sorted(r["reader"] for r in rows) == ["fast", "hf"] and all(r["num_docs"] == 2 for r in rows)
    assert len(calls) == 2  # two documents, not four


def test_untimed_rows_carry_exactness_and_no_latency(make_cfg, tmp_path):
    """timing.enabled=false (several exactness runs sharing a GPU): no contended latency is recorded."""
    from conftest import TINY

    from kvbench.economics import inputs as cost_inputs
    from kvbench.rows.store import load_rows
    from kvbench.run.app import run

    rows = run(make_cfg(*TINY, "doc_tokens=[32]", "timing.enabled=false"), tmp_path / "run")
    assert sorted(r["reader"] for r in rows) == ["fast", "hf"]
    for row in rows:
        assert row["status"] == "ok" and row["num_docs"] == 2 and row["timing_docs"] == 0
        assert row.get("reuse_ms") is None and row.get("prefill_ms") is None and row["kv_bytes"] > 0
    assert cost_inputs.reuse_points(load_rows([tmp_path / "run"])).empty  # nothing for the latency figures


def test_untimed_needs_exactness(make_cfg):
    from kvbench.config.schema import ConfigError, load_settings

    with pytest.raises(ConfigError, match="timing.enabled"):
        load_settings(make_cfg("timing.enabled=false", "exactness.enabled=false"))
