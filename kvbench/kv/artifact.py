"""KV artifact: a document's KV cache as safetensors plus the metadata that says what made it.

The artifact is the unit a publisher produces and a reader consumes. It is stored as a
safetensors blob (never pickle) whose tensors are named ``k.{layer}`` and ``v.{layer}``
and whose string metadata carries the model fingerprint, tokenizer hash, dtype, layout,
token-ids hash, length, kvbench version and an XXH3-128 checksum of the whole blob (length
prefix, header with every dtype, shape, offset and metadata value, and the tensor data), so
that a truncated or bit-flipped artifact is caught before it is used, and metadata that does
not describe its tensors is refused as corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from kvbench import __version__
from kvbench.kv import safetensors_blob
from kvbench.kv.checksum import xxh3_128
from kvbench.model.corpus import token_ids_sha256

LAYOUT = "layers x (batch, kv_heads, tokens, head_dim)"
CHECKSUM_KEY = "checksum_xxh3_128"
_CHECKSUM_FIELD = f'"{CHECKSUM_KEY}":"'.encode()  # as json.dumps writes it, before the 32 hex digits
_PLACEHOLDER = b"0" * 32


class ArtifactError(ValueError):
    """Base class for artifacts that cannot be used."""


class ArtifactCorruptError(ArtifactError):
    """The bytes are truncated, unparsable, or fail their checksum."""


class ArtifactMismatchError(ArtifactError):
    """The artifact was made by another model or tokenizer than the reader's."""


@dataclass
class KVArtifact:
    """A document's KV cache with provenance.

    Attributes
    ----------
    keys, values : list of torch.Tensor
        One tensor per layer, each ``(batch, kv_heads, tokens, head_dim)``.
    meta : dict of str to str
        Provenance: ``model_fingerprint``, ``tokenizer_hash``, ``token_ids_hash``,
        ``num_tokens``, ``num_layers``, ``dtype``, ``layout``, ``kvbench_version`` and, once
        serialised, ``checksum_xxh3_128``.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_cache(cls, cache, *, model_fingerprint: str, tokenizer_hash: str, token_ids: torch.Tensor) -> KVArtifact:
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

    def to(self, device: torch.device | str, non_blocking: bool = False, copy: bool = False) -> KVArtifact:
        """The artifact with every tensor on ``device`` (``copy``: new tensors even where they already are)."""
        move = lambda t: t.to(device, non_blocking=non_blocking, copy=copy)
        return KVArtifact([move(k) for k in self.keys], [move(v) for v in self.values], dict(self.meta))

    def copy_(self, other: KVArtifact, non_blocking: bool = False) -> KVArtifact:
        """Copy ``other``'s tensors into this artifact's (same layout; devices may differ); returns self."""
        for dst, src in zip((*self.keys, *self.values), (*other.keys, *other.values)):
            dst.copy_(src, non_blocking=non_blocking)
        return self

    def equals(self, other: KVArtifact) -> bool:
        """Same number of layers, and every tensor the same dtype, shape and bytes (devices may differ)."""
        return len(self.keys) == len(other.keys) and all(
            a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b.to(a.device))
            for a, b in zip((*self.keys, *self.values), (*other.keys, *other.values))
        )

    def to_cache(self, model_config):
        """A fresh ``DynamicCache`` holding these tensors (transformers copies them in), ready for the query."""
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
                    "it was made with another model or tokenizer"
                )

    # -- serialisation -------------------------------------------------------------------

    def to_bytes(self) -> bytearray:
        """Serialise to a safetensors blob whose metadata carries the blob's own checksum.

        Tensors are written ``k.0, v.0, k.1, ...``. ``num_layers``, ``num_tokens``, ``dtype``
        and ``layout`` are taken from the tensors, the rest of ``meta`` as it is. The checksum
        is XXH3-128 over the whole blob with its own 32 hex digits read as zeros, so it covers
        the header too.
        """
        named = [
            (f"{p}.{i}", t) for i, (k, v) in enumerate(zip(self.keys, self.values)) for p, t in (("k", k), ("v", v))
        ]
        meta = dict(
            self.meta,
            num_layers=str(len(self.keys)),
            num_tokens=str(self.num_tokens),
            dtype=str(self.keys[0].dtype).removeprefix("torch."),
            layout=LAYOUT,
            **{CHECKSUM_KEY: _PLACEHOLDER.decode()},
        )
        blob = safetensors_blob.write(named, meta)
        slot = _checksum_slot(blob)
        blob[slot] = xxh3_128([blob]).hex().encode()
        return blob

    @classmethod
    def from_bytes(cls, blob) -> KVArtifact:
        """Parse a safetensors blob without copying, after verifying its checksum and metadata.

        Parameters
        ----------
        blob : bytes-like or torch.Tensor
            The blob, or a 1-D uint8 CPU tensor holding it. The returned tensors are views
            into it (read them, do not write), so a blob in pinned memory stays pinned and
            its layers copy to the GPU at full link speed.

        Raises
        ------
        ArtifactCorruptError
            If the blob is truncated or unparsable, fails its checksum, or its metadata does
            not describe its tensors (a missing key, a non-integer or negative count, a value
            that is not a string, ...).
        """
        try:
            parsed = safetensors_blob.read(blob)
        except safetensors_blob.MalformedBlobError as exc:
            raise ArtifactCorruptError(f"KV artifact is not a readable safetensors blob: {exc}") from None
        meta = parsed.meta  # checked against the header's shapes first: no tensor byte is read for it
        n = _count(meta, "num_layers", minimum=1)
        expected = {f"{p}.{i}" for p in "kv" for i in range(n)}
        if set(parsed.tensors) != expected:
            raise ArtifactCorruptError(
                f"KV artifact metadata num_layers={n} does not match its {len(parsed.tensors)} tensors"
            )
        keys = [parsed.tensors[f"k.{i}"] for i in range(n)]
        values = [parsed.tensors[f"v.{i}"] for i in range(n)]
        _check_tensors(meta, keys + values)
        _verify_checksum(parsed)
        return cls(keys, values, meta)


def _checksum_slot(head: bytearray) -> slice:
    """Where the checksum's 32 hex digits sit in a blob holding its field (the header comes first)."""
    start = head.find(_CHECKSUM_FIELD) + len(_CHECKSUM_FIELD)
    return slice(start, start + len(_PLACEHOLDER))


