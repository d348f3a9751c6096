"""The safetensors byte layout, written into one buffer and read back as zero-copy views.

The format is an 8-byte little-endian header length, a JSON header of
``{"__metadata__": {str: str}, name: {dtype, shape, data_offsets}}`` padded with spaces to
8 bytes, then the data section that the tensors tile exactly. ``safetensors.torch.save``
makes several whole copies (0.3 GB/s on a 4.8 GB KV) and ``load`` copies every tensor out
(about 2.5 GB/s), which dominated every tier read: here each tensor is copied once on
write and not at all on read. The tests read our blobs back with the library itself.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

DTYPES = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "F64": torch.float64,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}


class MalformedBlobError(ValueError):
    """The bytes are not a well-formed safetensors blob (truncated, unparsable, inconsistent)."""


@dataclass
class Blob:
    """A parsed blob: the metadata, tensor views into it, and where its header ends.

    ``data`` is the whole blob as a ``(nbytes,)`` uint8 CPU tensor; ``header_end`` is
    8 + the header length, the offset at which the data section starts.
    """

    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    data: torch.Tensor
    header_end: int


def write(named: list[tuple[str, torch.Tensor]], meta: dict[str, str]) -> bytearray:
    """One buffer holding ``named`` tensors (in this order) and ``meta``, each tensor copied once.

    Tensors on a GPU are copied to the host straight into the buffer.
    """
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, t in named:
        n = t.numel() * t.element_size()
        layout[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps({"__metadata__": meta, **layout}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    start = 8 + len(text)
    blob = bytearray(start + offset)
    blob[:start] = len(text).to_bytes(8, "little") + text
    data = torch.frombuffer(blob, dtype=torch.uint8)
    for name, t in named:
        lo, hi = layout[name]["data_offsets"]
        data[start + lo : start + hi].copy_(t.detach().contiguous().reshape(-1).view(torch.uint8))
    return blob


def _as_uint8(blob) -> torch.Tensor:
    if isinstance(blob, torch.Tensor):
        return blob.reshape(-1).view(torch.uint8)
    with warnings.catch_warnings():  # a read-only buffer (bytes) gives read-only views, by contract
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return torch.frombuffer(blob, dtype=torch.uint8) if len(blob) else torch.empty(0, dtype=torch.uint8)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def read(blob) -> Blob:
    """Parse ``blob`` (bytes-like or a 1-D uint8 CPU tensor) into views, checking every bound.

    Raises
    ------
    MalformedBlobError
        If the blob is shorter than its header says, the header is not the format's JSON,
        a tensor's dtype, shape or offsets are invalid, or the tensors do not tile the data.
    """
    data = _as_uint8(blob)
    if data.numel() < 8:
        raise MalformedBlobError(f"blob of {data.numel()} bytes is shorter than a safetensors header")
    header_len = int.from_bytes(data[:8].numpy().tobytes(), "little")
    body = data.numel() - 8 - header_len
    if body < 0:
        raise MalformedBlobError(f"header claims {header_len} bytes but only {data.numel() - 8} follow")
    try:
        header = json.loads(data[8 : 8 + header_len].numpy().tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBlobError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise MalformedBlobError("header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise MalformedBlobError("__metadata__ is not a JSON object")
    tensors, spans = {}, []
    for name, spec in header.items():
        if not (
            isinstance(spec, dict)
            and spec.get("dtype") in DTYPES
            and isinstance(spec.get("shape"), list)
            and all(map(_is_count, spec["shape"]))
            and isinstance(spec.get("data_offsets"), list)
            and len(spec["data_offsets"]) == 2
            and all(map(_is_count, spec["data_offsets"]))
        ):
            raise MalformedBlobError(f"tensor {name}: invalid dtype, shape or data_offsets {spec!r}")
        dtype, shape, (start, end) = DTYPES[spec["dtype"]], spec["shape"], spec["data_offsets"]
        if not start <= end <= body or end - start != math.prod(shape) * dtype.itemsize:
            raise MalformedBlobError(f"tensor {name} spans bytes {start}..{end} of {body}: truncated or malformed")
        offset = 8 + header_len + start
        if offset % dtype.itemsize:  # a view needs aligned elements (our writer pads the header to 8)
            raise MalformedBlobError(f"tensor {name} at byte {offset} is not aligned to its {spec['dtype']} items")
        tensors[name] = data[offset : offset + end - start].view(dtype).reshape(shape)
        spans.append((start, end))
    covered = 0
    for start, end in sorted(spans):
        if start != covered:
            raise MalformedBlobError(f"tensors overlap or leave a gap at byte {covered} of the data")
        covered = end
    if covered != body:
        raise MalformedBlobError(f"tensors cover {covered} bytes but the data section has {body}")
    return Blob(meta, tensors, data, 8 + header_len)
