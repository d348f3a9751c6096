"""The safetensors layout: our writer reads back with the library, and malformed headers are refused."""

from __future__ import annotations

import json

import pytest
import torch

from kvbench.kv import safetensors_blob
from kvbench.kv.safetensors_blob import MalformedBlobError


def _blob(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


def test_write_reads_back_with_the_library_and_with_views():
    from safetensors.torch import load as st_load

    a, b = torch.arange(6, dtype=torch.float32).reshape(2, 3), torch.tensor([1, 2], dtype=torch.int16)
    blob = safetensors_blob.write([("a", a), ("b", b)], {"note": "x"})
    reference = st_load(bytes(blob))
    parsed = safetensors_blob.read(blob)
    assert parsed.meta == {"note": "x"} and parsed.header_end + a.nbytes + b.nbytes == len(blob)
    assert parsed.header_end % 8 == 0  # the header is padded, so 8-byte items stay aligned
    for name, t in (("a", a), ("b", b)):
        assert torch.equal(parsed.tensors[name], t) and torch.equal(reference[name], t)


@pytest.mark.parametrize(
    "header, data, match",
    [
        ([1, 2], b"", "not a JSON object"),
        ({"__metadata__": ["x"]}, b"", "__metadata__"),
        ({"t": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, "invalid dtype"),
        ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "invalid dtype, shape"),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, b"\0" * 4, "data_offsets"),
        ({"t": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "truncated or malformed"),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "data section has 8"),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "gap at byte 0"),
        (
            {
                "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "u": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            },
            b"\0" * 4,
            "overlap",
        ),
        (
            {
                "t": {"dtype": "I16", "shape": [1], "data_offsets": [0, 2]},
                "u": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]},
            },
            b"\0" * 6,
            "not aligned",
        ),
    ],
)
def test_malformed_headers_are_refused(header, data, match):
    with pytest.raises(MalformedBlobError, match=match):
        safetensors_blob.read(_blob(header, data))


@pytest.mark.parametrize(
    "blob, match",
    [
        (b"", "shorter than a safetensors header"),
        ((100).to_bytes(8, "little") + b"{}", "claims 100 bytes"),
        ((2).to_bytes(8, "little") + b"\xff\xfe", "not JSON"),
    ],
)
def test_short_or_unparsable_blobs_are_refused(blob, match):
    with pytest.raises(MalformedBlobError, match=match):
        safetensors_blob.read(blob)
