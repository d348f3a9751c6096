"""Ways a seller could alter an artifact, to measure what an audit (:mod:`kvbench.audit.recompute`) catches.

Every kind changes the KV of the document the buyer holds; none changes the token ids or the
metadata the buyer checks:

* ``none``: the honest artifact (what the audit flags here is its false-positive rate);
* ``chunk``: the KV of one span of ``span_tokens`` tokens replaced by the KV those positions
  get when other tokens stand there, the KV after it left as it was;
* ``chunks``: the same at ``spans`` places;
* ``noise``: Gaussian noise of ``noise_rel`` x the layer's standard deviation added to every
  key and value of the middle layer;
* ``rederived``: other tokens in one span and every position from it on recomputed honestly
  from them, as a seller covering its tracks would (only a checked chunk covering the span
  can see it).
"""

from __future__ import annotations

import torch

from kvbench.forward import inference
from kvbench.kv.artifact import KVArtifact


def random_spans(num_tokens: int, span_tokens: int, count: int, generator: torch.Generator) -> list[tuple[int, int]]:
    """``count`` disjoint ``[start, end)`` spans of ``span_tokens`` at random places, in order.

    Raises
    ------
    ValueError
        If they cannot fit.
    """
    if count * span_tokens > num_tokens:
        raise ValueError(f"{count} spans of {span_tokens} tokens do not fit in {num_tokens} tokens")
    # Choose the gaps: sorted offsets into the tokens no span covers.
    free = num_tokens - count * span_tokens
    offsets = sorted(torch.randint(0, free + 1, (count,), generator=generator).tolist())
    return [(o + i * span_tokens, o + (i + 1) * span_tokens) for i, o in enumerate(offsets)]


def replace_tokens(
    token_ids: torch.Tensor, spans: list[tuple[int, int]], donor_ids: torch.Tensor, vocab_size: int
) -> torch.Tensor:
    """``token_ids`` ``(1, L)`` with each span taken from ``donor_ids`` (a token equal to the original is bumped)."""
    out = token_ids.clone()
    for start, end in spans:
        donor = donor_ids[:, start:end].to(out.device)
        same = donor == out[:, start:end]
        out[:, start:end] = torch.where(same, (donor + 1) % vocab_size, donor)
    return out


def splice(base: KVArtifact, other: KVArtifact, spans: list[tuple[int, int]]) -> KVArtifact:
    """``base`` with positions in ``spans`` taken from ``other``, in every layer."""

    def mix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out = a.clone()
        for start, end in spans:
            out[:, :, start:end] = b[:, :, start:end]
        return out

    return KVArtifact(
        [mix(a, b) for a, b in zip(base.keys, other.keys)],
        [mix(a, b) for a, b in zip(base.values, other.values)],
        dict(base.meta),
    )


def layer_noise(base: KVArtifact, layer: int, rel: float, generator: torch.Generator) -> KVArtifact:
    """``base`` with noise of ``rel`` x each tensor's std added to layer ``layer``'s keys and values."""

    def noisy(t: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(t.shape, generator=generator, dtype=torch.float32).to(t.device)
        return (t.float() + rel * t.float().std() * noise).to(t.dtype)

    keys, values = list(base.keys), list(base.values)
    keys[layer], values[layer] = noisy(keys[layer]), noisy(values[layer])
    return KVArtifact(keys, values, dict(base.meta))


def tamper(
    kind: str,
    model,
    artifact: KVArtifact,
    token_ids: torch.Tensor,
    donor_ids: torch.Tensor,
    *,
    span_tokens: int,
    spans: int,
    noise_rel: float,
    generator: torch.Generator,
) -> KVArtifact:
    """``artifact`` (of ``token_ids`` ``(1, L)``) altered as ``kind`` says.

    ``donor_ids`` ``(1, L)`` supply other tokens.
    """
    if kind == "none":
        return artifact
    if kind == "noise":
        return layer_noise(artifact, len(artifact.keys) // 2, noise_rel, generator)
    count = spans if kind == "chunks" else 1
    where = random_spans(token_ids.shape[1], span_tokens, count, generator)
    changed = replace_tokens(token_ids, where, donor_ids, model.config.vocab_size)
    _, cache = inference.prefill(model, changed)
    other = KVArtifact([layer.keys for layer in cache.layers], [layer.values for layer in cache.layers])
    if kind in ("chunk", "chunks"):
        return splice(artifact, other, where)
    if kind == "rederived":
        return splice(artifact, other, [(where[0][0], token_ids.shape[1])])
    raise ValueError(f"unknown tamper kind {kind!r}")
