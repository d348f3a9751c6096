"""Serving-style forwards: a static KV cache and one forward replayed as a CUDA graph.

HF's eager path (``DynamicCache`` + Python dispatch of every layer) costs tens of
milliseconds of launch overhead per forward whatever the length, which hides what the
device does. A server preallocates the cache and replays a captured graph; so does this
module, for both sides of the comparison:

* reuse: ``attach`` copies the artifact's ``L`` tokens into a ``StaticCache`` sized ``L + Q``
  and sets its length to ``L``; the question's ``Q`` tokens are then replayed;
* prefill: the same with nothing attached (length 0) and all ``L + Q`` tokens replayed.

Without CUDA (tests) the same static-cache forward runs eagerly.
"""

from __future__ import annotations

import torch
from transformers import StaticCache

from kvbench.artifact import KVArtifact


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
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.cache = StaticCache(config=cfg, max_cache_len=cached_tokens + new_tokens)
        self.cache.early_initialization(batch_size=1, num_heads=cfg.num_key_value_heads, head_dim=head_dim,
                                        dtype=dtype, device=device)
        self.ids = torch.zeros(1, new_tokens, dtype=torch.long, device=device)
        self.positions = torch.arange(cached_tokens, cached_tokens + new_tokens, device=device)
        self.graph = None
        self.logits = None

    @torch.inference_mode()
    def attach(self, artifact: KVArtifact | None) -> None:
        """Copy the artifact's ``(1, kv_heads, L, head_dim)`` layers in, or reset to empty."""
        for i, layer in enumerate(self.cache.layers):
            if artifact is not None:
                layer.keys[:, :, :self.L].copy_(artifact.keys[i])
                layer.values[:, :, :self.L].copy_(artifact.values[i])
            layer.cumulative_length.fill_(self.L)

    @torch.inference_mode()
    def _forward(self) -> torch.Tensor:
        out = self.model(input_ids=self.ids, past_key_values=self.cache, cache_position=self.positions,
                         use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]

    @torch.inference_mode()
    def capture(self, artifact: KVArtifact | None, ids: torch.Tensor, warmup: int = 3) -> None:
        """Warm up on a side stream, then capture the forward into a CUDA graph."""
        self.ids.copy_(ids)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                self.attach(artifact)
                self._forward()
        torch.cuda.current_stream().wait_stream(stream)
        self.attach(artifact)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._forward()

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Run ``ids`` ``(1, new_tokens)`` on what is attached; ``(1, vocab)`` float32 last-position logits."""
        self.ids.copy_(ids)
        if self.graph is None:
            return self._forward().float()
        self.graph.replay()
        return self.logits.float()

    def __call__(self, artifact: KVArtifact | None, ids: torch.Tensor) -> torch.Tensor:
        """Attach ``artifact`` (or nothing), then :meth:`forward`."""
        self.attach(artifact)
        return self.forward(ids)
