"""The byte layout every kvbench codec writes: a header that describes, a payload, checksums.

::

    b"KVBC" | version u8 | flags u8 | header_len u32 LE | header (UTF-8 JSON) | payload sections
          | [device checksum: 2 x u64 LE, when flags & 1] | XXH3-128

The header names the codec, the artifact's provenance ``meta``, the KV ``dtype``, the
tensor ``shapes`` (keys layer 0..n-1, then values layer 0..n-1), the byte length of each
payload section and any codec parameters. The trailing XXH3-128 covers everything before
it and is checked whenever the blob is in host memory. A blob that a GPU codec receives
already on the device (a tier copied it there) is checked instead with the device
checksum, a position-weighted byte sum (:func:`kvbench.kv.checksum.device_checksum`) that the GPU
computes at memory speed; GPU codecs write it. Either way a flipped bit or a truncation is caught
before a decoder sees the bytes.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import torch

from kvbench.codecs.base import CodecError
from kvbench.kv.artifact import KVArtifact
from kvbench.kv.checksum import device_checksum, xxh3_128

MAGIC = b"KVBC"
VERSION = 2
_PREFIX = struct.Struct("<4sBBI")  # magic, version, flags, header length
_DEVSUM = struct.Struct("<QQ")
_DIGEST = 16  # xxh3-128: corruption check at memory speed (not a MAC)
_HAS_DEVSUM = 1


def pack(codec: str, artifact: KVArtifact, sections: list, **params: Any) -> bytes:
    """Frame ``sections`` with a header describing ``artifact`` and the checksums.

    ``sections`` are bytes-like objects, or uint8 tensors (on any device); with tensors the
    device checksum is computed where they are, then they are copied to the host.
    """
    header = dict(
        codec=codec,
        meta=artifact.meta,
        dtype=str(artifact.keys[0].dtype).removeprefix("torch."),
        shapes=[list(t.shape) for t in (*artifact.keys, *artifact.values)],
        sections=[int(s.numel()) if isinstance(s, torch.Tensor) else memoryview(s).nbytes for s in sections],
        params=params,
    )
    head = json.dumps(header, separators=(",", ":")).encode()
    on_device = any(isinstance(s, torch.Tensor) for s in sections)
    prefix = _PREFIX.pack(MAGIC, VERSION, _HAS_DEVSUM if on_device else 0, len(head)) + head
    tail = []
    if on_device:
        where = next(s.device for s in sections if isinstance(s, torch.Tensor))
        tail = [
            _DEVSUM.pack(
                *device_checksum([torch.frombuffer(bytearray(prefix), dtype=torch.uint8).to(where), *sections])
            )
        ]
        sections = [s.cpu().numpy() if isinstance(s, torch.Tensor) else s for s in sections]
    parts = [prefix, *sections, *tail]
    return b"".join([*parts, xxh3_128(parts)])


def unpack(blob, codec: str) -> tuple[dict[str, Any], list]:
    """Verify a blob written by :func:`pack` for ``codec``; return its header and sections.

    ``blob`` is bytes-like, a CPU uint8 tensor (sections come back as memoryviews), or a
    CUDA uint8 tensor (sections come back as tensor views on the device).

    Raises
    ------
    CodecError
        If the blob is truncated, fails its checksum, or was written by another codec.
    """
    on_device = isinstance(blob, torch.Tensor) and blob.device.type != "cpu"
    size = blob.numel() if on_device else None
    if on_device:
        prefix = blob[: _PREFIX.size].cpu().numpy().tobytes()
    else:
        view = memoryview(blob.numpy() if isinstance(blob, torch.Tensor) else blob).cast("B")
        size, prefix = view.nbytes, bytes(view[: _PREFIX.size])
    if size < _PREFIX.size + _DIGEST:
        raise CodecError(f"{codec} blob of {size} bytes is shorter than its frame")
    magic, version, flags, head_len = _PREFIX.unpack(prefix)
    if magic != MAGIC or version != VERSION:
        raise CodecError(f"{codec} blob does not start with {MAGIC!r} version {VERSION}: not a kvbench codec blob")
    end = size - _DIGEST - (_DEVSUM.size if flags & _HAS_DEVSUM else 0)
    start = _PREFIX.size + head_len
    if start > end:
        raise CodecError(f"{codec} blob is truncated: its header claims {head_len} bytes")
    if on_device:
        if not flags & _HAS_DEVSUM:
            raise CodecError(f"{codec} blob has no device checksum: decode it from host memory")
        stored = _DEVSUM.unpack(blob[end : end + _DEVSUM.size].cpu().numpy().tobytes())
        if device_checksum([blob[:end]]) != stored:
            raise CodecError(f"{codec} blob device checksum mismatch: the bytes are corrupt or truncated")
        head = blob[_PREFIX.size : start].cpu().numpy().tobytes()
    else:
        if xxh3_128([view[:-_DIGEST]]) != bytes(view[-_DIGEST:]):
            raise CodecError(f"{codec} blob checksum mismatch: the bytes are corrupt or truncated")
        head = bytes(view[_PREFIX.size : start])
    try:
        header = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CodecError(f"{codec} blob header is not JSON: {exc}") from exc
    if header.get("codec") != codec:
        raise CodecError(f"blob was written by codec {header.get('codec')!r}, not {codec!r}")
    sections, offset = [], start
    for n in header["sections"]:
        sections.append(blob[offset : offset + n] if on_device else view[offset : offset + n])
        offset += n
    if offset != end:
        raise CodecError(f"{codec} blob sections span {offset - start} bytes but the payload has {end - start}")
    return header, sections


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
    src = np.frombuffer(view, dtype=np.uint8)
    host = torch.empty(src.size, dtype=torch.uint8, pin_memory=on_cuda)
    host.numpy()[:] = src
    return host.to(device, non_blocking=True) if on_cuda else host


class DeviceCodec:
    """Framing for codecs that code on the device: one payload section, coded where the KV is.

    Subclasses set ``name`` and define ``compress_device(artifact) -> (params, payload)``
    (``payload``: ``(nbytes,)`` uint8 on the artifact's device) and
    ``decompress_device(header, payload, device) -> KVArtifact``. Timing those two alone
    measures the device's work without the host copies and the checksums.
    """

    def encode(self, artifact: KVArtifact) -> bytes:
        params, payload = self.compress_device(artifact)
        return pack(self.name, artifact, [payload], **params)

    def decode(self, blob, device: torch.device | str = "cpu") -> KVArtifact:
        """Decode a host blob (bytes-like or CPU tensor) or one already on ``device`` (CUDA tensor)."""
        header, (payload,) = unpack(blob, self.name)
        if not isinstance(payload, torch.Tensor):
            payload = upload(payload, device)
        return self.decompress_device(header, payload.to(device), device)
