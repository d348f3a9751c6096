"""Chunk digests: a stored object's payload cut into fixed-size chunks, each with its own XXH3-64.

A reader that verifies chunk by chunk can check each chunk the moment it lands, in parallel,
and copy it on while later chunks are still in flight; one digest over the whole payload
would make every byte wait for the last. The list of digests sits in the object's header,
and the header carries a digest of its own (over the header with that digest's digits read
as zeros), so a flipped byte anywhere, a missing chunk or two chunks swapped are all caught
before a tensor is used. XXH3 catches accidents, not tampering: it is not a MAC.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import xxhash

CHUNK_BYTES = 16 << 20  # large enough that hashing and copying run at memory speed, small enough to pipeline
DIGEST_HEX = 16  # one XXH3-64 as hex
MIN_CHUNK, MAX_CHUNK = 1 << 12, 1 << 30
HEADER_DIGEST_HEX = 32  # the header's own XXH3-128
HEADER_PLACEHOLDER = "0" * HEADER_DIGEST_HEX


class ChunkError(ValueError):
    """A chunk list that cannot describe its payload, or a chunk that fails its digest."""


def xxh3_64(data) -> int:
    """XXH3-64 of a bytes-like object, hashed in place (the GIL is released while it runs)."""
    return xxhash.xxh3_64_intdigest(data)


def header_digest(header: bytes) -> str:
    """XXH3-128 (32 hex digits) of header bytes whose own digest field holds the placeholder."""
    return xxhash.xxh3_128_hexdigest(header)


@dataclass(frozen=True)
class ChunkList:
    """The digests of ``payload_bytes`` bytes cut into chunks of ``chunk_bytes`` (the last may be short)."""

    chunk_bytes: int
    payload_bytes: int
    digests: tuple[int, ...]

    def __post_init__(self):
        if not MIN_CHUNK <= self.chunk_bytes <= MAX_CHUNK:
            raise ChunkError(f"chunk size {self.chunk_bytes} is outside {MIN_CHUNK}..{MAX_CHUNK}")
        expected = -(-self.payload_bytes // self.chunk_bytes)
        if self.payload_bytes < 0 or len(self.digests) != expected:
            raise ChunkError(
                f"{len(self.digests)} chunk digests for {self.payload_bytes} bytes in chunks of "
                f"{self.chunk_bytes}: expected {expected}"
            )

    @classmethod
    def of(cls, payload, chunk_bytes: int = CHUNK_BYTES, threads: int = 1) -> ChunkList:
        """Digest ``payload`` (bytes-like, ``(nbytes,)``) chunk by chunk, on ``threads`` threads."""
        view = memoryview(payload).cast("B")
        spans = list(_spans(view.nbytes, chunk_bytes))
        if threads > 1 and len(spans) > 1:
            with ThreadPoolExecutor(threads) as pool:
                digests = list(pool.map(lambda s: xxh3_64(view[s[0] : s[1]]), spans))
        else:
            digests = [xxh3_64(view[a:b]) for a, b in spans]
        return cls(chunk_bytes, view.nbytes, tuple(digests))

    @classmethod
    def parse(cls, chunk_bytes: object, payload_bytes: int, text: object) -> ChunkList:
        """The list as a header stores it: the chunk size and the digests as one hex string."""
        if not isinstance(text, str) or len(text) % DIGEST_HEX or not _is_hex(text):
            raise ChunkError("chunk digests are not a string of 16-digit hex numbers")
        if not isinstance(chunk_bytes, int) or isinstance(chunk_bytes, bool):
            raise ChunkError(f"chunk size {chunk_bytes!r} is not an integer")
        digests = tuple(int(text[i : i + DIGEST_HEX], 16) for i in range(0, len(text), DIGEST_HEX))
        return cls(chunk_bytes, payload_bytes, digests)

    def text(self) -> str:
        """The digests as one hex string, 16 digits each, in chunk order."""
        return "".join(f"{d:016x}" for d in self.digests)

    def spans(self) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of every chunk within the payload, in order."""
        return _spans(self.payload_bytes, self.chunk_bytes)

    def check(self, index: int, chunk) -> None:
        """Raise :class:`ChunkError` unless ``chunk`` (bytes-like) is chunk ``index`` as written."""
        if xxh3_64(chunk) != self.digests[index]:
            raise ChunkError(f"chunk {index} of {len(self.digests)} fails its digest: corrupt, missing or out of order")

    def check_all(self, payload, threads: int = 1) -> None:
        """Verify every chunk of ``payload`` (bytes-like), on ``threads`` threads."""
        found = ChunkList.of(payload, self.chunk_bytes, threads)
        if found.payload_bytes != self.payload_bytes:
            raise ChunkError(f"payload is {found.payload_bytes} bytes, its header says {self.payload_bytes}")
        for index, (want, got) in enumerate(zip(self.digests, found.digests)):
            if want != got:
                raise ChunkError(
                    f"chunk {index} of {len(self.digests)} fails its digest: corrupt, missing or out of order"
                )


def _spans(nbytes: int, chunk_bytes: int) -> Iterator[tuple[int, int]]:
    return ((a, min(a + chunk_bytes, nbytes)) for a in range(0, nbytes, chunk_bytes))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
