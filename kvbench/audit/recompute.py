"""Audit a bought KV artifact by recomputing a few random chunks of its document.

A reader holds the document's token ids and an artifact claiming to be their KV. It cuts the
document into chunks of ``chunk_tokens``, picks ``k`` at random, and for each chunk
``[start, end)`` recomputes ``KV[start:end]`` from ``tokens[start:end]`` and the artifact's own
``KV[:start]``, and compares it with the stored one. Two ways to recompute (same quantities):

* ``fwd`` given (a :class:`kvbench.forward.fast.FastForward`): all the chunks in one forward, side
  by side, each at its own positions over the stored KV before it
  (:class:`kvbench.forward.fast.Chunks`): one weight read for k chunks, as a server would batch them;
* otherwise, HF's eager forward per chunk: the artifact's ``KV[:start]`` attached to a cache and
  ``tokens[start:end]`` forwarded on it (:func:`kvbench.forward.inference.extend`), the reference.

The cost is a forward of k chunks instead of a whole prefill.

Error of a chunk, per layer and side (K or V): the largest relative per-token error,
``max_t ||recomputed_t - stored_t|| / ||recomputed_t||`` over the chunk's tokens ``t``, the norm
over heads x head_dim (the denominator is the auditor's own value, so scaling the stored KV
cannot hide a change). Where kernels give the same bits for a chunk as for a whole prefill
(float32 on CPU) every error of an honest artifact is 0 and the audit is bitwise. Elsewhere
(bf16 GEMMs and attention pick other kernels for other shapes) the tolerance of each layer and
side is calibrated: ``margin`` x the largest error over every chunk of untampered artifacts made
on the auditor's own hardware (:func:`calibrate`); a layer whose honest errors were all 0 keeps
a tolerance of 0. An artifact is flagged when any checked chunk exceeds its tolerance anywhere.

What the audit can see: a change inside a checked chunk, and a change before a checked chunk
whose downstream KV was left as it was (the chunk's recomputation then reads the changed prefix).
Tokens changed and their downstream KV re-derived honestly from them are caught only when a
checked chunk covers the changed tokens: with ``m`` of ``n`` chunks flagged, an audit of ``k``
random chunks catches the artifact with probability ``1 - C(n-m, k) / C(n, k)``
(:func:`detection_probability`).

The audit fails closed. The artifact's length and token-id hash must match the document
before any chunk is recomputed (:func:`kvbench.kv.binding.check_document`: tokens appended
after the document or cut from it are refused); a NaN or inf anywhere in the artifact flags
the chunk holding it whether or not that chunk was drawn; and an error that is NaN (where
``NaN > tol`` would be false) or a NaN tolerance counts as exceeding it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from scipy import stats

from kvbench.forward import inference
from kvbench.forward.compiled import compiled_for
from kvbench.forward.cuda_graph import Replayable
from kvbench.forward.fast import Chunks, FastForward
from kvbench.kv.artifact import KVArtifact
from kvbench.kv.binding import check_document


def chunk_bounds(num_tokens: int, chunk_tokens: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each chunk; the last may be shorter."""
    return [(s, min(s + chunk_tokens, num_tokens)) for s in range(0, num_tokens, chunk_tokens)]


def prefix(artifact: KVArtifact, tokens: int) -> KVArtifact:
    """The artifact's first ``tokens`` positions (views, no copy)."""
    cut = lambda t: t[:, :, :tokens]
    return KVArtifact([cut(k) for k in artifact.keys], [cut(v) for v in artifact.values], dict(artifact.meta))


def recompute_chunk(model, artifact: KVArtifact, token_ids: torch.Tensor, start: int, end: int):
    """A cache holding ``KV[:start]`` from the artifact and ``KV[start:end]`` recomputed from it.

    ``token_ids`` is ``(1, L)`` on the model's device.
    """
    if start == 0:
        return inference.prefill(model, token_ids[:, :end])[1]
    cache = prefix(artifact, start).to_cache(model.config)
    inference.extend(model, cache, token_ids[:, start:end])
    return cache


