"""The byte layout every kvbench codec writes: a header that describes, a payload, digests.

::

    b"KVBC" | version u8 | flags u8 | header_len u32 LE | header (UTF-8 JSON) | payload sections

The header names the codec, the artifact's provenance ``meta``, the KV ``dtype``, the
tensor ``shapes`` (keys layer 0..n-1, then values layer 0..n-1), the byte length of each
payload section and any codec parameters, and (version 3) the payload's chunk digests
(:mod:`kvbench.kv.chunks`: an XXH3-64 per ``chunk_bytes`` of the sections read back to back)
and an XXH3-128 of the prefix and header with its own digits read as zeros. So a reader can
verify the header, then each chunk as it lands, in parallel. A blob that a GPU codec receives
already on the device is checked instead with the header's ``device_checksum`` of the
payload, a position-weighted byte sum (:func:`kvbench.kv.checksum.device_checksum`) that the
GPU computes at memory speed; GPU codecs write it. Either way a flipped bit, a truncation or
a chunk out of place is caught before a decoder sees the bytes.
"""

from __future__ import annotations

import json
import struct
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kvbench.codecs.base import CodecError
from kvbench.kv.artifact import KVArtifact
from kvbench.kv.checksum import device_checksum
from kvbench.kv.chunks import CHUNK_BYTES, HEADER_PLACEHOLDER, ChunkError, ChunkList, header_digest

MAGIC = b"KVBC"
VERSION = 3  # 2: one trailing XXH3-128 over the whole blob
_PREFIX = struct.Struct("<4sBBI")  # magic, version, flags, header length
MAX_HEADER = 16 << 20
_DIGEST_FIELD = b'"header_xxh3_128":"'


@dataclass
class Frame:
    """A checked header: what it says, and where the payload lies in the blob (``start..end``)."""

    header: dict[str, Any]
    start: int
    end: int
    chunks: ChunkList


def pack(codec: str, artifact: KVArtifact, sections: list, chunk_bytes: int = CHUNK_BYTES, **params: Any) -> bytes:
    """Frame ``sections`` with a header describing ``artifact``, its chunk digests and its own digest.

    ``sections`` are bytes-like objects, or uint8 tensors (on any device); with tensors the
    device checksum is computed where they are, then they are copied to the host.
    """
    on_device = [s for s in sections if isinstance(s, torch.Tensor)]
    devsum = list(device_checksum(on_device)) if sections and len(on_device) == len(sections) else None
    host = [s.cpu().numpy().data if isinstance(s, torch.Tensor) else s for s in sections]
    payload = b"".join(host)
    chunks = ChunkList.of(payload, chunk_bytes)
    header = dict(
        codec=codec,
        meta=artifact.meta,
        dtype=str(artifact.keys[0].dtype).removeprefix("torch."),
        shapes=[list(t.shape) for t in (*artifact.keys, *artifact.values)],
        sections=[memoryview(s).nbytes for s in host],
        params=params,
        chunk_bytes=chunk_bytes,
        chunk_xxh3_64=chunks.text(),
        device_checksum=devsum,
        header_xxh3_128=HEADER_PLACEHOLDER,
    )
    head = json.dumps(header, separators=(",", ":")).encode()
    prefix = bytearray(_PREFIX.pack(MAGIC, VERSION, 0, len(head)) + head)
    at = prefix.find(_DIGEST_FIELD) + len(_DIGEST_FIELD)
    prefix[at : at + len(HEADER_PLACEHOLDER)] = header_digest(bytes(prefix)).encode()
    return bytes(prefix) + payload


