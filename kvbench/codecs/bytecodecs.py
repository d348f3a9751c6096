"""General-purpose lossless compressors over the KV's raw bytes: zstd, LZ4, deflate, byte planes.

Each runs single-threaded on the host over all tensors concatenated (keys then values,
layer by layer), so its GB/s is per core. :class:`BytePlaneCodec` first splits every
``itemsize``-byte value into ``itemsize`` streams (plane ``i`` holds byte ``i`` of every
value, little-endian, so the last plane holds the sign and the exponent's high bits of a
bf16/fp16/fp32) and compresses each with zstd: the exponent plane is highly skewed while
the low mantissa plane is close to random, and mixing them hides the skew from LZ matchers.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod

import lz4.frame
import numpy as np
import torch
import zstandard

from kvbench.codecs import container
from kvbench.codecs.base import CodecError
from kvbench.kv.artifact import KVArtifact
from kvbench.kv.chunks import CHUNK_BYTES


def zstd_compress(data, level: int) -> bytes:
    """One zstd frame (content size and xxhash content checksum included)."""
    return zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data)


def zstd_decompress(frame, size: int) -> np.ndarray:
    """Decompress one zstd frame of ``size`` bytes straight into a fresh ``(size,)`` uint8 array."""
    out = np.empty(size, dtype=np.uint8)
    view, filled = out.data, 0
    with zstandard.ZstdDecompressor().stream_reader(frame) as reader:
        while filled < size:
            n = reader.readinto(view[filled:])
            if n == 0:
                break
            filled += n
        extra = reader.read(1)
    if filled != size or extra:
        raise CodecError(f"zstd frame decoded to {'more' if extra else filled} bytes, expected {size}")
    return out


class _RawBytesCodec(ABC):
    """Shared frame handling: compress the raw bytes as one stream, check the size on decode.

    Subclasses set ``name`` and define ``_compress`` and ``_decompress``.
    """

    name: str
    lossless = True
    device = "cpu"

    @abstractmethod
    def _compress(self, raw: np.ndarray) -> bytes:
        """``raw`` ``(nbytes,)`` uint8 -> the compressed stream."""

    @abstractmethod
    def _decompress(self, data, size: int) -> bytearray | np.ndarray:
        """The compressed stream -> a writable ``(size,)`` bytes-like object."""

    def encode(self, artifact: KVArtifact, chunk_bytes: int = CHUNK_BYTES) -> bytes:
        raw = container.raw_bytes(artifact)
        return container.pack(self.name, artifact, [self._compress(raw)], chunk_bytes, size=int(raw.nbytes))

    def decode(self, blob, device: torch.device | str = "cpu") -> KVArtifact:
        header, (data,) = container.unpack(blob, self.name)
        size = int(header["params"]["size"])
        try:
            raw = self._decompress(data, size)
        except (zstandard.ZstdError, RuntimeError, zlib.error) as exc:
            raise CodecError(f"{self.name} payload does not decompress: {exc}") from exc
        if len(raw) != size:
            raise CodecError(f"{self.name} payload decoded to {len(raw)} bytes, expected {size}")
        return container.artifact_from_raw(raw, header, device)


class ZstdCodec(_RawBytesCodec):
    """zstd at a fixed level (1 fast ... 19 slow and tight), one frame, single-threaded."""

    def __init__(self, level: int = 3):
        self.level = level
        self.name = f"zstd-{level}"

    def _compress(self, raw):
        return zstd_compress(raw, self.level)

    def _decompress(self, data, size):
        return zstd_decompress(data, size)


class Lz4Codec(_RawBytesCodec):
    """LZ4 frame format (content size and content checksum stored), default fast mode."""

    name = "lz4"

    def _compress(self, raw):
        return lz4.frame.compress(raw, content_checksum=True, store_size=True)

    def _decompress(self, data, size):
        return lz4.frame.decompress(data, return_bytearray=True)


class DeflateCodec(_RawBytesCodec):
    """zlib's deflate (RFC 1950 stream with Adler-32) at ``level`` (6 is zlib's default)."""

    def __init__(self, level: int = 6):
        self.level = level
        self.name = "deflate"

    def _compress(self, raw):
        return zlib.compress(raw, self.level)

    def _decompress(self, data, size):
        return bytearray(zlib.decompress(data, bufsize=size))


def compress_planes(raw: np.ndarray, itemsize: int, level: int) -> list[bytes]:
    """``raw`` uint8 bytes of ``itemsize``-byte values -> one zstd frame per byte plane (low byte first)."""
    planes = raw.reshape(-1, itemsize).T  # (itemsize, values)
    return [zstd_compress(np.ascontiguousarray(p), level) for p in planes]


def decompress_planes(frames: list, values: int, name: str) -> np.ndarray:
    """The inverse of :func:`compress_planes`: ``(values * len(frames),)`` uint8, values interleaved back."""
    try:
        planes = [zstd_decompress(f, values) for f in frames]
    except zstandard.ZstdError as exc:
        raise CodecError(f"{name} plane does not decompress: {exc}") from exc
    return np.stack(planes, axis=1).reshape(-1)


class BytePlaneCodec:
    """Split values into byte planes (bf16/fp16: 2, fp32: 4), then zstd each plane."""

    lossless = True
    device = "cpu"

    def __init__(self, level: int = 3):
        self.level = level
        self.name = "planes-zstd" if level == 3 else f"planes-zstd-{level}"

    def encode(self, artifact: KVArtifact, chunk_bytes: int = CHUNK_BYTES) -> bytes:
        itemsize = artifact.keys[0].element_size()
        raw = container.raw_bytes(artifact)
        frames = compress_planes(raw, itemsize, self.level)
        return container.pack(self.name, artifact, frames, chunk_bytes, values=raw.size // itemsize)

    def decode(self, blob, device: torch.device | str = "cpu") -> KVArtifact:
        header, frames = container.unpack(blob, self.name)
        raw = decompress_planes(frames, int(header["params"]["values"]), self.name)
        return container.artifact_from_raw(raw, header, device)
