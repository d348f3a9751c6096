"""The audit fails closed (#23, item 4): NaN and inf in the KV, tokens appended or cut, and a margin
that turns tolerances into NaN are all caught, with counts and hashes checked first."""

from __future__ import annotations

import pytest
import torch
from test_audit import CHUNK, L, publish, tokens

from kvbench.audit import recompute as audit
from kvbench.config.schema import ConfigError, load_settings
from kvbench.kv.artifact import ArtifactMismatchError, KVArtifact
from kvbench.model.corpus import token_ids_sha256


@pytest.fixture(scope="module")
def doc(tiny_lm):
    ids = tokens(0)
    return ids, publish(tiny_lm, ids)


def poisoned(artifact: KVArtifact, value: float, position: int, layer: int = 1) -> KVArtifact:
    """A copy of ``artifact`` with one value of layer ``layer``'s V at token ``position`` set to ``value``."""
    bad = artifact.to("cpu", copy=True)
    bad.values[layer][0, 0, position, 0] = value
    return bad


def run_audit(lm, artifact, ids, k=4, tolerance=None):
    return audit.audit(
        lm.model,
        artifact,
        ids,
        k=k,
        chunk_tokens=CHUNK,
        tolerance=torch.zeros(2, 2) if tolerance is None else tolerance,
        generator=torch.Generator().manual_seed(0),
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_value_flags_its_chunk_when_checked(tiny_lm, doc, value):
    ids, artifact = doc
    errors = audit.check_all(tiny_lm.model, poisoned(artifact, value, position=20), ids, CHUNK)
    assert audit.flagged(errors, torch.zeros(2, 2)).tolist() == [False, True, False, False]
    result = run_audit(tiny_lm, poisoned(artifact, value, position=20), ids, k=4)
    assert not result.passed and result.failed == [(16, 32)]


def test_a_non_finite_value_in_an_unchecked_chunk_still_fails_the_audit(tiny_lm, doc):
    ids, artifact = doc
    bad = poisoned(artifact, float("nan"), position=L - 1)  # the last chunk: nothing downstream reads it
    result = run_audit(tiny_lm, bad, ids, k=1)
    assert (48, 64) not in result.checked  # this draw checks another chunk
    assert not result.passed and (48, 64) in result.failed


def test_nan_errors_and_nan_tolerances_count_as_exceeded():
    nan = torch.full((1, 2, 2), float("nan"))
    assert audit.flagged(nan, torch.ones(2, 2)).tolist() == [True]  # NaN > tol is false: it passed
    assert audit.flagged(torch.zeros(1, 2, 2), torch.full((2, 2), float("nan"))).tolist() == [True]
    assert audit.flagged(torch.zeros(1, 2, 2), torch.zeros(2, 2)).tolist() == [False]


def test_margin_must_be_finite(make_cfg):
    with pytest.raises(ConfigError, match=r"^audit.margin=inf is invalid: allowed a finite number >= 1$"):
        load_settings(make_cfg("+exp=audit", "audit.margin=inf"))
    with pytest.raises(ConfigError, match="audit.margin=nan is invalid"):
        load_settings(make_cfg("+exp=audit", "audit.margin=nan"))
    with pytest.raises(ValueError, match="finite"):
        audit.calibrate([torch.zeros(1, 2, 2)], margin=float("inf"))  # 0 x inf would be a NaN tolerance


def test_tokens_appended_after_the_document_are_refused_before_any_chunk(tiny_lm, doc, monkeypatch):
    ids, _ = doc
    longer = torch.cat([ids, tokens(5, 32)], dim=1)  # 32 garbage tokens after the 64-token document
    artifact = publish(tiny_lm, longer)
    artifact.meta.update(num_tokens=str(L), token_ids_hash=token_ids_sha256(ids))  # and the metadata forged
    recomputed = []
    monkeypatch.setattr(audit, "check_chunk", lambda *a: recomputed.append(a) or torch.zeros(2, 2))
    for check in (lambda: run_audit(tiny_lm, artifact, ids), lambda: audit.check_all(tiny_lm.model, artifact, ids, 16)):
        with pytest.raises(ArtifactMismatchError, match=r"num_tokens is '64' \(96 in its tensors\)"):
            check()
    assert recomputed == []


def test_a_truncated_artifact_is_refused(tiny_lm, doc):
    ids, _ = doc
    shorter = publish(tiny_lm, ids[:, :48])
    with pytest.raises(ArtifactMismatchError, match="num_tokens is '48'"):
        run_audit(tiny_lm, shorter, ids)
    with pytest.raises(ArtifactMismatchError, match="num_tokens is '48'"):
        audit.check_all(tiny_lm.model, shorter, ids, CHUNK)


def test_another_documents_artifact_is_refused_by_hash(tiny_lm, doc):
    _, artifact = doc
    with pytest.raises(ArtifactMismatchError, match="^KV artifact token_ids_hash is "):
        audit.check_all(tiny_lm.model, artifact, tokens(5), CHUNK)