def read_frame(head, size: int, codec: str) -> Frame:
    """Check the prefix and header in ``head`` (the blob's first bytes, header included) of a ``size``-byte blob.

    Raises
    ------
    CodecError
        If the blob is not a version-3 frame of ``codec``, or its header is malformed or fails its digest.
    """
    view = memoryview(head).cast("B")
    if size < _PREFIX.size or view.nbytes < _PREFIX.size:
        raise CodecError(f"{codec} blob of {size} bytes is shorter than its frame")
    magic, version, _flags, head_len = _PREFIX.unpack(bytes(view[: _PREFIX.size]))
    if magic != MAGIC:
        raise CodecError(f"{codec} blob does not start with {MAGIC!r}: not a kvbench codec blob")
    if version != VERSION:
        raise CodecError(
            f"{codec} blob is frame version {version}, which this kvbench does not read (it reads {VERSION})"
        )
    start, end = _PREFIX.size + head_len, size
    if head_len > MAX_HEADER or start > end or view.nbytes < start:
        raise CodecError(f"{codec} blob is truncated: its header claims {head_len} bytes")
    raw = bytearray(view[:start])
    try:
        header = json.loads(bytes(raw[_PREFIX.size :]))
        stored = header["header_xxh3_128"]
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError, KeyError) as exc:
        raise CodecError(f"{codec} blob header is not a kvbench header: {str(exc)[:120]}") from None
    at = raw.find(_DIGEST_FIELD) + len(_DIGEST_FIELD)
    if raw.count(_DIGEST_FIELD) != 1:
        raise CodecError(f"{codec} blob header does not hold exactly one header digest")
    raw[at : at + len(HEADER_PLACEHOLDER)] = HEADER_PLACEHOLDER.encode()
    if stored != header_digest(bytes(raw)):
        raise CodecError(f"{codec} blob header fails its digest: the header is corrupt")
    if header.get("codec") != codec:
        raise CodecError(f"blob was written by codec {str(header.get('codec'))[:32]!r}, not {codec!r}")
    sections = header.get("sections")
    if not (isinstance(sections, list) and all(isinstance(n, int) and n >= 0 for n in sections)):
        raise CodecError(f"{codec} blob header's sections are not byte counts")
    if sum(sections) != end - start:
        raise CodecError(f"{codec} blob sections span {sum(sections)} bytes but the payload has {end - start}")
    try:
        chunks = ChunkList.parse(header.get("chunk_bytes"), end - start, header.get("chunk_xxh3_64"))
    except ChunkError as exc:
        raise CodecError(f"{codec} blob {exc}") from None
    return Frame(header, start, end, chunks)


def unpack(blob, codec: str, threads: int = 1) -> tuple[dict[str, Any], list]:
    """Verify a blob written by :func:`pack` for ``codec``; return its header and sections.

    ``blob`` is bytes-like, a CPU uint8 tensor (sections come back as memoryviews), or a
    CUDA uint8 tensor (sections come back as tensor views on the device).

    Raises
    ------
    CodecError
        If the blob is truncated, fails a digest, or was written by another codec.
    """
    on_device = isinstance(blob, torch.Tensor) and blob.device.type != "cpu"
    if on_device:
        size = blob.numel()
        head_len = _PREFIX.unpack(blob[: _PREFIX.size].cpu().numpy().tobytes())[3] if size >= _PREFIX.size else 0
        frame = read_frame(blob[: _PREFIX.size + min(head_len, MAX_HEADER)].cpu().numpy().tobytes(), size, codec)
        stored = frame.header.get("device_checksum")
        if stored is None:
            raise CodecError(f"{codec} blob has no device checksum: decode it from host memory")
        payload = blob[frame.start : frame.end]
        if list(device_checksum([payload])) != stored:
            raise CodecError(f"{codec} blob device checksum mismatch: the bytes are corrupt or truncated")
    else:
        view = (blob.numpy().data if isinstance(blob, torch.Tensor) else memoryview(blob)).cast("B")
        frame = read_frame(view, view.nbytes, codec)
        payload = view[frame.start : frame.end]
        try:
            frame.chunks.check_all(payload, threads)
        except ChunkError as exc:
            raise CodecError(f"{codec} blob {exc}") from None
    return frame.header, split_sections(payload, frame.header["sections"])


def split_sections(payload, sizes: list[int]) -> list:
    """The payload (bytes-like or a uint8 tensor) cut into its sections (views, no copy)."""
    sections, offset = [], 0
    for n in sizes:
        sections.append(payload[offset : offset + n])
        offset += n
    return sections


