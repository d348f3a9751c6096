"""Device codecs on a CUDA device: nvCOMP and lossy codecs, host and device-resident blobs."""

from __future__ import annotations

import pytest
import torch
from test_codecs import kv

from kvbench.codecs import CODECS, CodecError, get_codec, unavailable

pytestmark = pytest.mark.gpu
DEVICE_CODECS = [n for n, spec in CODECS.items() if spec.device == "cuda"]
DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def _runnable(name):
    why = unavailable(name)
    if why:
        pytest.skip(why)
    return get_codec(name)


def _tensors(a):
    return [*a.keys, *a.values]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("name", DEVICE_CODECS)
def test_device_round_trip_from_host_and_device_blobs(name, dtype):
    codec = _runnable(name)
    source = kv(dtype, layers=3, tokens=1000, head_dim=64).to("cuda")
    blob = codec.encode(source)
    on_device = torch.frombuffer(bytearray(blob), dtype=torch.uint8).to("cuda")
    for decoded in (codec.decode(blob, torch.device("cuda")), codec.decode(on_device, torch.device("cuda"))):
        assert all(t.is_cuda and t.dtype == dtype for t in _tensors(decoded))
        if codec.lossless:
            assert all(torch.equal(a, b) for a, b in zip(_tensors(source), _tensors(decoded)))
        else:
            assert all(
                torch.allclose(a.float(), b.float(), rtol=0.5, atol=2.0)
                for a, b in zip(_tensors(source), _tensors(decoded))
            )


@pytest.mark.parametrize("name", DEVICE_CODECS)
def test_corrupt_device_resident_blob_raises(name):
    codec = _runnable(name)
    blob = codec.encode(kv(torch.bfloat16, tokens=300).to("cuda"))
    for position in (20, len(blob) // 2, len(blob) - 40):
        bad = torch.frombuffer(bytearray(blob), dtype=torch.uint8).to("cuda")
        bad[position] ^= 0x10
        with pytest.raises(CodecError):
            codec.decode(bad, torch.device("cuda"))
    with pytest.raises(CodecError):
        codec.decode(torch.frombuffer(bytearray(blob), dtype=torch.uint8)[:-9].to("cuda"), torch.device("cuda"))


@pytest.mark.parametrize("name", [n for n in DEVICE_CODECS if n.startswith("nvcomp-")])
def test_nvcomp_compresses_real_structure(name):
    """bf16 KV with few exponents compresses; the device-only path runs on the current stream."""
    codec = _runnable(name)
    source = kv(torch.bfloat16, layers=4, tokens=4096, head_dim=128).to("cuda")
    params, payload = codec.compress_device(source)
    assert payload.is_cuda and payload.dtype == torch.uint8 and params["size"] == source.nbytes
    assert len(codec.encode(source)) < source.nbytes * 1.01
