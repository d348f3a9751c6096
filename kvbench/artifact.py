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
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import xxhash
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

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

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "KVArtifact":
        """Copy of the artifact with every tensor on ``device``."""
        move = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return KVArtifact([move(k) for k in self.keys], [move(v) for v in self.values], dict(self.meta))

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

    def to_bytes(self) -> bytes:
        """Serialise to a safetensors blob whose metadata carries the payload checksum."""
        tensors = {}
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            tensors[f"k.{i}"] = k.detach().contiguous().cpu()
            tensors[f"v.{i}"] = v.detach().contiguous().cpu()
        meta = dict(self.meta, payload_xxh3_128=payload_checksum(self.keys, self.values))
        return st_save(tensors, metadata=meta)

    @classmethod
    def from_bytes(cls, blob: bytes | bytearray | memoryview, verify: bool = True) -> "KVArtifact":
        """Parse a safetensors blob; with ``verify`` the payload checksum must match.

        Raises
        ------
        ArtifactCorruptError
            If the blob is truncated, unparsable, incomplete, or fails its checksum.
        """
        try:
            meta = _read_metadata(blob)
            tensors = st_load(blob if isinstance(blob, bytes) else bytes(blob))
        except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
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


def _read_metadata(blob) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (8-byte little-endian header length, JSON)."""
    if len(blob) < 8:
        raise ValueError(f"blob of {len(blob)} bytes is shorter than a safetensors header")
    header_len = int.from_bytes(blob[:8], "little")
    if header_len > len(blob) - 8:
        raise ValueError(f"header claims {header_len} bytes but only {len(blob) - 8} follow")
    return json.loads(bytes(blob[8:8 + header_len]).decode("utf-8")).get("__metadata__", {}) or {}
