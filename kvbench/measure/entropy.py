"""Empirical entropy of KV tensors: what order-0 and context-model coders can reach.

A symbol is one KV value's bit pattern (16 bits for bf16/fp16, 32 for fp32). Three order-0
entropies, each in bits per value, computed from the empirical distribution of one artifact
(the row columns ``bound_*_ratio`` keep their first name; they are entropies of one model
each, not bounds on every coder: a coder that uses context, as LZ matches and the predictive
codecs do, can beat them):

* ``order0``: H(X) over all values, keys and values together -- the best any coder with a
  single fixed symbol model (Huffman, rANS) can do;
* ``planes``: the sum over byte planes of H(plane byte) -- the best for a coder that codes
  each byte plane with its own order-0 model (byte-plane + entropy coder);
* ``channel``: H(X | kind, channel), with the context being keys or values and the
  head_dim channel -- the best for order-0 models switched per channel. KV has strong
  per-channel structure (key outlier channels), so this is the tightest of the three.

Empirical entropies omit the cost of describing the model, so for small tensors they sit a
little below what a real coder needs; for the megabytes of a document's KV that cost is
negligible.

Two context entropies (:func:`context_entropy`, 16-bit values only) estimate what a coder
gains from the neighbours a decoder has already seen. Each value's high byte (sign and
exponent) is coded given its kind (keys or values), its channel and the high byte of one
neighbour: the same channel of the previous token (``prev_token``), or the same head, token
and channel of the previous layer (``prev_layer``); its low byte given the kind, the channel
and its own high byte. By the chain rule the same factoring without a neighbour is exactly
``channel``, so the two differ only by what the neighbour tells about the high byte. Plug-in
estimates of conditional entropy fall below the truth when contexts are many and samples
few; these carry the Miller-Madow correction, (occupied cells - occupied contexts) /
(2 N ln 2) bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from kvbench.kv.artifact import KVArtifact

_DENSE_LIMIT = 1 << 27  # joint alphabets up to this size are histogrammed with bincount


@dataclass
class EntropyBounds:
    """Bits per value of the three bounds, and the value width they are measured against."""

    value_bits: int
    order0: float
    planes: float
    channel: float

    def ratios(self) -> dict[str, float]:
        """``value_bits / bound``: the compression ratio each bound allows."""
        return {name: self.value_bits / max(getattr(self, name), 1e-12) for name in ("order0", "planes", "channel")}


def entropy_from_counts(counts: np.ndarray) -> float:
    """Shannon entropy in bits of the empirical distribution given by ``counts`` (zeros ignored)."""
    counts = counts[counts > 0].astype(np.float64)
    total = counts.sum()
    return float(np.log2(total) - (counts * np.log2(counts)).sum() / total)


def conditional_entropy(context: np.ndarray, symbols: np.ndarray, alphabet: int, miller_madow: bool = False) -> float:
    """H(symbol | context) in bits from ``(n,)`` int64 contexts and ``(n,)`` int64 symbols in ``[0, alphabet)``;
    ``miller_madow`` adds (occupied cells - occupied contexts) / (2 n ln 2) bits."""
    joint = context * alphabet + symbols
    size = int(joint.max()) + 1
    if size <= _DENSE_LIMIT:
        counts = np.bincount(joint, minlength=size)
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(joint, return_counts=True)
    per_context = np.bincount(keys // alphabet, weights=counts)
    per_context = per_context[per_context > 0]
    counts = counts.astype(np.float64)
    total = counts.sum()
    bits = float(((per_context * np.log2(per_context)).sum() - (counts * np.log2(counts)).sum()) / total)
    return bits + (counts.size - per_context.size) / (2.0 * total * np.log(2.0)) if miller_madow else bits


def _stacked(tensors: list[torch.Tensor]) -> np.ndarray:
    """Bit patterns of one kind's layers, ``(layers, batch x kv_heads, tokens, head_dim)`` uint16."""
    return _symbols(tensors).reshape(len(tensors), -1, *tensors[0].shape[-2:])


