"""KV artifact: a document's KV cache as safetensors plus the metadata that says what made it.

The artifact is the unit a publisher produces and a reader consumes. It is stored as a
safetensors blob (never pickle) whose tensors are named ``k.{layer}`` and ``v.{layer}``
and whose string metadata carries the model fingerprint, tokenizer hash, dtype, layout,
token-ids hash, length, kvbench version and an XXH3-128 checksum of the tensor payload, so that a
truncated or bit-flipped artifact is caught before it is used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import xxhash

from kvbench import __version__
from kvbench.atomic import atomic_write

LAYOUT = "layers x (batch, kv_heads, tokens, head_dim)"


class ArtifactError(ValueError):
    """Base class for artifacts that cannot be used."""


class ArtifactCorruptError(ArtifactError):
    """The bytes are truncated, unparsable, or fail their checksum."""


class ArtifactMismatchError(ArtifactError):
    """The artifact was made by another model or tokenizer than the reader's."""


def payload_checksum(keys: list[torch.Tensor], values: list[torch.Tensor]) -> str:
    """XXH3-128 over the raw bytes of every tensor, layer by layer, keys before values.

    A corruption check, not a signature: XXH3 runs at memory speed (tens of GB/s) where
    SHA-256 manages ~2 GB/s, which would dominate reading a 4.5 GiB artifact.
    """
    digest = xxhash.xxh3_128()
    for k, v in zip(keys, values):
        for t in (k, v):
            digest.update(t.detach().contiguous().cpu().view(torch.uint8).numpy())  # buffer, no copy
    return digest.hexdigest()


def token_ids_sha256(token_ids: list[int] | torch.Tensor) -> str:
    """Hash of a token-id sequence (int64 little-endian), used as the document hash."""
    ids = torch.as_tensor(token_ids, dtype=torch.int64).flatten().cpu()
    return hashlib.sha256(ids.numpy().tobytes()).hexdigest()


