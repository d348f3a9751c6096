"""Crafted artifact headers fail in one line, in bounded time and memory, before any integrity check
could be fooled: ArtifactCorruptError and nothing else (issue 23, item 5)."""

from __future__ import annotations

import json
import time

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvbench.kv.artifact import ArtifactCorruptError, KVArtifact


def _blob() -> bytes:
    gen = torch.Generator().manual_seed(0)
    art = KVArtifact([torch.randn(1, 1, 4, 8, generator=gen)], [torch.randn(1, 1, 4, 8, generator=gen)], {})
    return bytes(art.to_bytes(chunk_bytes=4096))


BLOB = _blob()
HEADER_LEN = int.from_bytes(BLOB[:8], "little")
HEADER = json.loads(BLOB[8 : 8 + HEADER_LEN])
DATA = BLOB[8 + HEADER_LEN :]


def _with(header_text: bytes, data: bytes = DATA) -> bytes:
    return len(header_text).to_bytes(8, "little") + header_text + data


def _refused_quickly(blob: bytes) -> ArtifactCorruptError:
    start = time.perf_counter()
    with pytest.raises(ArtifactCorruptError) as info:
        KVArtifact.from_bytes(blob)
    assert time.perf_counter() - start < 2.0
    assert "\n" not in str(info.value) and len(str(info.value)) < 400  # one line, bounded
    return info.value


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h["k.0"].update(dtype=["F32"]),  # a list where a name belongs: once a TypeError
        lambda h: h["k.0"].update(dtype={"x": 1}),
        lambda h: h["k.0"].update(shape=[1, 1, 2**63, 8]),
        lambda h: h["k.0"].update(shape="1,1,4,8"),
        lambda h: h["k.0"].update(data_offsets=[0, 2**70]),
        lambda h: h["__metadata__"].update(num_layers="10000000"),  # once 30 s and 2 GB
        lambda h: h["__metadata__"].update(chunk_bytes="1"),
        lambda h: h["__metadata__"].update(chunk_xxh3_64=["0" * 16]),
    ],
    ids=[
        "dtype-list",
        "dtype-object",
        "shape-2^63",
        "shape-string",
        "offset-2^70",
        "layers-10M",
        "chunk-1",
        "digests-list",
    ],  # fmt: skip
)
def test_crafted_headers_are_refused(edit):
    header = json.loads(json.dumps(HEADER))
    edit(header)
    _refused_quickly(_with(json.dumps(header).encode()))


def test_a_header_nested_200000_deep_is_refused_without_recursion():
    deep = b'{"__metadata__":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert "nests deeper" in str(_refused_quickly(_with(deep)))


def test_a_header_claiming_gigabytes_is_refused_before_it_is_read():
    blob = (1 << 40).to_bytes(8, "little") + b"{}"
    assert "header claims" in str(_refused_quickly(blob))


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=10_000), st.booleans())
def test_mutated_headers_are_refused_in_one_line(noise, where, replace):
    """Random bytes written into (or over) the header: refused with ArtifactCorruptError, one line, fast."""
    head = bytearray(BLOB[8 : 8 + HEADER_LEN])
    at = where % len(head)
    if replace:
        head[at : at + len(noise)] = noise[: len(head) - at]
    else:
        head[at:at] = noise
    blob = _with(bytes(head))
    if blob == BLOB:
        return
    _refused_quickly(blob)


def _sealed(header: dict) -> bytes:
    """``header`` with a valid header digest, as a forger would make it (XXH3 is no MAC)."""
    import xxhash

    header = json.loads(json.dumps(header))
    header["__metadata__"]["header_xxh3_128"] = "0" * 32
    text = json.dumps(header, separators=(",", ":")).encode()  # as the writer lays it out
    text += b" " * (-len(text) % 8)
    prefix = len(text).to_bytes(8, "little") + text
    digest = xxhash.xxh3_128(prefix).hexdigest().encode()
    return prefix.replace(b'"header_xxh3_128":"' + b"0" * 32, b'"header_xxh3_128":"' + digest) + DATA


def test_a_forged_layer_count_under_a_valid_digest_costs_nothing():
    header = json.loads(json.dumps(HEADER))
    header["__metadata__"]["num_layers"] = "10000000"
    assert "num_layers=10000000 does not match its 2 tensors" in str(_refused_quickly(_sealed(header)))
