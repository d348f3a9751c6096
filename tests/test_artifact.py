"""KV artifacts round-trip bitwise, catch corruption by their chunk and header digests, and refuse foreign readers."""

from __future__ import annotations

import pytest
import torch
import xxhash

import kvbench
from kvbench.forward import inference
from kvbench.kv import safetensors_blob
from kvbench.kv.artifact import ArtifactCorruptError, ArtifactMismatchError, KVArtifact, token_ids_sha256
from kvbench.measure.flops import kv_bytes


@pytest.fixture
def artifact():
    """A document's KV as a model leaves it in a ``DynamicCache``: 2 layers of (1, 2, 40, 16) float32."""
    from transformers import DynamicCache

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 1000, (1, 40), generator=gen)
    cache = DynamicCache(
        ddp_cache_data=[
            (torch.randn(1, 2, 40, 16, generator=gen), torch.randn(1, 2, 40, 16, generator=gen)) for _ in range(2)
        ]
    )
    return KVArtifact.from_cache(cache, model_fingerprint="model-a", tokenizer_hash="tok-a", token_ids=ids), ids


@pytest.fixture
def model_artifact(tiny_lm):
    """The tiny model's own KV of a 40-token document."""
    ids = torch.randint(0, 1000, (1, 40), generator=torch.Generator().manual_seed(1))
    _, cache = inference.prefill(tiny_lm.model, ids)
    return KVArtifact.from_cache(
        cache, model_fingerprint=tiny_lm.fingerprint, tokenizer_hash=tiny_lm.tokenizer_hash, token_ids=ids
    ), ids


def test_snapshot_shapes_and_bytes(model_artifact, tiny_lm):
    art, ids = model_artifact
    cfg = tiny_lm.config
    assert len(art.keys) == cfg.num_hidden_layers
    assert art.keys[0].shape == (1, cfg.num_key_value_heads, 40, cfg.head_dim)
    assert art.nbytes == kv_bytes(cfg, 40, itemsize=4) == 2 * 2 * 2 * 16 * 4 * 40
    assert art.meta["token_ids_hash"] == token_ids_sha256(ids) and art.meta["num_tokens"] == "40"


def test_snapshot_is_a_clone_with_provenance(artifact):
    art, ids = artifact
    assert art.meta == {
        "model_fingerprint": "model-a",
        "tokenizer_hash": "tok-a",
        "token_ids_hash": token_ids_sha256(ids),
        "num_tokens": "40",
        "num_layers": "2",
        "dtype": "float32",
        "layout": "layers x (batch, kv_heads, tokens, head_dim)",
        "kvbench_version": kvbench.__version__,
    }
    assert art.num_tokens == 40 and art.nbytes == 2 * 2 * 2 * 40 * 16 * 4 and art.device == torch.device("cpu")


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


def test_copy_into_fills_every_layers_keys_and_values_in_place(artifact):
    art, _ = artifact
    pool = KVArtifact([torch.zeros_like(k) for k in art.keys], [torch.zeros_like(v) for v in art.values])
    storage = [t.data_ptr() for t in (*pool.keys, *pool.values)]
    assert pool.copy_(art) is pool and pool.equals(art)
    assert [t.data_ptr() for t in (*pool.keys, *pool.values)] == storage  # the reader's pool, not new tensors


def _flip(blob, old: bytes, new: bytes) -> bytes:
    """The blob with the first occurrence of ``old`` (in its header) replaced by ``new``."""
    blob = bytes(blob)
    assert old in blob and len(old) == len(new)
    return blob.replace(old, new, 1)


def test_payload_bit_flip_is_caught(artifact):
    blob = bytearray(artifact[0].to_bytes())
    blob[-3] ^= 0x10  # a payload byte: parses fine, its chunk digest must catch it
    with pytest.raises(ArtifactCorruptError, match="chunk 0 of 1 fails its digest"):
        KVArtifact.from_bytes(bytes(blob))


@pytest.mark.parametrize("keep", [0, 5, 100, -7, -1])
def test_truncation_is_caught(artifact, keep):
    blob = artifact[0].to_bytes()
    with pytest.raises(ArtifactCorruptError, match="not a readable safetensors blob: .+"):
        KVArtifact.from_bytes(blob[:keep])


def test_appended_bytes_are_caught(artifact):
    with pytest.raises(ArtifactCorruptError, match="not a readable safetensors blob: .+"):
        KVArtifact.from_bytes(bytes(artifact[0].to_bytes()) + b"\0" * 8)


