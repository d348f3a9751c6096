"""A serving-style reader: static KV cache and the question's forward replayed as a CUDA graph.

HF's eager path (``DynamicCache`` + Python dispatch of every layer) costs tens of
milliseconds of launch overhead per forward regardless of length, which hides what reuse
costs on the device. A server would preallocate the cache and replay a captured graph. This
reader does that: ``attach`` copies the artifact into a ``StaticCache`` sized ``L + Q`` and
sets its length to ``L``; ``query`` writes the question ids into a static buffer and replays
the graph captured once for that shape. Without CUDA (tests) the same static-cache forward
runs eagerly.
"""

from __future__ import annotations

import torch
from transformers import StaticCache

from kvbench.artifact import KVArtifact


class GraphReader:
    """Reuse through a static cache, replayed as a CUDA graph on GPU.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Decoder in eval mode.
    doc_tokens, query_tokens : int
        ``L`` and ``Q``: the graph is specific to these.
    """

    def __init__(self, model, doc_tokens: int, query_tokens: int):
        cfg = model.config
        self.model, self.L = model, doc_tokens
        device, dtype = model.device, model.dtype
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.cache = StaticCache(config=cfg, max_cache_len=doc_tokens + query_tokens)
        self.cache.early_initialization(batch_size=1, num_heads=cfg.num_key_value_heads, head_dim=head_dim,
                                        dtype=dtype, device=device)
        self.ids = torch.zeros(1, query_tokens, dtype=torch.long, device=device)
        self.positions = torch.arange(doc_tokens, doc_tokens + query_tokens, device=device)
        self.graph = None
        self.logits = None

    @torch.inference_mode()
    def attach(self, artifact: KVArtifact) -> None:
        """Copy the artifact's ``(1, kv_heads, L, head_dim)`` layers into the static cache."""
        for layer, k, v in zip(self.cache.layers, artifact.keys, artifact.values):
            layer.keys[:, :, :self.L].copy_(k)
            layer.values[:, :, :self.L].copy_(v)
            layer.cumulative_length.fill_(self.L)

    @torch.inference_mode()
    def _forward(self) -> torch.Tensor:
        out = self.model(input_ids=self.ids, past_key_values=self.cache, cache_position=self.positions,
                         use_cache=True, logits_to_keep=1)
        return out.logits[:, -1]

    @torch.inference_mode()
    def capture(self, artifact: KVArtifact, query_ids: torch.Tensor, warmup: int = 3) -> None:
        """Warm up on a side stream and capture the question's forward (CUDA only)."""
        self.ids.copy_(query_ids)
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
    def reuse(self, artifact: KVArtifact, query_ids: torch.Tensor) -> torch.Tensor:
        """Attach and run the question; ``(1, vocab)`` float32 first-token logits."""
        self.attach(artifact)
        self.ids.copy_(query_ids)
        if self.graph is None:
            return self._forward().float()
        self.graph.replay()
        return self.logits.float()