def _relative_errors(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``(..., chunks)`` largest per-token relative error of ``new`` against ``old``, both
    ``(..., chunks, tokens, width)``."""
    scale = torch.linalg.vector_norm(new, dim=-1).clamp_min(torch.finfo(torch.float32).tiny)
    return (torch.linalg.vector_norm(new - old, dim=-1) / scale).amax(dim=-1)


def _layer_errors(
    new_k: torch.Tensor,
    new_v: torch.Tensor,
    old_k: torch.Tensor,
    old_v: torch.Tensor,
    index: torch.Tensor,
    n: int,
    tokens: int,
) -> torch.Tensor:
    """``(n, 2)`` errors (K, V) of ``n`` chunks of ``tokens`` tokens in one layer: ``new_k``, ``new_v``
    ``(1, Hkv, n * tokens, d)`` recomputed, against ``old_k``, ``old_v`` ``(1, Hkv, L, d)`` stored, at
    the positions ``index`` ``(n * tokens,)``.

    Both sides go through one reduction over their stack, so a compiled layer check can be a fused
    kernel or two for the layer. A call per (layer, side) pair was two kernels a pair: 144 launches,
    0.28 ms, for a 4-chunk check on an H100. It is compiled per layer, not over all of them: every
    layer has the same shapes, so one small graph serves them all, where one graph of all the
    layers took minutes to compile anew for each chunk count (issue 21's probe on an H100 stalled
    there).
    """
    # (1, kv_heads, n x tokens, head_dim) -> (n, tokens, kv_heads x head_dim)
    per_chunk = lambda t: t[0].float().transpose(0, 1).reshape(n, tokens, -1)
    new = torch.stack([per_chunk(new_k), per_chunk(new_v)])  # (2, n, tokens, kv_heads x head_dim)
    old = torch.stack([per_chunk(old_k.index_select(2, index)), per_chunk(old_v.index_select(2, index))])
    return _relative_errors(new, old).transpose(0, 1)


def chunk_errors(cache, artifact: KVArtifact, start: int, end: int) -> torch.Tensor:
    """``(layers, 2)`` relative errors (K, V) of the stored chunk against the recomputed one."""
    chunk = lambda t: t[:, :, start:end].float().transpose(1, 2).flatten(2)  # (batch, tokens, heads x head_dim)
    errors = [
        _relative_errors(chunk(new), chunk(old)).amax()
        for layer, keys, values in zip(cache.layers, artifact.keys, artifact.values)
        for new, old in ((layer.keys, keys), (layer.values, values))
    ]
    return torch.stack(errors).reshape(len(artifact.keys), 2).cpu()  # one device sync


def check_chunk(model, artifact: KVArtifact, token_ids: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """Recompute one chunk (HF eager) and return its ``(layers, 2)`` errors."""
    return chunk_errors(recompute_chunk(model, artifact, token_ids, start, end), artifact, start, end)


class ChunkCheck:
    """Checks of ``n`` chunks of ``tokens`` tokens of one artifact, each call one fast forward of all of them.

    The chunks' starts go to the device and everything after, the forward and the errors, reads
    them there: with ``graph`` the whole check is captured once as a CUDA graph (as a reader
    captures its forward over a document's KV) and every later draw of chunks is one replay and
    one transfer of the errors. Same errors as :func:`chunk_errors`.

    Parameters
    ----------
    fwd : FastForward
    artifact : KVArtifact
        The document's stored KV, read where it is (it must stay there while the check lives).
    token_ids : torch.Tensor
        ``(1, L)`` the document's ids, on the artifact's device.
    n, tokens : int
        Chunks per check, and tokens per chunk.
    graph : bool
        Capture the check as a CUDA graph (CUDA only).
    """

    def __init__(
        self, fwd: FastForward, artifact: KVArtifact, token_ids: torch.Tensor, n: int, tokens: int, *, graph: bool
    ):
        self.n, self.tokens, self.device = n, tokens, artifact.device
        offsets = torch.arange(tokens, device=self.device)
        buffers = Chunks.empty(artifact, torch.zeros(n, dtype=torch.long, device=self.device), tokens)
        layers = list(zip(buffers.keys, buffers.values, artifact.keys, artifact.values))
        layer_errors = compiled_for(token_ids, _layer_errors)

        def errors(starts: torch.Tensor) -> torch.Tensor:  # (n,) long -> (n, layers, 2) float32, on the device
            index = (starts.unsqueeze(1) + offsets).reshape(-1)
            fwd.recompute(token_ids[:, index], artifact, Chunks(starts, tokens, buffers.keys, buffers.values))
            return torch.stack([layer_errors(*layer, index, n, tokens) for layer in layers], dim=1)

        self._check = Replayable(errors, buffers.starts, graph=graph)

    def __call__(self, bounds: list[tuple[int, int]]) -> torch.Tensor:
        """``(n, layers, 2)`` errors (on the CPU) of the chunks ``bounds``, each ``tokens`` long."""
        if len(bounds) != self.n or any(e - s != self.tokens for s, e in bounds):
            raise ValueError(f"this check recomputes {self.n} chunks of {self.tokens} tokens, not {bounds}")
        starts = torch.tensor([s for s, _ in bounds], dtype=torch.long, device=self.device)
        return self._check(starts).cpu()  # one device sync


def check_chunks_fast(
    fwd: FastForward, artifact: KVArtifact, token_ids: torch.Tensor, bounds: list[tuple[int, int]]
) -> torch.Tensor:
    """``(len(bounds), layers, 2)`` errors of chunks of equal length, recomputed in one fast forward (no graph).

    Same definition as :func:`chunk_errors`; ``token_ids`` ``(1, L)`` on the artifact's device.
    """
    tokens = bounds[0][1] - bounds[0][0]
    return ChunkCheck(fwd, artifact, token_ids, len(bounds), tokens, graph=False)(bounds)


def check_chunks(
    model,
    artifact: KVArtifact,
    token_ids: torch.Tensor,
    bounds: list[tuple[int, int]],
    fwd: FastForward | None = None,
    batch_chunks: int = 16,
) -> torch.Tensor:
    """``(len(bounds), layers, 2)`` errors of the chunks ``bounds``: HF eager per chunk, or with ``fwd``
    up to ``batch_chunks`` chunks of one length per fast forward."""
    if fwd is None:
        return torch.stack([check_chunk(model, artifact, token_ids, s, e) for s, e in bounds])
    errors = torch.empty(len(bounds), len(artifact.keys), 2)
    by_length: dict[int, list[int]] = {}
    for j, (s, e) in enumerate(bounds):
        by_length.setdefault(e - s, []).append(j)
    for group in by_length.values():
        for at in range(0, len(group), batch_chunks):
            part = group[at : at + batch_chunks]
            errors[part] = check_chunks_fast(fwd, artifact, token_ids, [bounds[j] for j in part])
    return errors


def check_all(
    model,
    artifact: KVArtifact,
    token_ids: torch.Tensor,
    chunk_tokens: int,
    fwd: FastForward | None = None,
    batch_chunks: int = 16,
) -> torch.Tensor:
    """``(chunks, layers, 2)`` errors of every chunk of the document; a chunk holding a NaN or inf is NaN.

    ``fwd``, ``batch_chunks``: as :func:`check_chunks`.

    Raises
    ------
    ArtifactMismatchError
        If the artifact was not made from exactly ``token_ids`` (length, then hash).
    """
    check_document(artifact, token_ids)
    bounds = chunk_bounds(token_ids.shape[1], chunk_tokens)
    errors = check_chunks(model, artifact, token_ids, bounds, fwd, batch_chunks)
    errors[nonfinite_chunks(artifact, bounds)] = float("nan")
    return errors


def nonfinite_chunks(artifact: KVArtifact, bounds: list[tuple[int, int]]) -> torch.Tensor:
    """``(chunks,)`` bool: the chunk's stored K or V holds a NaN or inf in some layer."""
    bad = torch.zeros(artifact.num_tokens, dtype=torch.bool, device=artifact.device)
    for t in (*artifact.keys, *artifact.values):  # (batch, kv_heads, tokens, head_dim)
        bad |= ~torch.isfinite(t).all(dim=-1).all(dim=1).all(dim=0)
    return torch.stack([bad[s:e].any() for s, e in bounds]).cpu()


def calibrate(honest_errors: list[torch.Tensor], margin: float) -> torch.Tensor:
    """``(layers, 2)`` tolerance: ``margin`` x the largest error over untampered chunks (0 stays 0).

    An honest error that is NaN makes that tolerance NaN, which flags everything (fails closed).
    """
    if not (math.isfinite(margin) and margin >= 1):
        raise ValueError(f"audit margin {margin!r} must be a finite number >= 1")
    return margin * torch.cat([e.flatten(0, -3) for e in honest_errors]).amax(dim=0)


def flagged(errors: torch.Tensor, tolerance: torch.Tensor) -> torch.Tensor:
    """``(chunks,)`` bool: the chunk exceeds its tolerance in some layer and side, or either is NaN."""
    return (~(errors <= tolerance)).flatten(1).any(dim=1)  # NaN compares false: not within tolerance


def detection_probability(n_chunks: int, n_flagged: int, k: int) -> float:
    """Chance that ``k`` chunks drawn without replacement include at least one flagged chunk."""
    # P(X > 0) directly: 1 - pmf(0) leaves 1e-16 where nothing is flagged.
    return float(stats.hypergeom(n_chunks, n_flagged, k).sf(0))


@dataclass
class AuditResult:
    """What one audit checked: chunk bounds, and the ones that disagreed with the artifact."""

    passed: bool
    checked: list[tuple[int, int]]
    failed: list[tuple[int, int]] = field(default_factory=list)


def audit(
    model,
    artifact: KVArtifact,
    token_ids: torch.Tensor,
    *,
    k: int,
    chunk_tokens: int,
    tolerance: torch.Tensor,
    generator: torch.Generator,
    fwd: FastForward | None = None,
) -> AuditResult:
    """Check ``k`` random chunks of ``artifact`` against ``token_ids`` ``(1, L)``.

    With ``fwd`` the k chunks are recomputed in one fast forward (per chunk length), else one
    HF eager forward each.

    ``failed`` lists the checked chunks that disagree, and every chunk holding a NaN or inf
    (checked or not): a non-finite value anywhere fails the audit.

    Raises
    ------
    ArtifactMismatchError
        If the artifact was not made from exactly ``token_ids`` (length, then hash): checked first.
    """
    check_document(artifact, token_ids)
    bounds = chunk_bounds(token_ids.shape[1], chunk_tokens)
    nonfinite = {b for b, bad in zip(bounds, nonfinite_chunks(artifact, bounds).tolist()) if bad}
    chosen = [bounds[i] for i in sorted(torch.randperm(len(bounds), generator=generator)[:k].tolist())]
    verdicts = flagged(check_chunks(model, artifact, token_ids, chosen, fwd, batch_chunks=k), tolerance).tolist()
    failed = {b for b, bad in zip(chosen, verdicts) if bad or b in nonfinite}
    failed |= nonfinite
    return AuditResult(passed=not failed, checked=chosen, failed=sorted(failed))
