"""The ``graph`` reader: a static KV cache and the question's forward replayed as a CUDA graph.

HF's eager path (``DynamicCache`` + Python dispatch of every layer) costs tens of
milliseconds of launch overhead per forward whatever the length. The first serving-style
reader preallocates a transformers ``StaticCache`` sized ``L + Q``: ``attach`` copies the
artifact's ``L`` tokens into it and the question's ``Q`` tokens are replayed as one graph.
It remains as a comparison for the ``fast`` reader (:mod:`kvbench.forward.fast`), which reads
the KV in place: this one copies the KV at every attach, and HF's SDPA path builds a mask over
the whole buffer, which repeats the KV heads and keeps the flash kernel out.

Without CUDA (tests) the same static-cache forward runs eagerly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch
from transformers import StaticCache
from transformers.cache_utils import StaticLayer

from kvbench.forward.cuda_graph import Replayable
from kvbench.kv.artifact import KVArtifact
from kvbench.model.architectures import head_dim


class StaticGraphForward:
    """One forward of ``new_tokens`` on top of ``cached_tokens`` attached from an artifact.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Decoder in eval mode.
    cached_tokens : int
        ``L`` tokens attached before the forward (0 for a prefill).
    new_tokens : int
        Tokens run by the forward: ``Q`` for reuse, ``L + Q`` for prefill.
    """

    def __init__(self, model, cached_tokens: int, new_tokens: int):
        cfg = model.config
        self.model, self.L = model, cached_tokens
        device, dtype = model.device, model.dtype
        self.cache = StaticCache(config=cfg, max_cache_len=cached_tokens + new_tokens)
        self.cache.early_initialization(
            batch_size=1, num_heads=cfg.num_key_value_heads, head_dim=head_dim(cfg), dtype=dtype, device=device
        )
        self.positions = torch.arange(cached_tokens, cached_tokens + new_tokens, device=device)
        self.call: Replayable | None = None

    def _layers(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Each cache layer's preallocated ``keys``, ``values`` and ``cumulative_length`` tensors."""
        for i, layer in enumerate(self.cache.layers):
            if not isinstance(layer, StaticLayer) or layer.keys is None or layer.values is None:
                raise TypeError(f"static cache layer {i} is not an allocated StaticLayer")
            # a tensor in StaticLayer, which transformers' typing takes for CacheLayerMixin.reset's int
            yield layer.keys, layer.values, cast(torch.Tensor, layer.cumulative_length)

    @torch.inference_mode()
    def attach(self, artifact: KVArtifact | None) -> None:
        """Copy the artifact's ``(1, kv_heads, L, head_dim)`` layers into the static cache."""
        if artifact is None:
            return
        for i, (keys, values, _) in enumerate(self._layers()):
            keys[:, :, : self.L].copy_(artifact.keys[i])
            values[:, :, : self.L].copy_(artifact.values[i])

    @torch.inference_mode()
    def _run(self, ids: torch.Tensor) -> torch.Tensor:
        for _, _, length in self._layers():  # the cache holds L tokens again (a replay resets it too)
            length.fill_(self.L)
        out = self.model(
            input_ids=ids, past_key_values=self.cache, cache_position=self.positions, use_cache=True, logits_to_keep=1
        )
        return out.logits[:, -1].float()

    def capture(self, artifact: KVArtifact | None, ids: torch.Tensor) -> None:
        """Attach ``artifact``, then capture the forward of questions like ``ids`` as a CUDA graph."""
        self.attach(artifact)
        self.call = Replayable(self._run, ids, graph=True, warmup=3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Run ``ids`` ``(1, new_tokens)`` on what is attached; ``(1, vocab)`` float32 last-position logits."""
        return self._run(ids) if self.call is None else self.call(ids)

    def __call__(self, artifact: KVArtifact | None, ids: torch.Tensor) -> torch.Tensor:
        """Attach ``artifact`` (or nothing), then :meth:`forward`."""
        self.attach(artifact)
        return self.forward(ids)
