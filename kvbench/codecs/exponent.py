"""Exponent-plane entropy coding, in the spirit of DFloat11 and ZipNN.

A bf16 value is sign (1 bit) | exponent (8) | mantissa (7); an fp16 value is 1 | 5 | 10.
Trained activations use a few dozen exponents out of 2^E, so the exponent carries ~2-3 bits
of information in 8 (or 5) bits, while sign and mantissa are close to uniform. The codec
therefore entropy-codes the exponent with rANS (``constriction``'s ``AnsCoder`` over the
empirical exponent histogram, stored in the header) and stores sign + mantissa verbatim,
bit-packed (bf16: one byte per value; fp16: 11 bits per value). The ratio this reaches is
close to ``bits / (1 + mantissa_bits + H(exponent))``.
"""

from __future__ import annotations

import constriction
import numpy as np
import torch

from kvbench.codecs import container
from kvbench.codecs.base import CodecError
from kvbench.kv.artifact import KVArtifact
from kvbench.kv.chunks import CHUNK_BYTES

# dtype -> (exponent bits, mantissa bits)
FLOAT_LAYOUTS = {"bfloat16": (8, 7), "float16": (5, 10)}
_CHUNK = 1 << 22  # values per bit-packing chunk (a multiple of 8 keeps chunks byte-aligned)


def split_fields(bits: np.ndarray, exp_bits: int, man_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n,)`` uint16 float bit patterns -> exponent ``(n,)`` int32 and sign|mantissa ``(n,)`` uint16."""
    exponent = ((bits >> man_bits) & ((1 << exp_bits) - 1)).astype(np.int32)
    sign_man = ((bits >> 15) << man_bits) | (bits & ((1 << man_bits) - 1))
    return exponent, sign_man


def join_fields(exponent: np.ndarray, sign_man: np.ndarray, man_bits: int) -> np.ndarray:
    """Inverse of :func:`split_fields`: ``(n,)`` uint16 bit patterns."""
    e, s = exponent.astype(np.uint16), sign_man.astype(np.uint16)
    return ((s >> man_bits) << 15) | (e << man_bits) | (s & ((1 << man_bits) - 1))


def pack_bits(values: np.ndarray, nbits: int) -> bytes:
    """Keep the low ``nbits`` of each ``(n,)`` uint16 value, densely packed (MSB first)."""
    if nbits == 8:
        return values.astype(np.uint8).tobytes()
    out = []
    for i in range(0, len(values), _CHUNK):
        bits = np.unpackbits(values[i : i + _CHUNK].astype(">u2").view(np.uint8).reshape(-1, 2), axis=1)
        out.append(np.packbits(bits[:, 16 - nbits :]).tobytes())
    return b"".join(out)


def unpack_bits(data, nbits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``(count,)`` uint16."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.nbytes != (count * nbits + 7) // 8:
        raise CodecError(f"sign/mantissa stream has {raw.nbytes} bytes, expected {(count * nbits + 7) // 8}")
    if nbits == 8:
        return raw.astype(np.uint16)
    out = np.empty(count, dtype=np.uint16)
    step = _CHUNK * nbits // 8
    for j, i in enumerate(range(0, count, _CHUNK)):
        n = min(_CHUNK, count - i)
        bits = np.unpackbits(raw[j * step : j * step + (n * nbits + 7) // 8], count=n * nbits).reshape(n, nbits)
        padded = np.concatenate([np.zeros((n, 16 - nbits), np.uint8), bits], axis=1)
        out[i : i + n] = np.packbits(padded, axis=1).view(">u2").reshape(-1)
    return out


def _model(counts: np.ndarray):
    """The rANS model of the exponent histogram; rebuilt bit-identically from the stored counts."""
    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


class ExponentAnsCodec:
    """rANS over the exponent field, sign and mantissa stored raw (16-bit floats only)."""

    name = "exponent-ans"
    lossless = True
    device = "cpu"

    def encode(self, artifact: KVArtifact, chunk_bytes: int = CHUNK_BYTES) -> bytes:
        dtype = str(artifact.keys[0].dtype).removeprefix("torch.")
        if dtype not in FLOAT_LAYOUTS:
            raise CodecError(f"{self.name} codes {' | '.join(FLOAT_LAYOUTS)} KV, not {dtype}")
        exp_bits, man_bits = FLOAT_LAYOUTS[dtype]
        bits = container.raw_bytes(artifact).view(np.uint16)
        exponent, sign_man = split_fields(bits, exp_bits, man_bits)
        counts = np.bincount(exponent, minlength=1 << exp_bits)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(exponent, _model(counts))
        sections = [coder.get_compressed().astype("<u4").tobytes(), pack_bits(sign_man, 1 + man_bits)]
        return container.pack(self.name, artifact, sections, chunk_bytes, values=int(bits.size), counts=counts.tolist())

    def decode(self, blob, device: torch.device | str = "cpu") -> KVArtifact:
        header, (ans, raw) = container.unpack(blob, self.name)
        exp_bits, man_bits = FLOAT_LAYOUTS[header["dtype"]]
        n, counts = int(header["params"]["values"]), np.asarray(header["params"]["counts"], dtype=np.int64)
        if counts.shape != (1 << exp_bits,) or counts.sum() != n:
            raise CodecError(f"{self.name} header histogram does not describe {n} {header['dtype']} exponents")
        try:
            coder = constriction.stream.stack.AnsCoder(np.frombuffer(ans, dtype="<u4").astype(np.uint32))
            exponent = coder.decode(_model(counts), n)
        except Exception as exc:  # constriction raises plain exceptions on malformed streams
            raise CodecError(f"{self.name} exponent stream does not decode: {exc}") from exc
        bits = join_fields(exponent, unpack_bits(raw, 1 + man_bits, n), man_bits)
        return container.artifact_from_raw(bits.view(np.uint8), header, device)
