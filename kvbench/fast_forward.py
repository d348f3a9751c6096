"""The fast forward: transformers' own decoder layers, driven without mask, cache or Python overhead.

HF's model forward builds a causal mask over the whole cache, and its SDPA path with a mask
repeats the KV heads and cannot use the flash kernel; its cache appends by concatenation.
Here the model's decoder layers run as they are (same weights, same modules), with:

* attention through :func:`kvbench.attention.kvbench_attention`, registered with
  transformers' ``AttentionInterface``: no mask (lower-right causal by construction),
  grouped-query attention without repeated KV, the document's KV read in place
  (``prefix``) and split along its length so a short question fills the GPU;
* the layers optionally compiled with ``torch.compile`` (regional: one compiled layer
  reused by all layers, dynamic token counts, so one compile serves every length), which
  fuses the norms, rotary embedding, activations and residuals;
* only the last position's hidden state normalised and projected to logits.

Callers capture the whole forward as a CUDA graph (:mod:`kvbench.cuda_graph`).
Works for llama-style decoders (Llama, Qwen2, Qwen3, SmolLM2): ``model.model`` holds
``embed_tokens``, ``rotary_emb``, ``layers`` and ``norm``; ``model.lm_head`` the head.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from kvbench.artifact import KVArtifact
from kvbench.attention import register


class FastForward:
    """One forward of new tokens, optionally on top of a document's KV read in place.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A llama-style causal LM in eval mode.
    compile : bool
        Compile each decoder layer with ``torch.compile`` (one compiled code for all layers).
    """

    def __init__(self, model, *, compile: bool):
        self.model = model
        self.base = model.model
        self.attn_impl = register()
        self.compiled = compile
        layers = list(self.base.layers[: model.config.num_hidden_layers])
        self.layers = [torch.compile(layer, dynamic=True) for layer in layers] if compile else layers

    @contextmanager
    def _attention(self):
        """The model's attention implementation set to kvbench's for the duration (shared config)."""
        config = self.model.config
        before = config._attn_implementation
        config._attn_implementation = self.attn_impl
        try:
            yield
        finally:
            config._attn_implementation = before

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, prefix: KVArtifact | None = None) -> torch.Tensor:
        """Forward ``ids`` ``(B, T)`` at positions ``L .. L+T-1`` after ``prefix`` (``L`` tokens, or none).

        ``prefix`` holds per layer ``(1, kv_heads, L, head_dim)`` keys and values, shared by
        all B rows and read where they are. Returns ``(B, vocab)`` float32 last-position logits.
        """
        batch, tokens = ids.shape
        start = 0 if prefix is None else prefix.num_tokens
        positions = torch.arange(start, start + tokens, device=ids.device).unsqueeze(0).expand(batch, tokens)
        with self._attention():
            hidden = self.base.embed_tokens(ids)
            rotary = self.base.rotary_emb(hidden, positions)
            for i, layer in enumerate(self.layers):
                kv = None if prefix is None else (prefix.keys[i], prefix.values[i])
                hidden = layer(hidden, attention_mask=None, position_ids=positions, position_embeddings=rotary,
                               kvbench_prefix=kv)
            last = self.base.norm(hidden[:, -1:])
            return self.model.lm_head(last)[:, -1].float()


@torch.inference_mode()
def greedy_continue_fast(fwd: FastForward, prefix: KVArtifact, query_ids: torch.Tensor, first_logits: torch.Tensor,
                         steps: int) -> list[int]:
    """Greedy tokens after a fast reuse: the argmax of ``first_logits``, then ``steps - 1`` more.

    Each step re-runs the question and the tokens so far on the document's KV (the fast
    forward keeps no cache of its own), so every token comes from the reader's own code path.
    """
    tokens = [int(first_logits.argmax(dim=-1))]
    ids = query_ids
    for _ in range(steps - 1):
        ids = torch.cat([ids, torch.tensor([[tokens[-1]]], device=ids.device)], dim=1)
        tokens.append(int(fwd(ids, prefix).argmax(dim=-1)))
    return tokens
