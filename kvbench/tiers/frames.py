"""A stored object read as a stream: its header first, then its payload, chunk by chunk, where it belongs.

Two kinds of object stream: the artifact itself (codec ``identity``, safetensors format 2:
the payload is the tensors' bytes, which go straight into the reader's KV pool, layer by
layer) and a GPU codec's frame (version 3: the payload is the compressed bytes, which go to
one device buffer and are decoded there). Host codecs (zstd, LZ4, ...) decode on the CPU from
the whole blob and take the serial path; :func:`streamable` says which is which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from kvbench.codecs import container
from kvbench.kv import safetensors_blob
from kvbench.kv.artifact import KVArtifact, StoredLayout
from kvbench.measure.links import ALIGN, aligned_buffer
from kvbench.tiers.stream import Fetch, Loader, StreamStats, byte_sink


def streamable(codec) -> bool:
    """The artifact's own format, or a codec that decodes on the device from one payload."""
    return codec.name == "identity" or hasattr(codec, "decompress_device")


def payload_layout(codec, blob: memoryview) -> tuple[int, int]:
    """Where a streamable object's payload starts, and its chunk size (a store cuts its values there)."""
    if codec.name == "identity":
        layout = StoredLayout.check(blob[: 8 + safetensors_blob.header_length(blob)], len(blob))
        return layout.header_end, layout.chunks.chunk_bytes
    frame = container.read_frame(blob, len(blob), codec.name)
    return frame.start, frame.chunks.chunk_bytes


HEAD_BYTES = 64 << 10  # one request that holds the header of any KV up to a few hundred layers


def _small(fetch: Fetch, offset: int, nbytes: int) -> bytes:
    """A few bytes of the object (a header), through the tier's own fetch."""
    buf = aligned_buffer(nbytes + 2 * ALIGN)
    at = fetch(offset, nbytes, buf)
    return bytes(buf[at : at + nbytes])


def _head(fetch: Fetch, size: int, header_end: Callable[[bytes], int]) -> bytes:
    """The object's first bytes through its header: one request (a round trip on a remote tier), two when
    the header is longer than :data:`HEAD_BYTES`."""
    head = _small(fetch, 0, min(size, HEAD_BYTES))
    end = header_end(head)
    return head if end <= len(head) else _small(fetch, 0, min(end, size))


@dataclass
class Streamed:
    """A finished streaming load: its statistics, and how to turn the device bytes into the KV.

    ``finish()`` runs on the device after the load (a GPU codec's decode); the tier times it
    as its own stage.
    """

    stats: StreamStats
    finish: Callable[[], KVArtifact]
    h2d_bytes: int


def _fits(dest: KVArtifact, layout: StoredLayout) -> list[tuple[int, torch.Tensor]] | None:
    """``(payload offset, tensor)`` of the reader's pool in the layout's data order, if the pool matches it."""
    n = len(layout.specs) // 2
    if len(dest.keys) != n:
        return None
    named = {f"{p}.{i}": t for i in range(n) for p, t in (("k", dest.keys[i]), ("v", dest.values[i]))}
    out = []
    for spec in layout.specs:
        t = named[spec.name]
        if list(t.shape) != spec.shape or t.dtype != spec.dtype or not t.is_contiguous():
            return None
        out.append((spec.start, t))
    return out


def stream_artifact(
    fetch: Fetch,
    size: int,
    device: torch.device,
    dest: KVArtifact | None,
    loader: Callable[[int], Loader],
) -> Streamed:
    """Stream a format-2 artifact of ``size`` bytes into ``dest`` (the reader's pool) or new device tensors."""
    head = _head(fetch, size, lambda first: 8 + safetensors_blob.header_length(first))
    layout = StoredLayout.check(head, size)
    places = _fits(dest, layout) if dest is not None else None
    flat = None
    if places is None:
        flat = torch.empty(layout.chunks.payload_bytes, dtype=torch.uint8, device=device)
        places = [(0, flat)]
    stats = loader(layout.chunks.chunk_bytes).load(fetch, layout.header_end, layout.chunks, byte_sink(places))

    def finish() -> KVArtifact:
        if flat is not None:
            return KVArtifact.from_layout(layout, flat)
        assert dest is not None
        dest.meta = dict(layout.meta)
        return dest

    return Streamed(stats, finish, layout.chunks.payload_bytes)


def stream_frame(
    codec,
    fetch: Fetch,
    size: int,
    device: torch.device,
    dest: KVArtifact | None,
    loader: Callable[[int], Loader],
    buffers: dict[int, torch.Tensor],
) -> Streamed:
    """Stream a GPU codec's frame: the compressed payload to a device buffer (``buffers``, reused by size)."""
    head = _head(fetch, size, lambda first: 10 + min(int.from_bytes(first[6:10], "little"), container.MAX_HEADER))
    frame = container.read_frame(head, size, codec.name)
    nbytes = frame.end - frame.start
    if nbytes not in buffers:
        buffers.clear()  # one payload buffer per tier: the last size read
        buffers[nbytes] = torch.empty(nbytes, dtype=torch.uint8, device=device)
    payload = buffers[nbytes]
    stats = loader(frame.chunks.chunk_bytes).load(fetch, frame.start, frame.chunks, byte_sink([(0, payload)]))

    def finish() -> KVArtifact:
        kv = codec.decompress_device(frame.header, payload, device)
        if dest is None:
            return kv
        dest.copy_(kv, non_blocking=True)
        dest.meta = dict(kv.meta)
        return dest

    return Streamed(stats, finish, nbytes)
