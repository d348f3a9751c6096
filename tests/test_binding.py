"""A KV artifact is bound to its document (#23, item 3): another document's artifact, a longer or a
shorter one, and a stored file swapped between reads are refused before use, naming the field."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _tiers import make_artifact
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir

import kvbench.tiers.disk as disk
from kvbench.codecs import get_codec
from kvbench.config.schema import load_settings
from kvbench.experiments import RunContext
from kvbench.experiments.reuse import serialised
from kvbench.experiments.tiers import TiersExperiment
from kvbench.forward import inference
from kvbench.kv.artifact import ArtifactMismatchError, KVArtifact
from kvbench.kv.binding import Document, check_document
from kvbench.model.corpus import token_ids_sha256
from kvbench.run.app import identity_columns, measure_point, preflight


def ids(seed: int, length: int) -> torch.Tensor:
    return torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(seed))


def artifact_for(token_ids: torch.Tensor) -> KVArtifact:
    """Random KV of the right length whose metadata says it was made from ``token_ids``."""
    artifact = make_artifact(tokens=token_ids.shape[1])
    artifact.meta["token_ids_hash"] = token_ids_sha256(token_ids)
    return artifact


def test_an_artifact_of_its_own_document_is_accepted():
    doc = ids(0, 64)
    check_document(artifact_for(doc), doc)
    check_document(artifact_for(doc), doc[0])  # (L,) ids too
    check_document(artifact_for(doc), Document.of(doc))


@pytest.mark.parametrize(
    "offered, field",
    [
        (lambda: artifact_for(ids(1, 64)), "token_ids_hash"),  # another document, same model and length
        (lambda: artifact_for(ids(0, 128)), "num_tokens"),  # a longer artifact for a 64-token document
        (lambda: artifact_for(ids(0, 32)), "num_tokens"),  # a shorter one
    ],
    ids=["another-document", "longer", "shorter"],
)
def test_a_mismatch_is_refused_naming_the_field(offered, field):
    with pytest.raises(ArtifactMismatchError) as info:
        check_document(offered(), ids(0, 64))
    message = str(info.value)
    assert message.startswith(f"KV artifact {field} is ") and "another document" in message and "\n" not in message


def test_a_forged_length_in_the_metadata_is_caught_by_the_tensors():
    doc = ids(0, 64)
    longer = artifact_for(ids(0, 128))
    longer.meta.update(num_tokens="64", token_ids_hash=token_ids_sha256(doc))  # 64 tokens of garbage appended
    with pytest.raises(ArtifactMismatchError, match=r"num_tokens is '64' \(128 in its tensors\)"):
        check_document(longer, doc)


def test_the_reuse_experiment_binds_what_it_deserialises():
    doc = ids(0, 64)
    artifact = artifact_for(doc)
    assert serialised(artifact, torch.device("cpu"), doc).equals(artifact)
    with pytest.raises(ArtifactMismatchError, match="token_ids_hash"):
        serialised(artifact, torch.device("cpu"), ids(1, 64))
    with pytest.raises(ArtifactMismatchError, match="num_tokens"):
        serialised(artifact, torch.device("cpu"), ids(0, 63))


def _tiers_ctx(tiny_lm, *overrides: str) -> RunContext:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=["+exp=tiers", "model=tiny_random", "device=cpu", "dtype=float32", "timing.warmup=0", *overrides],
        )
    settings = load_settings(cfg)
    device, corpus = preflight(settings)[:2]
    return RunContext(settings, tiny_lm, corpus, device, "cpu", torch.float32)


@pytest.mark.parametrize("io", ["stream", "serial"])
@pytest.mark.parametrize("reader", ["fast", "hf"])
def test_a_stored_file_swapped_between_reads_is_refused(tiny_lm, tmp_path, monkeypatch, reader, io):
    """The disk tier's file replaced, after the first read, by another document's artifact of the same
    model and length: the next read fails its point (it gave an ok row with tier_bitwise=false).
    For the fast reader the tier copies into the reader's pool, whose metadata (on the serial
    path) stays the publisher's."""
    other = ids(7, 32)
    _, cache = inference.prefill(tiny_lm.model, other)
    theirs = KVArtifact.from_cache(
        cache, model_fingerprint=tiny_lm.fingerprint, tokenizer_hash=tiny_lm.tokenizer_hash, token_ids=other
    )
    swapped = bytes(get_codec("identity").encode(theirs))
    real_prepare, reads = disk.DiskTier.prepare, []

    def prepare(self):
        reads.append(1)
        if len(reads) == 2:
            self.path.write_bytes(swapped)
        real_prepare(self)

    monkeypatch.setattr(disk.DiskTier, "prepare", prepare)
    ctx = _tiers_ctx(
        tiny_lm,
        "tier=disk",
        "tier.cache=[warm]",
        f"tier.dir={tmp_path}",
        f"tier.io={io}",
        "timing.docs=1",
        "doc_tokens=[32]",
        f"readers=[{reader}]",
    )
    exp = TiersExperiment()
    [point] = exp.points(ctx)
    row = measure_point(dataclasses.replace(ctx), exp, point, identity_columns(ctx, exp.name, point), [])
    assert len(reads) == 2 and row["status"] == "failed", row
    assert row["reason"].startswith("ArtifactMismatchError: KV artifact token_ids_hash is ")
