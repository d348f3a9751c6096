"""A llama-style decoder layer whose projections run as two GEMMs instead of five.

At a question's few tokens a decoder layer is a chain of weight reads: seven GEMMs at M = 32
(q, k, v, o, gate, up, down), each a launch that reads its weight at well under the copy
bandwidth. Reading q/k/v as one ``(H + 2 Hkv) d x hidden`` matrix and gate/up as one
``2 I x hidden`` matrix leaves four GEMMs per layer that read the same bytes in bigger,
more efficient pieces (gpt-fast and vLLM fuse the same way).

:class:`FusedLayer` wraps one of the model's own decoder layers (Llama, Qwen2, Qwen3,
SmolLM2: ``self_attn`` with ``q_proj``/``k_proj``/``v_proj``/``o_proj`` and optional
``q_norm``/``k_norm``; ``mlp`` with ``gate_proj``/``up_proj``/``down_proj``/``act_fn``). It
keeps references to the layer's norms, ``o_proj`` and ``down_proj`` and concatenated copies of
the fused weights (the model's own parameters are untouched; the copies' bytes are
:func:`fused_bytes`). The layer's forward is the model's, step for step: norm, projections,
per-head norm, the model module's own rotary function, attention (any registered function),
residual, norm, gated MLP, residual. Outputs equal the unfused layer's up to the GEMMs'
accumulation order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Protocol, overload

import torch
from torch import nn
from torch.nn import functional as F


class _Attention(Protocol):
    """What :class:`FusedLayer` reads of a llama-style ``self_attn`` (nn.Module's typing cannot know it)."""

    q_proj: nn.Linear
    k_proj: nn.Linear
    v_proj: nn.Linear
    o_proj: nn.Linear
    head_dim: int
    scaling: float


class _MLP(Protocol):
    """What :class:`FusedLayer` reads of a llama-style ``mlp``."""

    gate_proj: nn.Linear
    up_proj: nn.Linear
    down_proj: nn.Linear
    act_fn: Callable[[torch.Tensor], torch.Tensor]


class _DecoderLayer(Protocol):
    """What :class:`FusedLayer` reads of a llama-style decoder layer."""

    self_attn: _Attention
    mlp: _MLP
    input_layernorm: nn.Module
    post_attention_layernorm: nn.Module


@overload
def _cat(*parts: torch.Tensor) -> torch.Tensor: ...
@overload
def _cat(*parts: torch.Tensor | None) -> torch.Tensor | None: ...
def _cat(*parts: torch.Tensor | None) -> torch.Tensor | None:
    present = [p for p in parts if p is not None]
    if not present:
        return None
    if len(present) < len(parts):
        raise ValueError("cannot fuse projections where some have a bias and some do not")
    return torch.cat([p.detach() for p in present]).contiguous()


class FusedLayer(nn.Module):
    """``layer`` (a model's decoder layer) with q/k/v and gate/up each as one GEMM.

    ``forward(hidden (B, T, hidden), position_embeddings=(cos, sin), attention=fn, **kwargs)``
    returns ``(B, T, hidden)``; ``attention`` is called as transformers calls an attention
    function, ``(module, q (B, H, T, d), k, v (B, Hkv, T, d), None, scaling=..., **kwargs)``.
    """

    def __init__(self, layer: _DecoderLayer):
        super().__init__()
        attn, mlp = layer.self_attn, layer.mlp
        self.attn, self.mlp = attn, mlp
        self.input_layernorm, self.post_attention_layernorm = layer.input_layernorm, layer.post_attention_layernorm
        self.qkv_weight = nn.Parameter(_cat(attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight), False)
        qkv_bias = _cat(attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias)
        self.qkv_bias = None if qkv_bias is None else nn.Parameter(qkv_bias, False)
        self.gate_up_weight = nn.Parameter(_cat(mlp.gate_proj.weight, mlp.up_proj.weight), False)
        gate_up_bias = _cat(mlp.gate_proj.bias, mlp.up_proj.bias)
        self.gate_up_bias = None if gate_up_bias is None else nn.Parameter(gate_up_bias, False)
        self.splits = [attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features]
        self.head_dim = attn.head_dim
        self.q_norm: nn.Module | None = getattr(attn, "q_norm", None)
        self.k_norm: nn.Module | None = getattr(attn, "k_norm", None)
        if (self.q_norm is None) != (self.k_norm is None):
            raise ValueError("cannot fuse an attention with one of q_norm and k_norm but not the other")
        self.rotary = sys.modules[type(attn).__module__].apply_rotary_pos_emb  # the model's own

    def forward(self, hidden: torch.Tensor, position_embeddings, attention, **kwargs) -> torch.Tensor:
        batch, tokens, _ = hidden.shape
        heads = (batch, tokens, -1, self.head_dim)
        x = self.input_layernorm(hidden)
        q, k, v = F.linear(x, self.qkv_weight, self.qkv_bias).split(self.splits, dim=-1)
        q, k, v = q.view(heads), k.view(heads), v.view(heads)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        cos, sin = position_embeddings
        q, k = self.rotary(q, k, cos, sin)
        out, _ = attention(self.attn, q, k, v, None, scaling=self.attn.scaling, **kwargs)
        hidden = hidden + self.attn.o_proj(out.reshape(batch, tokens, -1))
        gate, up = F.linear(self.post_attention_layernorm(hidden), self.gate_up_weight, self.gate_up_bias).chunk(2, -1)
        return hidden + self.mlp.down_proj(self.mlp.act_fn(gate) * up)


def fused_bytes(layers: Iterable[object]) -> int:
    """Bytes of the concatenated weight copies held by the :class:`FusedLayer` among ``layers``."""
    total = 0
    for layer in layers:
        layer = getattr(layer, "_orig_mod", layer)  # a compiled module wraps it
        if isinstance(layer, FusedLayer):
            total += sum(p.numel() * p.element_size() for p in layer.parameters(recurse=False))
    return total