@pytest.mark.parametrize(
    "old, new",
    [
        (b'"dtype":"F32"', b'"dtype":"I32"'),  # same item size: would parse into int32 views
        (b'"shape":[1,2,40,16]', b'"shape":[1,2,16,40]'),  # same byte count, another shape
        (b'"num_tokens":"40"', b'"num_tokens":"41"'),
        (b'"layout":"layers', b'"layout":"Layers'),
    ],
)
def test_header_and_metadata_flips_are_caught(artifact, old, new):
    with pytest.raises(ArtifactCorruptError, match="header fails its digest"):
        KVArtifact.from_bytes(_flip(artifact[0].to_bytes(), old, new))


def test_a_flip_in_the_provenance_is_caught(artifact):
    art, _ = artifact
    fingerprint = art.meta["model_fingerprint"].encode()
    forged = bytes([fingerprint[0] ^ 1]) + fingerprint[1:]
    with pytest.raises(ArtifactCorruptError, match="header fails its digest"):
        KVArtifact.from_bytes(_flip(art.to_bytes(), fingerprint, forged))


@pytest.mark.parametrize("key, width", [("header_xxh3_128", 32), ("chunk_xxh3_64", 16)])
def test_a_flip_in_a_digest_is_caught(artifact, key, width):
    blob = artifact[0].to_bytes()
    field = f'"{key}":"'.encode()
    digits = blob[blob.find(field) + len(field) :][:width]
    forged = bytes(digits[:-1]) + (b"0" if digits[-1:] != b"0" else b"1")
    with pytest.raises(ArtifactCorruptError, match="header fails its digest"):
        KVArtifact.from_bytes(_flip(blob, bytes(digits), forged))


def test_every_single_byte_flip_is_refused():
    """Any flipped byte of the header, the digest list or any chunk: refused, never wrong tensors."""
    gen = torch.Generator().manual_seed(2)
    art = KVArtifact([torch.randn(1, 1, 8, 16, generator=gen)], [torch.randn(1, 1, 8, 16, generator=gen)], {})
    blob = art.to_bytes(chunk_bytes=4096)  # 1 KiB of data: one short chunk
    assert KVArtifact.from_bytes(bytes(blob)).equals(art)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(ArtifactCorruptError):
            KVArtifact.from_bytes(bytes(bad))


def test_missing_and_reordered_chunks_are_refused():
    gen = torch.Generator().manual_seed(3)
    art = KVArtifact([torch.randn(1, 2, 64, 32, generator=gen)], [torch.randn(1, 2, 64, 32, generator=gen)], {})
    blob = bytes(art.to_bytes(chunk_bytes=4096))  # 32 KiB of data: 8 chunks
    data_start = len(blob) - art.nbytes
    chunk = lambda i: blob[data_start + 4096 * i : data_start + 4096 * (i + 1)]
    swapped = blob[:data_start] + chunk(1) + chunk(0) + blob[data_start + 8192 :]
    with pytest.raises(ArtifactCorruptError, match="chunk 0 of 8 fails its digest"):
        KVArtifact.from_bytes(swapped)
    with pytest.raises(ArtifactCorruptError, match="not a readable"):  # a chunk gone: the data is short
        KVArtifact.from_bytes(blob[: data_start + 4096 * 3] + blob[data_start + 4096 * 4 :])


