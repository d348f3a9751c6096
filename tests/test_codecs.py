"""Every codec on plain tensors: bitwise round trips, lossy error bounds, corrupt and truncated bytes."""

from __future__ import annotations

import pytest
import torch

from kvbench.codecs import CODECS, CodecError, container, exponent, get_codec, unavailable
from kvbench.kv.artifact import KVArtifact

DTYPES = (torch.bfloat16, torch.float16, torch.float32)
HOST_RUNNABLE = [n for n in CODECS if unavailable(n) is None]
# relative RMS error each lossy codec must stay under on Gaussian KV with outlier channels
LOSSY_RMSE = {"fp8-tensor": 0.08, "fp8-head": 0.05, "int8-kivi": 0.01, "int4-kivi": 0.15}


def kv(dtype: torch.dtype, layers: int = 2, heads: int = 2, tokens: int = 37, head_dim: int = 32) -> KVArtifact:
    """KV-like tensors: Gaussian values, a few large key channels (as trained keys have), odd token count."""
    g = torch.Generator().manual_seed(0)
    keys, values = [], []
    for _ in range(layers):
        k = torch.randn(1, heads, tokens, head_dim, generator=g)
        k[..., :3] *= 20
        keys.append(k.to(dtype))
        values.append((0.5 * torch.randn(1, heads, tokens, head_dim, generator=g)).to(dtype))
    return KVArtifact(keys, values, {"num_layers": str(layers), "model_fingerprint": "abc", "dtype": str(dtype)})


def cases():
    for name in HOST_RUNNABLE:
        for dtype in DTYPES:
            if str(dtype).removeprefix("torch.") in CODECS[name].dtypes:
                yield pytest.param(name, dtype, id=f"{name}-{str(dtype)[6:]}")


def tensors(a: KVArtifact) -> list[torch.Tensor]:
    return [*a.keys, *a.values]


@pytest.mark.parametrize("name,dtype", list(cases()))
def test_round_trip(name, dtype):
    source = kv(dtype)
    codec = get_codec(name)
    blob = codec.encode(source)
    assert isinstance(blob, (bytes, bytearray))
    as_tensor = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
    for decoded in (codec.decode(blob, "cpu"), codec.decode(as_tensor, "cpu")):
        assert [t.shape for t in tensors(decoded)] == [t.shape for t in tensors(source)]
        assert all(t.dtype == dtype for t in tensors(decoded))
        assert decoded.meta["model_fingerprint"] == "abc"
        if codec.lossless:
            assert all(torch.equal(a, b) for a, b in zip(tensors(source), tensors(decoded)))
        else:
            err = sum(float(((a.float() - b.float()) ** 2).sum()) for a, b in zip(tensors(source), tensors(decoded)))
            ref = sum(float((a.float() ** 2).sum()) for a in tensors(source))
            assert 0 < (err / ref) ** 0.5 < LOSSY_RMSE[name]


@pytest.mark.parametrize("name,dtype", [c for c in cases() if c.values[1] == torch.bfloat16])
def test_corrupt_and_truncated_bytes_raise(name, dtype):
    codec = get_codec(name)
    blob = codec.encode(kv(dtype))
    for position in (5, 12, len(blob) // 2, len(blob) - 40, len(blob) - 1):
        bad = bytearray(blob)
        bad[position] ^= 0x10
        with pytest.raises(CodecError):
            codec.decode(bytes(bad), "cpu")
    for cut in (0, 7, len(blob) // 3, len(blob) - 1):
        with pytest.raises(CodecError):
            codec.decode(blob[:cut], "cpu")


def test_blob_of_another_codec_is_refused():
    blob = get_codec("zstd-1").encode(kv(torch.bfloat16))
    with pytest.raises(CodecError, match="zstd-1"):
        get_codec("zstd-3").decode(blob, "cpu")
    with pytest.raises(CodecError, match="not a kvbench codec blob"):
        get_codec("lz4").decode(kv(torch.bfloat16).to_bytes(), "cpu")


def test_compression_tracks_structure():
    """Byte planes and exponent coding beat plain zstd on bf16, and no codec expands KV noticeably."""
    source = kv(torch.bfloat16, tokens=512)
    size = {n: len(get_codec(n).encode(source)) for n in ("zstd-3", "planes-zstd", "exponent-ans", "lz4")}
    assert size["planes-zstd"] < size["zstd-3"] and size["exponent-ans"] < size["zstd-3"]
    assert size["lz4"] < 1.02 * source.nbytes


@pytest.mark.parametrize("name", [n for n in HOST_RUNNABLE if isinstance(get_codec(n), container.DeviceCodec)])
def test_device_checksum_matches_the_frame(name):
    """The checksum a GPU verifies on a device-resident blob is the one written at encode."""
    blob = get_codec(name).encode(kv(torch.float16))
    frame = container.read_frame(blob, len(blob), name)
    payload = torch.frombuffer(bytearray(blob[frame.start :]), dtype=torch.uint8)
    stored = tuple(frame.header["device_checksum"])
    assert container.device_checksum([payload]) == stored
    payload[len(payload) // 2] ^= 1
    assert container.device_checksum([payload]) != stored


def test_bit_packing_across_chunks(monkeypatch):
    monkeypatch.setattr(exponent, "_CHUNK", 16)
    values = torch.randint(0, 1 << 11, (101,), dtype=torch.int32).numpy().astype("uint16")
    packed = exponent.pack_bits(values, 11)
    assert len(packed) == (101 * 11 + 7) // 8
    assert (exponent.unpack_bits(packed, 11, 101) == values).all()


def test_float_fields_split_and_join():
    bits = torch.randn(1000).to(torch.float16).view(torch.int16).numpy().view("uint16")
    e, s = exponent.split_fields(bits, 5, 10)
    assert e.max() < 32 and s.max() < 1 << 11
    assert (exponent.join_fields(e, s, 10) == bits).all()


def test_unknown_codec_and_bad_params():
    with pytest.raises(KeyError, match="unknown codec"):
        get_codec("gzip-9")
    with pytest.raises(ValueError, match="bits"):
        get_codec("int8-kivi", bits=3)


def test_nvcomp_reports_why_it_is_unavailable():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: covered by test_codecs_gpu")
    assert "CUDA" in unavailable("nvcomp-ans")


@pytest.mark.parametrize("name", ["zstd-3", "planes-zstd", "int4-kivi"])
def test_every_single_byte_flip_of_a_frame_is_refused(name):
    """Header, digest list, any chunk or the device checksum: one flipped byte and the blob is refused."""
    gen = torch.Generator().manual_seed(0)
    art = KVArtifact([torch.randn(1, 1, 8, 32, generator=gen)], [torch.randn(1, 1, 8, 32, generator=gen)], {})
    codec = get_codec(name)
    blob = codec.encode(art)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x04
        with pytest.raises(CodecError):
            codec.decode(bytes(bad), torch.device("cpu"))


def test_a_frame_of_the_old_version_is_refused_by_version():
    blob = bytearray(get_codec("zstd-3").encode(kv(torch.float16)))
    blob[4] = 2
    with pytest.raises(CodecError, match="frame version 2"):
        get_codec("zstd-3").decode(bytes(blob), torch.device("cpu"))
