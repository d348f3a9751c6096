"""KV artifacts round-trip bitwise, catch corruption by checksum, and refuse foreign readers."""

from __future__ import annotations

import pytest
import torch

from kvbench import inference
from kvbench.artifact import ArtifactCorruptError, ArtifactMismatchError, KVArtifact, token_ids_sha256
from kvbench.flops import kv_bytes


@pytest.fixture
def artifact(tiny_lm):
    ids = torch.randint(0, 1000, (1, 40), generator=torch.Generator().manual_seed(1))
    _, cache = inference.prefill(tiny_lm.model, ids)
    return KVArtifact.from_cache(cache, model_fingerprint=tiny_lm.fingerprint,
                                 tokenizer_hash=tiny_lm.tokenizer_hash, token_ids=ids), ids


def test_snapshot_shapes_and_bytes(artifact, tiny_lm):
    art, ids = artifact
    cfg = tiny_lm.config
    assert len(art.keys) == cfg.num_hidden_layers
    assert art.keys[0].shape == (1, cfg.num_key_value_heads, 40, cfg.head_dim)
    assert art.nbytes == kv_bytes(cfg, 40, itemsize=4) == 2 * 2 * 2 * 16 * 4 * 40
    assert art.meta["token_ids_hash"] == token_ids_sha256(ids) and art.meta["num_tokens"] == "40"


def test_bytes_round_trip_is_bitwise(artifact):
    art, _ = artifact
    back = KVArtifact.from_bytes(art.to_bytes())
    assert all(torch.equal(a, b) for a, b in zip(art.keys + art.values, back.keys + back.values))
    assert back.meta["model_fingerprint"] == art.meta["model_fingerprint"]


def test_parsing_is_zero_copy_and_agrees_with_safetensors(artifact):
    from safetensors.torch import load as st_load

    blob = artifact[0].to_bytes()
    reference = st_load(bytes(blob))  # the library reads our writer's layout
    staging = torch.frombuffer(bytearray(blob), dtype=torch.uint8)  # as a tier's staging buffer holds it
    back = KVArtifact.from_bytes(staging)
    for i, (k, v) in enumerate(zip(back.keys, back.values)):
        assert torch.equal(k, reference[f"k.{i}"]) and torch.equal(v, reference[f"v.{i}"])
    start, end = staging.data_ptr(), staging.data_ptr() + staging.numel()
    assert all(start <= t.data_ptr() < end for t in back.keys + back.values)
    assert torch.equal(KVArtifact.from_bytes(memoryview(blob)).keys[0], back.keys[0])


def test_save_load_round_trip(artifact, tmp_path):
    art, _ = artifact
    path = art.save(tmp_path / "doc.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["doc.safetensors"]
    back = KVArtifact.load(path)
    assert torch.equal(back.values[-1], art.values[-1])


def test_bit_flip_is_caught(artifact):
    blob = bytearray(artifact[0].to_bytes())
    blob[-3] ^= 0x10  # a payload byte: parses fine, checksum must catch it
    with pytest.raises(ArtifactCorruptError, match="checksum mismatch"):
        KVArtifact.from_bytes(bytes(blob))


@pytest.mark.parametrize("keep", [0, 5, 100, -7, -1])
def test_truncation_is_caught(artifact, keep):
    blob = artifact[0].to_bytes()
    with pytest.raises(ArtifactCorruptError):
        KVArtifact.from_bytes(blob[:keep])


def test_foreign_model_or_tokenizer_is_refused(artifact, tiny_lm):
    art, _ = artifact
    art.check_compatible(model_fingerprint=tiny_lm.fingerprint, tokenizer_hash=tiny_lm.tokenizer_hash)
    with pytest.raises(ArtifactMismatchError, match="model_fingerprint"):
        art.check_compatible(model_fingerprint="0" * 16, tokenizer_hash=tiny_lm.tokenizer_hash)
    with pytest.raises(ArtifactMismatchError, match="tokenizer_hash"):
        art.check_compatible(model_fingerprint=tiny_lm.fingerprint, tokenizer_hash="f" * 16)


def test_reuse_does_not_modify_the_artifact(artifact, tiny_lm):
    art, _ = artifact
    before = [k.clone() for k in art.keys]
    inference.reuse(tiny_lm.model, art, torch.tensor([[5, 6, 7]]))
    assert all(torch.equal(a, b) for a, b in zip(before, art.keys)) and art.num_tokens == 40