def raw_bytes(artifact: KVArtifact) -> np.ndarray:
    """All KV tensors' bytes, keys then values, layer by layer: ``(nbytes,)`` uint8 on the host."""
    flat = [t.detach().contiguous().reshape(-1).view(torch.uint8) for t in (*artifact.keys, *artifact.values)]
    return torch.cat(flat).cpu().numpy()


def artifact_from_raw(raw, header: dict[str, Any], device: torch.device | str = "cpu") -> KVArtifact:
    """Rebuild the artifact from its concatenated raw tensor bytes (the inverse of :func:`raw_bytes`).

    ``raw`` is a writable bytes-like object (bytearray, numpy array) or a uint8 tensor; the
    tensors are views of it, so decoders hand over a buffer nobody else holds.

    Raises
    ------
    CodecError
        If the byte count does not match the header's shapes and dtype.
    """
    dtype = getattr(torch, header["dtype"])
    data = raw if isinstance(raw, torch.Tensor) else torch.from_numpy(np.frombuffer(raw, dtype=np.uint8))
    tensors = split_tensors(data.view(dtype), header)
    artifact = KVArtifact(tensors[: len(tensors) // 2], tensors[len(tensors) // 2 :], dict(header["meta"]))
    return artifact if torch.device(device) == artifact.device else artifact.to(device)


def split_tensors(flat: torch.Tensor, header: dict[str, Any]) -> list[torch.Tensor]:
    """Cut a flat tensor of every value into the header's shapes (views, no copy)."""
    sizes = [int(np.prod(s)) for s in header["shapes"]]
    if flat.numel() != sum(sizes):
        raise CodecError(f"{header['codec']} decoded {flat.numel()} values but the header's shapes need {sum(sizes)}")
    return [part.view(shape) for part, shape in zip(flat.split(sizes), header["shapes"])]


def upload(section, device: torch.device | str) -> torch.Tensor:
    """A payload section as a ``(nbytes,)`` uint8 tensor on ``device``.

    At most one host copy: none when the section already sits in pinned memory (a tier's
    staging buffer), else into a private buffer (CPU) or pinned memory (CUDA), from which
    the device copy runs asynchronously.
    """
    on_cuda = torch.device(device).type == "cuda"
    view = memoryview(section).cast("B")
    if on_cuda and not view.readonly and view.nbytes:
        src = torch.frombuffer(view, dtype=torch.uint8)
        if src.is_pinned():
            return src.to(device, non_blocking=True)
    data = np.frombuffer(view, dtype=np.uint8)
    host = torch.empty(data.size, dtype=torch.uint8, pin_memory=on_cuda)
    host.numpy()[:] = data
    return host.to(device, non_blocking=True) if on_cuda else host


class DeviceCodec(ABC):
    """Framing for codecs that code on the device: one payload section, coded where the KV is.

    Subclasses set ``name`` and define :meth:`compress_device` and :meth:`decompress_device`.
    Timing those two alone measures the device's work without the host copies and the checksums.
    """

    name: str

    @abstractmethod
    def compress_device(self, artifact: KVArtifact) -> tuple[dict, torch.Tensor]:
        """``(params, payload)``: the header's codec parameters, and ``(nbytes,)`` uint8 on the artifact's device."""

    @abstractmethod
    def decompress_device(self, header: dict, payload: torch.Tensor, device) -> KVArtifact:
        """The artifact on ``device`` from the header and the payload (already on ``device``)."""

    def encode(self, artifact: KVArtifact, chunk_bytes: int = CHUNK_BYTES) -> bytes:
        params, payload = self.compress_device(artifact)
        return pack(self.name, artifact, [payload], chunk_bytes, **params)

    def decode(self, blob, device: torch.device | str = "cpu") -> KVArtifact:
        """Decode a host blob (bytes-like or CPU tensor) or one already on ``device`` (CUDA tensor)."""
        header, (payload,) = unpack(blob, self.name)
        if not isinstance(payload, torch.Tensor):
            payload = upload(payload, device)
        return self.decompress_device(header, payload.to(device), device)
