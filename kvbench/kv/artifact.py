"""KV artifact: a document's KV cache as safetensors plus the metadata that says what made it.

The artifact is the unit a publisher produces and a reader consumes. It is stored as a
safetensors blob (never pickle) whose tensors are named ``k.{layer}`` and ``v.{layer}``
and whose string metadata carries the model fingerprint, tokenizer hash, dtype, layout,
token-ids hash, length and kvbench version. Format 2 cuts the data section into fixed-size
chunks (:mod:`kvbench.kv.chunks`): the header lists an XXH3-64 per chunk and carries an
XXH3-128 of itself (every dtype, shape, offset, metadata value and chunk digest), so a reader
can verify chunks in parallel as they land, and a truncated, bit-flipped, reordered or
incomplete artifact is caught before it is used. Metadata that does not describe its tensors
is refused as corrupt; so is format 1 (one checksum over the whole blob), by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from kvbench import __version__
from kvbench.kv import safetensors_blob
from kvbench.kv.chunks import (
    CHUNK_BYTES,
    DIGEST_HEX,
    HEADER_DIGEST_HEX,
    HEADER_PLACEHOLDER,
    ChunkError,
    ChunkList,
    header_digest,
)
from kvbench.model.corpus import token_ids_sha256

LAYOUT = "layers x (batch, kv_heads, tokens, head_dim)"
FORMAT_VERSION = "2"  # 1: one XXH3-128 over the whole blob; 2: a digest per chunk and one over the header
CHUNKS_KEY = "chunk_xxh3_64"
HEADER_DIGEST_KEY = "header_xxh3_128"
LEGACY_CHECKSUM_KEY = "checksum_xxh3_128"  # format 1's


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

    def to_bytes(self, chunk_bytes: int = CHUNK_BYTES, threads: int = 1) -> bytearray:
        """Serialise to a safetensors blob (format 2) whose header carries its chunk digests and its own digest.

        Tensors are written ``k.0, v.0, k.1, ...``. ``num_layers``, ``num_tokens``, ``dtype``
        and ``layout`` are taken from the tensors, the rest of ``meta`` as it is. The data
        section is digested in chunks of ``chunk_bytes`` (XXH3-64 each, on ``threads``
        threads); the header, digests included, by XXH3-128 with its own digits read as zeros.
        """
        named = [
            (f"{p}.{i}", t) for i, (k, v) in enumerate(zip(self.keys, self.values)) for p, t in (("k", k), ("v", v))
        ]
        count = -(-self.nbytes // chunk_bytes)
        meta = {k: v for k, v in self.meta.items() if k != LEGACY_CHECKSUM_KEY}
        meta.update(
            num_layers=str(len(self.keys)),
            num_tokens=str(self.num_tokens),
            dtype=str(self.keys[0].dtype).removeprefix("torch."),
            layout=LAYOUT,
            format_version=FORMAT_VERSION,
            chunk_bytes=str(chunk_bytes),
            **{CHUNKS_KEY: "0" * DIGEST_HEX * count, HEADER_DIGEST_KEY: HEADER_PLACEHOLDER},
        )
        blob = safetensors_blob.write(named, meta)
        header_end = 8 + safetensors_blob.header_length(blob)
        chunks = ChunkList.of(memoryview(blob)[header_end:], chunk_bytes, threads)
        blob[_slot(blob, header_end, CHUNKS_KEY, DIGEST_HEX * count)] = chunks.text().encode()
        blob[_slot(blob, header_end, HEADER_DIGEST_KEY, HEADER_DIGEST_HEX)] = header_digest(
            bytes(blob[:header_end])
        ).encode()
        return blob

    @classmethod
    def from_bytes(cls, blob, threads: int = 1) -> KVArtifact:
        """Parse a blob without copying, after verifying its header, every chunk and the metadata.

        Parameters
        ----------
        blob : bytes-like or torch.Tensor
            The blob, or a 1-D uint8 CPU tensor holding it. The returned tensors are views
            into it (read them, do not write), so a blob in pinned memory stays pinned and
            its layers copy to the GPU at full link speed.
        threads : int
            Threads verifying the chunk digests.

        Raises
        ------
        ArtifactCorruptError
            If the blob is truncated or unparsable, its header or a chunk fails its digest, a
            chunk is missing or out of place, or the metadata does not describe the tensors.
        """
        try:
            parsed = safetensors_blob.read(blob)
        except safetensors_blob.MalformedBlobError as exc:
            raise ArtifactCorruptError(f"KV artifact is not a readable safetensors blob: {exc}") from None
        head = parsed.data[: parsed.header_end].numpy()
        layout = StoredLayout.check(head, parsed.data.numel())
        try:
            layout.chunks.check_all(parsed.data[parsed.header_end :].numpy(), threads)
        except ChunkError as exc:
            raise ArtifactCorruptError(f"KV artifact {exc}") from None
        return cls.from_layout(layout, parsed.data[parsed.header_end :])

    @classmethod
    def from_layout(cls, layout: StoredLayout, data: torch.Tensor) -> KVArtifact:
        """The artifact whose verified data section is ``data`` (``(nbytes,)`` uint8, any device): views into it."""
        views = {s.name: data[s.start : s.end].view(s.dtype).reshape(s.shape) for s in layout.specs}
        n = len(layout.specs) // 2
        return cls([views[f"k.{i}"] for i in range(n)], [views[f"v.{i}"] for i in range(n)], dict(layout.meta))


@dataclass
class StoredLayout:
    """A stored artifact's checked header: provenance, tensors (data order), chunk digests of its data.

    A streaming reader checks the header first (a few KB), then each chunk of the data section
    as it lands (:attr:`chunks`), then builds the tensors where the chunks went
    (:meth:`KVArtifact.from_layout`).
    """

    meta: dict[str, str]
    specs: list[safetensors_blob.Spec]
    header_end: int
    chunks: ChunkList

    @classmethod
    def check(cls, head, total: int) -> StoredLayout:
        """Verify the header in ``head`` (the blob's first ``header_end`` bytes) of a ``total``-byte blob.

        Raises
        ------
        ArtifactCorruptError
            If the header is malformed, fails its digest, is of another format version, or its
            metadata does not describe its tensors.
        """
        try:
            header = safetensors_blob.parse_header(head, total)
        except safetensors_blob.MalformedBlobError as exc:
            raise ArtifactCorruptError(f"KV artifact is not a readable safetensors blob: {exc}") from None
        meta = header.meta
        _check_version(meta)
        raw = bytearray(memoryview(head)[: header.header_end])
        if raw.count(_field(HEADER_DIGEST_KEY)) != 1 or raw.count(_field(CHUNKS_KEY)) != 1:
            raise ArtifactCorruptError(
                f"KV artifact header does not hold exactly one {HEADER_DIGEST_KEY} and {CHUNKS_KEY}"
            )
        stored = meta.get(HEADER_DIGEST_KEY)
        raw[_slot(raw, header.header_end, HEADER_DIGEST_KEY, HEADER_DIGEST_HEX)] = HEADER_PLACEHOLDER.encode()
        if stored != header_digest(bytes(raw)):
            raise ArtifactCorruptError("KV artifact header fails its digest: the header or its chunk list is corrupt")
        n = _count(meta, "num_layers", minimum=1)
        names = {s.name for s in header.specs}
        if len(names) != 2 * n or names != {f"{p}.{i}" for p in "kv" for i in range(n)}:
            raise ArtifactCorruptError(f"KV artifact metadata num_layers={n} does not match its {len(names)} tensors")
        _check_tensors(meta, header.specs)
        try:
            chunks = ChunkList.parse(_count(meta, "chunk_bytes", 1), header.body, meta.get(CHUNKS_KEY))
        except ChunkError as exc:
            raise ArtifactCorruptError(f"KV artifact {exc}") from None
        return cls(meta, sorted(header.specs, key=lambda s: s.start), header.header_end, chunks)


def _check_version(meta: dict) -> None:
    version = meta.get("format_version")
    if version == FORMAT_VERSION:
        return
    if version is None and LEGACY_CHECKSUM_KEY in meta:
        raise ArtifactCorruptError(
            "KV artifact is format 1 (one checksum over the whole blob), which this kvbench no longer reads: "
            "publish it again"
        )
    raise ArtifactCorruptError(f"KV artifact format_version={str(version)[:16]!r} is not {FORMAT_VERSION!r}")


def _field(key: str) -> bytes:
    return f'"{key}":"'.encode()  # as json.dumps writes a metadata key, before its value


def _slot(head, header_end: int, key: str, width: int) -> slice:
    """Where ``key``'s value of ``width`` characters sits in the header (which ends at ``header_end``)."""
    start = bytes(memoryview(head)[:header_end]).find(_field(key)) + len(_field(key))
    return slice(start, start + width)


def _count(meta: dict, key: str, minimum: int) -> int:
    """A metadata count written as decimal digits, at least ``minimum``."""
    text = meta.get(key)
    if not (isinstance(text, str) and text.isascii() and text.isdigit()) or int(text) < minimum:
        raise ArtifactCorruptError(f"KV artifact metadata {key}={text!r} is invalid: expected an integer >= {minimum}")
    return int(text)


def _check_tensors(meta: dict, specs: list[safetensors_blob.Spec]) -> None:
    """Every metadata value is a string, and the metadata describes the tensors' layout, dtype and length."""
    odd = {k: v for k, v in meta.items() if not isinstance(v, str)}
    if odd:
        raise ArtifactCorruptError(f"KV artifact metadata values must be strings: {odd}")
    if meta.get("layout") != LAYOUT:
        raise ArtifactCorruptError(f"KV artifact layout {meta.get('layout')!r} is not {LAYOUT!r}")
    tokens = _count(meta, "num_tokens", minimum=1)
    for t in specs:
        if len(t.shape) != 4 or t.shape[-2] != tokens or str(t.dtype).removeprefix("torch.") != meta.get("dtype"):
            raise ArtifactCorruptError(
                f"KV artifact tensor of shape {tuple(t.shape)} and {t.dtype} does not match its metadata "
                f"({LAYOUT}, num_tokens={tokens}, dtype={meta.get('dtype')})"
            )
