"""Audit of a bought artifact: bitwise where kernels allow, calibrated elsewhere; what each tamper
kind leaves detectable, the exact detection rate, and the experiment's rows."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from conftest import TINY

from kvbench.audit import recompute as audit
from kvbench.audit.tamper import random_spans, tamper
from kvbench.config.schema import ConfigError, load_settings
from kvbench.forward import inference
from kvbench.kv.artifact import ArtifactMismatchError, KVArtifact
from kvbench.run.app import run

L, CHUNK = 64, 16  # four chunks


def publish(lm, ids):
    _, cache = inference.prefill(lm.model, ids)
    return KVArtifact.from_cache(
        cache, model_fingerprint=lm.fingerprint, tokenizer_hash=lm.tokenizer_hash, token_ids=ids
    )


def tokens(seed: int, length: int = L) -> torch.Tensor:
    return torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def doc(tiny_lm):
    ids = tokens(0)
    return ids, publish(tiny_lm, ids)


def altered(lm, kind, ids, artifact, seed=1):
    return tamper(
        kind,
        lm.model,
        artifact,
        ids,
        tokens(99),
        span_tokens=4,
        spans=3,
        noise_rel=1e-3,
        generator=torch.Generator().manual_seed(seed),
    )


def test_honest_artifact_recomputes_bitwise_on_cpu_float32(tiny_lm, doc):
    ids, artifact = doc
    errors = audit.check_all(tiny_lm.model, artifact, ids, CHUNK)
    assert errors.shape == (4, tiny_lm.config.num_hidden_layers, 2) and torch.count_nonzero(errors) == 0
    assert torch.equal(audit.calibrate([errors], margin=2.0), torch.zeros(2, 2))


def test_a_changed_span_flags_its_chunk_and_every_later_one(tiny_lm, doc):
    ids, artifact = doc
    start = random_spans(L, 4, 1, torch.Generator().manual_seed(1))[0][0]  # where `altered` puts the span
    flags = audit.flagged(
        audit.check_all(tiny_lm.model, altered(tiny_lm, "chunk", ids, artifact), ids, CHUNK), torch.zeros(2, 2)
    )
    assert flags.tolist() == [i >= start // CHUNK for i in range(4)]


def test_rederived_span_is_seen_only_by_the_chunk_covering_it(tiny_lm, doc):
    ids, artifact = doc
    ((start, end),) = random_spans(L, 4, 1, torch.Generator().manual_seed(1))
    flags = audit.flagged(
        audit.check_all(tiny_lm.model, altered(tiny_lm, "rederived", ids, artifact), ids, CHUNK), torch.zeros(2, 2)
    )
    covering = {start // CHUNK, (end - 1) // CHUNK}
    assert flags.tolist() == [i in covering for i in range(4)]


def test_small_noise_in_one_layer_is_caught_bitwise(tiny_lm, doc):
    ids, artifact = doc
    errors = audit.check_all(tiny_lm.model, altered(tiny_lm, "noise", ids, artifact), ids, CHUNK)
    assert audit.flagged(errors, torch.zeros(2, 2)).all()
    assert torch.count_nonzero(errors[:, 0]) == 0 and (errors[:, 1] > 0).all()  # layer 0 untouched, layer 1 noisy


def test_detection_probability_is_the_exact_chance_over_draws():
    for n, m, k in ((4, 1, 2), (10, 3, 4), (7, 0, 3), (5, 5, 1)):
        draws = list(itertools.combinations(range(n), k))
        caught = sum(any(i < m for i in draw) for draw in draws) / len(draws)
        assert audit.detection_probability(n, m, k) == pytest.approx(caught)


def test_an_audit_with_nothing_flagged_detects_exactly_nothing():
    assert audit.detection_probability(64, 0, 16) == 0.0  # not 1.1e-16: an honest row reads 0


def test_sampled_audit_agrees_with_the_exhaustive_verdicts(tiny_lm, doc):
    ids, artifact = doc
    bad = altered(tiny_lm, "rederived", ids, artifact)
    verdicts = audit.flagged(audit.check_all(tiny_lm.model, bad, ids, CHUNK), torch.zeros(2, 2)).tolist()
    bounds = audit.chunk_bounds(L, CHUNK)
    for seed in range(6):
        result = audit.audit(
            tiny_lm.model,
            bad,
            ids,
            k=2,
            chunk_tokens=CHUNK,
            tolerance=torch.zeros(2, 2),
            generator=torch.Generator().manual_seed(seed),
        )
        assert len(result.checked) == 2
        assert result.failed == [b for b in result.checked if verdicts[bounds.index(b)]]
        assert result.passed == (not result.failed)
    honest = audit.audit(
        tiny_lm.model,
        artifact,
        ids,
        k=4,
        chunk_tokens=CHUNK,
        tolerance=torch.zeros(2, 2),
        generator=torch.Generator().manual_seed(0),
    )
    assert honest.passed and len(honest.checked) == 4


def test_audit_refuses_an_artifact_of_another_document(tiny_lm, doc):
    _, artifact = doc
    with pytest.raises(ArtifactMismatchError, match="another document"):
        audit.audit(
            tiny_lm.model,
            artifact,
            tokens(5),
            k=1,
            chunk_tokens=CHUNK,
            tolerance=torch.zeros(2, 2),
            generator=torch.Generator(),
        )


@pytest.mark.slow
def test_bf16_smollm2_tolerance_is_calibrated_and_still_catches_a_changed_span():
    """Real weights in bfloat16: chunked recomputation need not be bitwise, so the tolerance is
    calibrated on untampered artifacts; a held-out honest artifact passes and a changed span is
    flagged. (Whether it is bitwise depends on the CPU's bf16 kernels: where they round alike at
    every shape, as on an AVX512-BF16 EPYC, the calibrated tolerance is 0 and the test still holds.)"""
    from kvbench.config.schema import ModelConfig
    from kvbench.model.loading import load_model

    lm = load_model(ModelConfig(), device=torch.device("cpu"), dtype=torch.bfloat16, attn_impl="sdpa", seed=0)
    length, chunk = 64, 32
    ids = [torch.randint(0, 40000, (1, length), generator=torch.Generator().manual_seed(s)) for s in range(4)]
    honest = [audit.check_all(lm.model, publish(lm, i), i, chunk) for i in ids[:2]]
    tolerance = audit.calibrate(honest, margin=2.0)
    held_out = audit.check_all(lm.model, publish(lm, ids[2]), ids[2], chunk)
    assert not audit.flagged(held_out, tolerance).any()
    bad = tamper(
        "chunk",
        lm.model,
        publish(lm, ids[2]),
        ids[2],
        ids[3],
        span_tokens=4,
        spans=1,
        noise_rel=0.01,
        generator=torch.Generator().manual_seed(0),
    )
    assert audit.flagged(audit.check_all(lm.model, bad, ids[2], chunk), tolerance).any()


def test_audit_settings_are_validated(make_cfg):
    with pytest.raises(ConfigError, match=r"audit.tampers=\['swap'\] is invalid: allowed a non-empty list of none"):
        load_settings(make_cfg("+exp=audit", "audit.tampers=[swap]"))
    with pytest.raises(ConfigError, match="audit.margin=0.5 is invalid"):
        load_settings(make_cfg("+exp=audit", "audit.margin=0.5"))


@pytest.mark.slow
@pytest.mark.parametrize("forward", ["hf", "fast"])
def test_audit_experiment_rows(make_cfg, tmp_path, forward):
    rows = run(
        make_cfg(
            *TINY,
            "+exp=audit",
            "device=cpu",
            "dtype=float32",
            "doc_tokens=[64]",
            "audit.chunk_tokens=16",
            "audit.ks=[1,4,8]",
            "audit.docs=2",
            "audit.calibration_docs=2",
            f"audit.forward={forward}",
        ),
        tmp_path,
    )
    by = {(r["tamper"], r["audit_k"]): r for r in rows}
    assert (
        len(rows) == 15
        and by[("none", 8)]["status"] == "skipped"
        and "k=8 exceeds the 4 chunks" in by[("none", 8)]["reason"]
    )
    ok = [r for r in rows if r["status"] == "ok"]
    # HF's chunk forward gives a prefill's very bits on CPU float32; the batched fast forward
    # (float32 reference attention, chunks side by side) is within float32 rounding of them
    bitwise = forward == "hf"
    assert all(
        r["audit_chunks"] == 4
        and r["audit_forward"] == forward
        and (r["audit_tolerance_max"] == 0.0 if bitwise else 0 < r["audit_tolerance_max"] < 1e-4)
        and (r["audit_bitwise_layers"] == 1.0 if bitwise else r["audit_bitwise_layers"] < 1.0)
        and r["prefill_ms"] > 0
        and r["prefill_best_ms"] <= r["prefill_ms"]
        and r["audit_ms"] > 0
        and r["audit_cost_fraction"] == pytest.approx(r["audit_ms"] / r["prefill_best_ms"])
        for r in ok
    )
    assert by[("none", 1)]["detection_rate"] == 0.0 and by[("none", 4)]["detection_rate"] == 0.0
    assert by[("noise", 1)]["detection_rate"] == 1.0
    for kind in ("chunk", "chunks", "rederived"):  # all chunks checked: caught
        assert by[(kind, 4)]["detection_rate"] == 1.0
        assert 0 < by[(kind, 1)]["detection_rate"] == pytest.approx(by[(kind, 1)]["flagged_chunk_fraction"])
    assert by[("rederived", 1)]["detection_rate"] <= by[("chunk", 1)]["detection_rate"]
    if forward == "hf":  # k chunk forwards; the fast audit times its one forward of k chunks
        assert by[("none", 4)]["audit_ms"] == pytest.approx(4 * by[("none", 1)]["audit_ms"])
    assert json.loads((tmp_path / "rows.jsonl").read_text().splitlines()[0])["experiment"] == "audit"


@pytest.mark.gpu
def test_audit_on_cuda_bf16_passes_honest_and_catches_tampered_artifacts():
    from conftest import tiny_random_on_node

    from kvbench.model.loading import load_model

    cuda = torch.device("cuda")
    lm = load_model(
        tiny_random_on_node(),
        device=cuda,
        dtype=torch.bfloat16,
        attn_impl="sdpa",
        seed=0,
    )
    ids = [tokens(s, 256).to(cuda) for s in range(6)]
    tolerance = audit.calibrate([audit.check_all(lm.model, publish(lm, i), i, 32) for i in ids[:4]], margin=2.0)
    assert not audit.flagged(audit.check_all(lm.model, publish(lm, ids[4]), ids[4], 32), tolerance).any()
    bad = tamper(
        "chunks",
        lm.model,
        publish(lm, ids[4]),
        ids[4],
        ids[5],
        span_tokens=4,
        spans=3,
        noise_rel=0.01,
        generator=torch.Generator().manual_seed(0),
    )
    assert audit.flagged(audit.check_all(lm.model, bad, ids[4], 32), tolerance).any()


def test_a_chunk_check_refuses_other_chunks_than_it_was_built_for(tiny_lm, doc):
    from kvbench.forward.fast import FastForward

    ids, artifact = doc
    check = audit.ChunkCheck(FastForward(tiny_lm.model, compile=False), artifact, ids, 2, CHUNK, graph=False)
    assert check([(0, CHUNK), (2 * CHUNK, 3 * CHUNK)]).shape == (2, tiny_lm.config.num_hidden_layers, 2)
    for bounds in ([(0, CHUNK)], [(0, CHUNK), (CHUNK, CHUNK + 3)]):
        with pytest.raises(ValueError, match=f"recomputes 2 chunks of {CHUNK} tokens, not"):
            check(bounds)


def test_a_layers_chunk_errors_are_each_chunks_largest_token_error_on_k_and_v():
    from kvbench.audit.recompute import _layer_errors

    g = torch.Generator().manual_seed(0)
    n, tokens, heads, d = 3, 4, 2, 8
    old_k, old_v = (torch.randn(1, heads, 20, d, generator=g) for _ in range(2))
    index = (torch.tensor([0, 8, 16])[:, None] + torch.arange(tokens)).reshape(-1)
    new_k, new_v = old_k[:, :, index].clone(), old_v[:, :, index].clone()
    new_v[0, 1, tokens + 2, 3] += 1.0  # chunk 1's third token, V only
    errors = _layer_errors(new_k, new_v, old_k, old_v, index, n, tokens)
    changed = new_v[0, :, tokens + 2].flatten()  # that token's heads x head_dim
    assert errors.shape == (n, 2) and torch.all(errors[:, 0] == 0) and errors[0, 1] == errors[2, 1] == 0
    assert errors[1, 1] == pytest.approx(1.0 / float(torch.linalg.vector_norm(changed)))
