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


def restore(res: np.ndarray, op: str) -> np.ndarray:
    """The inverse of :func:`residuals`."""
    if op == "delta":
        return np.cumsum(res, axis=TOKENS_AXIS, dtype=res.dtype)  # wraps modulo 2^bits
    return np.bitwise_xor.accumulate(res, axis=TOKENS_AXIS)


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
        uint = _UINT[itemsize]
        parts = []
        for t in (*artifact.keys, *artifact.values):
            bits = t.detach().contiguous().cpu().reshape(-1).view(torch.uint8).numpy().view(uint)
            parts.append(residuals(bits.reshape(t.shape), self.op).reshape(-1))
        flat = np.concatenate(parts)
        frames = compress_planes(flat.view(np.uint8), itemsize, self.level)
        return container.pack(self.name, artifact, frames, chunk_bytes, values=int(flat.size), op=self.op)

    def decode(self, blob, device: torch.device | str = "cpu") -> KVArtifact:
        header, frames = container.unpack(blob, self.name)
        if len(frames) not in _UINT:
            raise CodecError(f"{self.name} blob holds {len(frames)} planes, expected 2 or 4")
        flat = decompress_planes(frames, int(header["params"]["values"]), self.name).view(_UINT[len(frames)])
        out, offset = [], 0
        for shape in header["shapes"]:
            size = int(np.prod(shape))
            if offset + size > flat.size:
                raise CodecError(f"{self.name} decoded {flat.size} values but the header's shapes need more")
            out.append(restore(flat[offset : offset + size].reshape(shape), self.op).reshape(-1))
            offset += size
        raw = np.concatenate(out).view(np.uint8) if out else np.empty(0, np.uint8)
        return container.artifact_from_raw(raw, header, device)
