"""Predictive lossless codecs: each value's bit pattern predicted from the previous token's.

KV is a sequence over tokens, and a channel's value at token ``t`` resembles the same
channel's value at ``t - 1`` more than a random value does. These codecs replace every value
after a tensor's first token by its residual against that prediction, computed on the bit
patterns as unsigned integers, so the transform is exact:

* ``delta``: ``s[t] - s[t-1]`` modulo 2^bits (decoded by a running sum modulo 2^bits);
* ``xor``: ``s[t] ^ s[t-1]`` (decoded by a running XOR): equal signs and exponents give zero
  high bits.

The residuals are then split into byte planes and each plane coded by zstd-3, as
:class:`kvbench.codecs.bytecodecs.BytePlaneCodec` does with the raw values. Tensors are
``(batch, kv_heads, tokens, head_dim)``; the prediction runs along ``tokens``.
"""

from __future__ import annotations

import numpy as np
import torch

from kvbench.codecs import container
from kvbench.codecs.base import CodecError
from kvbench.codecs.bytecodecs import compress_planes, decompress_planes
from kvbench.kv.artifact import KVArtifact
from kvbench.kv.chunks import CHUNK_BYTES

_UINT = {2: np.uint16, 4: np.uint32}
TOKENS_AXIS = -2


def residuals(values: np.ndarray, op: str) -> np.ndarray:
    """``(..., tokens, head_dim)`` unsigned bit patterns -> residuals against the previous token."""
    out = values.copy()
    if op == "delta":
        out[..., 1:, :] -= values[..., :-1, :]  # unsigned: wraps modulo 2^bits
    else:
        out[..., 1:, :] ^= values[..., :-1, :]
    return out


def restore(res: np.ndarray, op: str, out: np.ndarray | None = None) -> np.ndarray:
    """The inverse of :func:`residuals`, into ``out`` (which may be ``res`` itself) or a new array."""
    if op == "delta":
        return np.cumsum(res, axis=TOKENS_AXIS, dtype=res.dtype, out=out)  # wraps modulo 2^bits
    return np.bitwise_xor.accumulate(res, axis=TOKENS_AXIS, out=out)


def _bits(t: torch.Tensor) -> np.ndarray:
    """A contiguous CPU tensor's bit patterns, unsigned integers of its width: a numpy view of its memory
    (same shape, ``(batch, kv_heads, tokens, head_dim)``)."""
    return t.view(torch.uint8).numpy().view(_UINT[t.element_size()])


class PredictivePlaneCodec:
    """Residuals against the previous token (``op``: delta or xor), byte planes, zstd each plane."""

    lossless = True
    device = "cpu"

    def __init__(self, op: str = "delta", level: int = 3):
        if op not in ("delta", "xor"):
            raise ValueError(f"op={op!r} is invalid: allowed delta, xor")
        self.op, self.level = op, level
        self.name = f"{op}-planes-zstd"

    def encode(self, artifact: KVArtifact, chunk_bytes: int = CHUNK_BYTES) -> bytes:
        itemsize = artifact.keys[0].element_size()
        if itemsize not in _UINT:
            raise CodecError(f"{self.name} codes 16- or 32-bit values, got {artifact.keys[0].dtype}")
        tensors = (*artifact.keys, *artifact.values)
        flat = np.concatenate([residuals(_bits(t.detach().contiguous().cpu()), self.op).reshape(-1) for t in tensors])
        frames = compress_planes(flat.view(np.uint8), itemsize, self.level)
        return container.pack(self.name, artifact, frames, chunk_bytes, values=int(flat.size), op=self.op)

    def decode(self, blob, device: torch.device | str = "cpu") -> KVArtifact:
        header, frames = container.unpack(blob, self.name)
        if len(frames) not in _UINT:
            raise CodecError(f"{self.name} blob holds {len(frames)} planes, expected 2 or 4")
        raw = decompress_planes(frames, int(header["params"]["values"]), self.name)
        artifact = container.artifact_from_raw(raw, header)  # views of raw, its size checked against the shapes
        if artifact.keys[0].element_size() != len(frames):
            raise CodecError(f"{self.name} blob holds {len(frames)} planes of {artifact.keys[0].dtype} values")
        for t in (*artifact.keys, *artifact.values):
            bits = _bits(t)
            restore(bits, self.op, out=bits)  # in place: no second copy of the KV
        return artifact.to(device)