def _shifted(high: np.ndarray, axis: int) -> np.ndarray:
    """The high byte of the neighbour one step back along ``axis`` (256 where there is none)."""
    out = np.full_like(high, 256)
    src = [slice(None)] * high.ndim
    dst = [slice(None)] * high.ndim
    src[axis], dst[axis] = slice(None, -1), slice(1, None)
    out[tuple(dst)] = high[tuple(src)]
    return out


CONTEXTS = {"prev_token": 2, "prev_layer": 0}  # the neighbour's axis in (layers, heads, tokens, head_dim)


def context_entropy(artifact: KVArtifact) -> dict[str, float]:
    """Bits per value of the context models (see the module docstring) for a 16-bit artifact:
    ``{"channel_planes": ..., "prev_token": ..., "prev_layer": ...}``, Miller-Madow corrected."""
    if artifact.keys[0].element_size() != 2:
        raise ValueError(f"context entropies need 16-bit values, got {artifact.keys[0].dtype}")
    bits = dict.fromkeys(("channel_planes", *CONTEXTS), 0.0)
    total = 0
    for kind, tensors in enumerate((artifact.keys, artifact.values)):
        sym = _stacked(tensors)
        head_dim = sym.shape[-1]
        high, low = (sym >> 8).astype(np.int64), (sym & 0xFF).astype(np.int64)
        channel = np.broadcast_to(kind * head_dim + np.arange(head_dim, dtype=np.int64), sym.shape)
        n = sym.size
        low_bits = conditional_entropy((channel * 256 + high).ravel(), low.ravel(), 256, miller_madow=True)
        bits["channel_planes"] += n * (
            conditional_entropy(channel.ravel(), high.ravel(), 256, miller_madow=True) + low_bits
        )
        for name, axis in CONTEXTS.items():
            context = (channel * 257 + _shifted(high, axis)).ravel()
            bits[name] += n * (conditional_entropy(context, high.ravel(), 256, miller_madow=True) + low_bits)
        total += n
    return {name: b / total for name, b in bits.items()}


def _symbols(tensors: list[torch.Tensor]) -> np.ndarray:
    """Bit patterns of every value, ``(n,)`` uint16 or uint32, in the tensors' flattened order."""
    raw = torch.cat([t.detach().contiguous().reshape(-1).view(torch.uint8) for t in tensors]).cpu().numpy()
    return raw.view(np.uint16 if tensors[0].element_size() == 2 else np.uint32)


def kv_entropy(artifact: KVArtifact) -> EntropyBounds:
    """The three entropy bounds of an artifact's KV (layers of ``(batch, kv_heads, tokens, head_dim)``)."""
    itemsize = artifact.keys[0].element_size()
    if itemsize not in (2, 4):
        raise ValueError(f"entropy bounds need 16- or 32-bit values, got {itemsize}-byte {artifact.keys[0].dtype}")
    alphabet = 1 << (8 * itemsize)
    head_dim = artifact.keys[0].shape[-1]
    n_total, joint_bits, order0_parts, plane_counts = 0, 0.0, [], np.zeros((itemsize, 256), np.int64)
    for kind in (artifact.keys, artifact.values):
        sym = _symbols(kind)
        n = sym.size
        channel = np.tile(np.arange(head_dim, dtype=np.int64), n // head_dim)
        joint_bits += n * conditional_entropy(channel, sym.astype(np.int64), alphabet)
        order0_parts.append(sym)
        for i, plane in enumerate(sym.view(np.uint8).reshape(n, itemsize).T):
            plane_counts[i] += np.bincount(plane, minlength=256)
        n_total += n
        del channel
    everything = np.concatenate(order0_parts)
    order0 = (
        entropy_from_counts(np.bincount(everything))
        if itemsize == 2
        else entropy_from_counts(np.unique(everything, return_counts=True)[1])
    )
    planes = sum(entropy_from_counts(c) for c in plane_counts)
    return EntropyBounds(value_bits=8 * itemsize, order0=order0, planes=planes, channel=joint_bits / n_total)