def _verify_checksum(parsed: safetensors_blob.Blob) -> None:
    """XXH3-128 of the blob, its own digits read as zeros, must equal the stored digits."""
    head = bytearray(parsed.data[: parsed.header_end].numpy().tobytes())  # small: the header only
    stored = parsed.meta.get(CHECKSUM_KEY)
    if head.count(_CHECKSUM_FIELD) != 1 or not isinstance(stored, str):
        raise ArtifactCorruptError(f"KV artifact header does not hold exactly one {CHECKSUM_KEY}")
    slot = _checksum_slot(head)
    head[slot] = _PLACEHOLDER
    actual = xxh3_128([head, parsed.data[parsed.header_end :]]).hex()
    if stored != actual:
        raise ArtifactCorruptError(f"KV artifact checksum mismatch: metadata says {stored}, blob hashes to {actual}")


def _count(meta: dict, key: str, minimum: int) -> int:
    """A metadata count written as decimal digits, at least ``minimum``."""
    text = meta.get(key)
    if not (isinstance(text, str) and text.isascii() and text.isdigit()) or int(text) < minimum:
        raise ArtifactCorruptError(f"KV artifact metadata {key}={text!r} is invalid: expected an integer >= {minimum}")
    return int(text)


def _check_tensors(meta: dict, tensors: list[torch.Tensor]) -> None:
    """Every metadata value is a string, and the metadata describes the tensors' layout, dtype and length."""
    odd = {k: v for k, v in meta.items() if not isinstance(v, str)}
    if odd:
        raise ArtifactCorruptError(f"KV artifact metadata values must be strings: {odd}")
    if meta.get("layout") != LAYOUT:
        raise ArtifactCorruptError(f"KV artifact layout {meta.get('layout')!r} is not {LAYOUT!r}")
    tokens = _count(meta, "num_tokens", minimum=1)
    for t in tensors:
        if t.dim() != 4 or t.shape[-2] != tokens or str(t.dtype).removeprefix("torch.") != meta.get("dtype"):
            raise ArtifactCorruptError(
                f"KV artifact tensor of shape {tuple(t.shape)} and {t.dtype} does not match its metadata "
                f"({LAYOUT}, num_tokens={tokens}, dtype={meta.get('dtype')})"
            )