@dataclass
class KVArtifact:
    """A document's KV cache with provenance.

    Attributes
    ----------
    keys, values : list of torch.Tensor
        One tensor per layer, each ``(batch, kv_heads, tokens, head_dim)``.
    meta : dict of str to str
        Provenance: ``model_fingerprint``, ``tokenizer_hash``, ``token_ids_hash``,
        ``num_tokens``, ``dtype``, ``layout``, ``kvbench_version`` and, once serialised,
        ``payload_xxh3_128``.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_cache(cls, cache, *, model_fingerprint: str, tokenizer_hash: str,
                   token_ids: torch.Tensor) -> "KVArtifact":
        """Snapshot a transformers ``DynamicCache`` (cloned, so later decoding cannot alter it).

        Parameters
        ----------
        cache : transformers.DynamicCache
            Cache after prefilling the document; each layer holds ``(1, kv_heads, L, head_dim)``.
        token_ids : torch.Tensor
            ``(L,)`` or ``(1, L)`` document token ids the cache was built from.
        """
        keys = [layer.keys.detach().clone() for layer in cache.layers]
        values = [layer.values.detach().clone() for layer in cache.layers]
        meta = {
            "model_fingerprint": model_fingerprint,
            "tokenizer_hash": tokenizer_hash,
            "token_ids_hash": token_ids_sha256(token_ids),
            "num_tokens": str(keys[0].shape[-2]),
            "num_layers": str(len(keys)),
            "dtype": str(keys[0].dtype).removeprefix("torch."),
            "layout": LAYOUT,
            "kvbench_version": __version__,
        }
        return cls(keys, values, meta)

    @property
    def num_tokens(self) -> int:
        return int(self.keys[0].shape[-2])

    @property
    def nbytes(self) -> int:
        """Bytes of the tensor payload: 2 x layers x kv_heads x head_dim x itemsize x tokens."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    @property
    def device(self) -> torch.device:
        return self.keys[0].device

    def to(self, device: torch.device | str, non_blocking: bool = False, copy: bool = False) -> "KVArtifact":
        """The artifact with every tensor on ``device`` (``copy``: new tensors even where they already are)."""
        move = lambda t: t.to(device, non_blocking=non_blocking, copy=copy)  # noqa: E731
        return KVArtifact([move(k) for k in self.keys], [move(v) for v in self.values], dict(self.meta))

    def copy_(self, other: "KVArtifact", non_blocking: bool = False) -> "KVArtifact":
        """Copy ``other``'s tensors into this artifact's (same layout; devices may differ); returns self."""
        for dst, src in zip((*self.keys, *self.values), (*other.keys, *other.values)):
            dst.copy_(src, non_blocking=non_blocking)
        return self

    def equals(self, other: "KVArtifact") -> bool:
        """Same number of layers, and every tensor the same dtype, shape and bytes (devices may differ)."""
        return len(self.keys) == len(other.keys) and all(
            a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b.to(a.device))
            for a, b in zip((*self.keys, *self.values), (*other.keys, *other.values)))

    def to_cache(self, model_config):
        """A fresh ``DynamicCache`` holding these tensors (no copy), ready for the query."""
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=list(zip(self.keys, self.values)), config=model_config)

    def check_compatible(self, *, model_fingerprint: str, tokenizer_hash: str) -> None:
        """Refuse an artifact made with another model or tokenizer.

        Raises
        ------
        ArtifactMismatchError
            Naming the field that differs and both values.
        """
        for name, expected in (("model_fingerprint", model_fingerprint), ("tokenizer_hash", tokenizer_hash)):
            found = self.meta.get(name)
            if found != expected:
                raise ArtifactMismatchError(
                    f"KV artifact {name} is {found!r} but the reader's is {expected!r}: "
                    "it was made with another model or tokenizer")

    # -- serialisation -------------------------------------------------------------------

    def to_bytes(self) -> bytearray:
        """Serialise to a safetensors blob whose metadata carries the payload checksum.

        Written straight into one buffer, each tensor copied once (device to host where it
        lives on a GPU): ``safetensors.torch.save`` makes several whole copies and ran at
        0.3 GB/s on a 4.8 GB KV. The layout is safetensors' own (the tests read it back with
        the library); tensors follow the checksum's order, so the checksum streams over the
        data section in one pass.
        """
        named = [(f"{p}.{i}", t) for i, (k, v) in enumerate(zip(self.keys, self.values)) for p, t in (("k", k), ("v", v))]
        layout, offset = {}, 0
        for name, t in named:
            n = t.numel() * t.element_size()
            layout[name] = {"dtype": _DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + n]}
            offset += n

        def header(checksum: str) -> bytes:
            text = json.dumps({"__metadata__": dict(self.meta, payload_xxh3_128=checksum), **layout},
                              separators=(",", ":")).encode()
            return text + b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes

        start = 8 + len(header("0" * 32))  # an XXH3-128 hex digest is always 32 characters
        blob = bytearray(start + offset)
        data = torch.frombuffer(blob, dtype=torch.uint8) if blob else torch.empty(0, dtype=torch.uint8)
        for name, t in named:
            lo, hi = layout[name]["data_offsets"]
            data[start + lo:start + hi].copy_(t.detach().contiguous().reshape(-1).view(torch.uint8))
        final = header(xxhash.xxh3_128(memoryview(blob)[start:]).hexdigest())
        blob[:start] = (start - 8).to_bytes(8, "little") + final
        return blob

    @classmethod
    def from_bytes(cls, blob, verify: bool = True) -> "KVArtifact":
        """Parse a safetensors blob without copying; with ``verify`` the payload checksum must match.

        Parameters
        ----------
        blob : bytes-like or torch.Tensor
            The blob, or a 1-D uint8 CPU tensor holding it. The returned tensors are views
            into it (read them, do not write), so a blob in pinned memory stays pinned and
            its layers copy to the GPU at full link speed.

        Raises
        ------
        ArtifactCorruptError
            If the blob is truncated, unparsable, incomplete, or fails its checksum.
        """
        try:
            meta, tensors = _read_safetensors(blob)
        except (ValueError, KeyError, TypeError, RuntimeError, UnicodeDecodeError) as exc:
            raise ArtifactCorruptError(f"KV artifact is not a readable safetensors blob: {exc}") from exc
        n = int(meta.get("num_layers", "-1"))
        if n < 1 or any(f"{p}.{i}" not in tensors for p in "kv" for i in range(n)):
            raise ArtifactCorruptError(f"KV artifact is incomplete: expected {n} layers of k/v tensors")
        keys = [tensors[f"k.{i}"] for i in range(n)]
        values = [tensors[f"v.{i}"] for i in range(n)]
        if verify:
            expected = meta.get("payload_xxh3_128")
            actual = payload_checksum(keys, values)
            if expected != actual:
                raise ArtifactCorruptError(
                    f"KV artifact checksum mismatch: metadata says {expected}, payload hashes to {actual}")
        return cls(keys, values, meta)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (:func:`kvbench.atomic.atomic_write`): no partial artifact remains."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = True) -> "KVArtifact":
        """Read and verify an artifact written by :meth:`save`."""
        return cls.from_bytes(Path(path).read_bytes(), verify=verify)


_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
           "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64,
           "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


def _read_safetensors(blob) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and zero-copy tensor views of a safetensors blob.

    ``safetensors.torch.load`` copies every tensor out of the bytes (about 2.5 GB/s), which
    dominated every tier read; the format is an 8-byte little-endian header length, a JSON
    header of ``{name: {dtype, shape, data_offsets}}``, then the data, so views need only
    bounds checks. The checksum then covers whatever the views point at.
    """
    if isinstance(blob, torch.Tensor):
        data = blob.reshape(-1).view(torch.uint8)
    else:
        with warnings.catch_warnings():  # a read-only buffer (bytes) gives read-only views, by contract
            warnings.filterwarnings("ignore", message=".*not writable.*")
            data = torch.frombuffer(blob, dtype=torch.uint8) if len(blob) else torch.empty(0, dtype=torch.uint8)
    if data.numel() < 8:
        raise ValueError(f"blob of {data.numel()} bytes is shorter than a safetensors header")
    header_len = int.from_bytes(data[:8].numpy().tobytes(), "little")
    body = data.numel() - 8 - header_len
    if body < 0:
        raise ValueError(f"header claims {header_len} bytes but only {data.numel() - 8} follow")
    header = json.loads(data[8:8 + header_len].numpy().tobytes().decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, spec in header.items():
        dtype, shape, (start, end) = _DTYPES[spec["dtype"]], spec["shape"], spec["data_offsets"]
        if not 0 <= start <= end <= body or end - start != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"tensor {name} spans bytes {start}..{end} of {body}: truncated or malformed")
        offset = 8 + header_len + start
        tensors[name] = data[offset:offset + end - start].view(dtype).reshape(shape)
    return meta, tensors
