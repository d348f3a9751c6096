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
# Bounds a crafted header cannot get past: checked before anything is built from it.
MAX_HEADER = 16 << 20  # bytes of JSON (a 1024-layer KV's header with chunk digests is a few hundred KB)
MAX_DEPTH = 8  # the format nests three levels
MAX_TENSORS = 4096  # two per layer
MAX_RANK = 8
MAX_DIM = 1 << 48


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


def _is_count(value: Any, limit: int = MAX_DIM) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


@dataclass
class Spec:
    """One tensor as the header describes it: bytes ``start..end`` of the data section."""

    name: str
    dtype: torch.dtype
    shape: list[int]
    start: int
    end: int


@dataclass
class Header:
    """A checked header: the metadata, the tensors in data order, and the byte counts.

    ``header_end`` is 8 + the header's length (where the data section starts), ``body`` the
    data section's length.
    """

    meta: dict[str, Any]
    specs: list[Spec]
    header_end: int
    body: int


def header_length(prefix) -> int:
    """The header's length from a blob's first 8 bytes, within :data:`MAX_HEADER`."""
    raw = bytes(memoryview(prefix)[:8])
    if len(raw) < 8:
        raise MalformedBlobError(f"blob of {len(raw)} bytes is shorter than a safetensors header")
    length = int.from_bytes(raw, "little")
    if length > MAX_HEADER:
        raise MalformedBlobError(f"header claims {length} bytes, over the {MAX_HEADER} a KV header may have")
    return length


def parse_header(head, total: int) -> Header:
    """Check the header in ``head`` (the blob's first 8 + header-length bytes) of a ``total``-byte blob.

    Bounded in time and memory by :data:`MAX_HEADER`, :data:`MAX_DEPTH` and :data:`MAX_TENSORS`
    before anything is built from it, and type-checked before use.

    Raises
    ------
    MalformedBlobError
        If the header is not the format's JSON, a tensor's dtype, shape or offsets are invalid,
        or the tensors do not tile the data section exactly.
    """
    header_len = header_length(head)
    body = total - 8 - header_len
    if body < 0:
        raise MalformedBlobError(f"header claims {header_len} bytes but only {total - 8} follow")
    raw = bytes(memoryview(head)[8 : 8 + header_len])
    if len(raw) != header_len:
        raise MalformedBlobError(f"header is {len(raw)} of its {header_len} bytes: truncated")
    _check_depth(raw)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedBlobError(f"header is not JSON: {str(exc)[:120]}") from None
    if not isinstance(header, dict):
        raise MalformedBlobError("header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise MalformedBlobError("__metadata__ is not a JSON object")
    if len(header) > MAX_TENSORS:
        raise MalformedBlobError(f"header lists {len(header)} tensors, over the {MAX_TENSORS} a KV may have")
    specs = [_spec(name, value, body) for name, value in header.items()]
    covered = 0
    for spec in sorted(specs, key=lambda s: (s.start, s.end)):
        if spec.start != covered:
            raise MalformedBlobError(f"tensors overlap or leave a gap at byte {covered} of the data")
        covered = spec.end
    if covered != body:
        raise MalformedBlobError(f"tensors cover {covered} bytes but the data section has {body}")
    return Header(meta, specs, 8 + header_len, body)


def _check_depth(raw: bytes) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` before parsing it (no recursion on crafted input)."""
    depth = deepest = 0
    for byte in raw:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise MalformedBlobError(f"header nests deeper than {MAX_DEPTH} levels")
        elif byte in b"]}":
            depth -= 1


def _spec(name: str, spec: Any, body: int) -> Spec:
    if not (
        isinstance(spec, dict)
        and isinstance(spec.get("dtype"), str)
        and spec["dtype"] in DTYPES
        and isinstance(spec.get("shape"), list)
        and len(spec["shape"]) <= MAX_RANK
        and all(_is_count(d) for d in spec["shape"])
        and isinstance(spec.get("data_offsets"), list)
        and len(spec["data_offsets"]) == 2
        and all(_is_count(o, body) for o in spec["data_offsets"])
    ):
        raise MalformedBlobError(f"tensor {name[:64]!r}: invalid dtype, shape or data_offsets")
    dtype, shape, (start, end) = DTYPES[spec["dtype"]], spec["shape"], spec["data_offsets"]
    if not start <= end or end - start != math.prod(shape) * dtype.itemsize:
        raise MalformedBlobError(f"tensor {name[:64]!r} spans bytes {start}..{end} of {body}: truncated or malformed")
    return Spec(name, dtype, shape, start, end)


def read(blob) -> Blob:
    """Parse ``blob`` (bytes-like or a 1-D uint8 CPU tensor) into views, checking every bound.

    Raises
    ------
    MalformedBlobError
        As :func:`parse_header`, and if a tensor's items are not aligned in memory.
    """
    data = _as_uint8(blob)
    head = data[: 8 + header_length(data[:8].numpy())].numpy()
    header = parse_header(head, data.numel())
    tensors = {}
    for spec in header.specs:
        offset = header.header_end + spec.start
        if offset % spec.dtype.itemsize:  # a view needs aligned elements (our writer pads the header to 8)
            raise MalformedBlobError(f"tensor {spec.name!r} at byte {offset} is not aligned to its items")
        tensors[spec.name] = data[offset : offset + spec.end - spec.start].view(spec.dtype).reshape(spec.shape)
    return Blob(header.meta, tensors, data, header.header_end)