@pytest.mark.parametrize("chunk_bytes, threads", [(4096, 1), (4096, 4), (1 << 20, 2), (16 << 20, 1)])
def test_chunked_format_round_trips(artifact, chunk_bytes, threads):
    art, _ = artifact
    blob = art.to_bytes(chunk_bytes=chunk_bytes, threads=threads)
    back = KVArtifact.from_bytes(blob, threads=threads)
    assert back.equals(art) and back.meta["chunk_bytes"] == str(chunk_bytes)
    assert len(back.meta["chunk_xxh3_64"]) == 16 * -(-art.nbytes // chunk_bytes)
    assert blob == art.to_bytes(chunk_bytes=chunk_bytes)  # digests do not depend on the threads


def test_format_1_is_refused_by_name(artifact):
    art, _ = artifact
    meta = dict(art.meta)
    named = [(f"{p}.{i}", t) for i, (k, v) in enumerate(zip(art.keys, art.values)) for p, t in (("k", k), ("v", v))]
    old = safetensors_blob.write(named, dict(meta, checksum_xxh3_128="0" * 32))
    with pytest.raises(ArtifactCorruptError, match="format 1 .* no longer reads"):
        KVArtifact.from_bytes(old)


def test_a_blob_without_its_header_digest_is_refused(artifact):
    blob = _flip(artifact[0].to_bytes(), b'"header_xxh3_128"', b'"header_xxh3_12X"')
    with pytest.raises(ArtifactCorruptError, match="does not hold exactly one header_xxh3_128"):
        KVArtifact.from_bytes(blob)


def test_a_blob_with_two_header_digests_is_refused(artifact):
    """A duplicated key parses (JSON keeps the last), so the field is counted in the raw header."""
    art, _ = artifact
    meta = dict(_plain_meta(art), header_xxh3_12X="0" * 32)
    blob = _flip(_sealed(art, meta), b'"header_xxh3_12X"', b'"header_xxh3_128"')
    with pytest.raises(ArtifactCorruptError, match="does not hold exactly one header_xxh3_128"):
        KVArtifact.from_bytes(blob)


def _plain_meta(art: KVArtifact) -> dict:
    """The metadata a blob carries, less its format-2 digests (which :func:`_sealed` recomputes)."""
    meta = dict(KVArtifact.from_bytes(art.to_bytes()).meta)
    for key in ("chunk_xxh3_64", "header_xxh3_128"):
        del meta[key]
    return meta


def _sealed(art: KVArtifact, meta: dict, chunk_bytes: int = 4096) -> bytearray:
    """A blob with exactly ``meta``, sealed by the documented rule (independently of kvbench's writer):
    XXH3-64 of each ``chunk_bytes`` of the data section, then XXH3-128 of the header, its digits as zeros."""
    named = [(f"{p}.{i}", t) for i, (k, v) in enumerate(zip(art.keys, art.values)) for p, t in (("k", k), ("v", v))]
    count = -(-art.nbytes // chunk_bytes)
    meta = dict(meta, chunk_bytes=str(chunk_bytes), chunk_xxh3_64="0" * 16 * count, header_xxh3_128="0" * 32)
    blob = safetensors_blob.write(named, meta)
    start = len(blob) - art.nbytes
    digests = "".join(
        xxhash.xxh3_64(bytes(blob[start + a : start + a + chunk_bytes])).hexdigest()
        for a in range(0, art.nbytes, chunk_bytes)
    )
    at = blob.find(b'"chunk_xxh3_64":"') + len(b'"chunk_xxh3_64":"')
    blob[at : at + 16 * count] = digests.encode()
    at = blob.find(b'"header_xxh3_128":"') + len(b'"header_xxh3_128":"')
    blob[at : at + 32] = xxhash.xxh3_128(bytes(blob[:start])).hexdigest().encode()
    return blob


def test_token_ids_hash_is_over_int64_whatever_the_input():
    import hashlib

    ids = [5, 70000, 3]
    expected = hashlib.sha256(b"".join(i.to_bytes(8, "little") for i in ids)).hexdigest()
    assert token_ids_sha256(ids) == token_ids_sha256(torch.tensor([ids], dtype=torch.int32)) == expected


def test_the_digests_are_the_documented_ones(artifact):
    art, _ = artifact
    assert art.to_bytes(chunk_bytes=4096) == _sealed(art, {k: v for k, v in _plain_meta(art).items()}, 4096)


@pytest.mark.parametrize(
    "key, value",
    [
        ("num_layers", "two"),
        ("num_layers", 2),
        ("num_layers", "-2"),
        ("num_layers", "0"),
        ("num_layers", "3"),
        ("num_layers", "1"),
        ("num_layers", None),
        ("num_tokens", "-40"),
        ("num_tokens", "40.0"),
        ("num_tokens", "41"),
        ("num_tokens", "0"),
        ("num_tokens", None),
        ("dtype", "float16"),
        ("dtype", None),
        ("layout", "layers x (tokens, kv_heads)"),
        ("layout", None),
        ("model_fingerprint", 7),
    ],
)
def test_malformed_metadata_is_refused_as_corrupt(artifact, key, value):
    """Metadata that does not describe its tensors is corrupt even under a valid checksum."""
    art, _ = artifact
    meta = _plain_meta(art)
    KVArtifact.from_bytes(_sealed(art, meta))  # as written, it reads
    if value is None:
        del meta[key]
    else:
        meta[key] = value
    with pytest.raises(ArtifactCorruptError, match=key) as info:
        KVArtifact.from_bytes(_sealed(art, meta))
    assert value is None or str(value) in str(info.value)  # the message shows what it found


def test_the_smallest_artifact_reads_back():
    """One layer of one token: the lower bounds of num_layers and num_tokens are inclusive."""
    one = torch.arange(4, dtype=torch.float32).reshape(1, 1, 1, 4)
    back = KVArtifact.from_bytes(KVArtifact([one], [one + 1], {}).to_bytes())
    assert back.meta["num_layers"] == "1" and back.meta["num_tokens"] == "1"
    assert torch.equal(back.values[0], one + 1)


def test_derived_metadata_follows_the_tensors(artifact):
    art, _ = artifact
    stale = KVArtifact(art.keys, art.values, dict(art.meta, num_tokens="7", dtype="float16"))
    back = KVArtifact.from_bytes(stale.to_bytes())
    assert back.meta["num_tokens"] == "40" and back.meta["dtype"] == "float32"
    assert back.meta["model_fingerprint"] == art.meta["model_fingerprint"]


def test_foreign_model_or_tokenizer_is_refused(artifact):
    art, _ = artifact
    art.check_compatible(model_fingerprint="model-a", tokenizer_hash="tok-a")
    with pytest.raises(
        ArtifactMismatchError,
        match="^KV artifact model_fingerprint is 'model-a' but the reader's is "
        "'model-b': it was made with another model or tokenizer$",
    ):
        art.check_compatible(model_fingerprint="model-b", tokenizer_hash="tok-a")
    with pytest.raises(ArtifactMismatchError, match="tokenizer_hash is 'tok-a' but the reader's is 'tok-b'"):
        art.check_compatible(model_fingerprint="model-a", tokenizer_hash="tok-b")


def test_to_moves_or_copies_and_equals_compares_bytes(artifact):
    art, _ = artifact
    same = art.to("cpu")
    assert same.keys[0] is art.keys[0] and same.meta == art.meta and same.meta is not art.meta
    assert {t.device.type for t in art.to("meta").keys + art.to("meta").values} == {"meta"}
    copied = art.to("cpu", copy=True)
    assert copied.keys[0] is not art.keys[0] and copied.equals(art) and art.equals(copied)
    copied.values[1][0, 0, 0, 0] += 1
    assert not copied.equals(art)
    assert not art.equals(KVArtifact(art.keys[:1], art.values[:1], art.meta))
    assert not art.equals(KVArtifact([k.double() for k in art.keys], [v.double() for v in art.values], art.meta))


def test_to_cache_holds_the_tensors_in_the_models_kind_of_layer(artifact):
    from transformers import Qwen3Config

    art, _ = artifact
    config = Qwen3Config(
        num_hidden_layers=2,
        sliding_window=64,
        use_sliding_window=True,
        max_window_layers=1,
        layer_types=["full_attention", "sliding_attention"],
    )
    cache = art.to_cache(config)
    assert [type(layer).__name__ for layer in cache.layers] == ["DynamicLayer", "DynamicSlidingWindowLayer"]
    assert cache.get_seq_length() == 40
    assert torch.equal(cache.layers[1].values, art.values[1]) and torch.equal(cache.layers[0].keys, art.keys[0])


def test_reuse_does_not_modify_the_artifact(model_artifact, tiny_lm):
    art, _ = model_artifact
    before = [k.clone() for k in art.keys]
    inference.reuse(tiny_lm.model, art, torch.tensor([[5, 6, 7]]))
    assert all(torch.equal(a, b) for a, b in zip(before, art.keys)) and art.num_tokens == 40


def test_renamed_tensors_under_a_valid_digest_are_refused(artifact):
    """Right count, wrong names: the header describes tensors a reader cannot place."""
    art, _ = artifact
    sealed = _sealed(art, _plain_meta(art))
    sealed = sealed.replace(b'"v.1"', b'"x.1"', 1)
    start = len(sealed) - art.nbytes
    at = sealed.find(b'"header_xxh3_128":"') + len(b'"header_xxh3_128":"')
    head = bytearray(sealed[:start])
    head[at : at + 32] = b"0" * 32
    sealed[at : at + 32] = xxhash.xxh3_128(bytes(head)).hexdigest().encode()
    with pytest.raises(ArtifactCorruptError, match="num_layers=2 does not match its 4 tensors"):
        KVArtifact.from_bytes(bytes(sealed))


@pytest.mark.parametrize(
    "version, match", [("3", "format_version='3' is not '2'"), (None, "format_version='None' is not '2'")]
)
def test_other_format_versions_are_refused_by_name(artifact, version, match):
    art, _ = artifact
    meta = {k: v for k, v in _plain_meta(art).items() if k != "format_version"}
    if version is not None:
        meta["format_version"] = version
    with pytest.raises(ArtifactCorruptError, match=match):
        KVArtifact.from_bytes(_sealed(art, meta))
