"""Architecture shapes for random-initialised models (compute-only timing, like dummy weights).

Shapes are copied from the published ``config.json`` of each checkpoint; only what decides
compute and KV size is kept. ``tiny`` exists for tests.
"""

from __future__ import annotations

ARCHITECTURES: dict[str, dict] = {
    "qwen3-4b": dict(
        model_type="qwen3", hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
        max_position_embeddings=40960, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
    "qwen3-8b": dict(
        model_type="qwen3", hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=151936,
        max_position_embeddings=40960, rope_theta=1_000_000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    ),
    "llama3.1-8b": dict(
        model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=128256,
        max_position_embeddings=131072, rope_theta=500_000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                          high_freq_factor=4.0, original_max_position_embeddings=8192),
    ),
    "tiny": dict(
        model_type="qwen3", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=49152,
        max_position_embeddings=4096, rope_theta=10_000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
}


def head_dim(config) -> int:
    """Per-head dimension of a transformers config (explicit ``head_dim``, else hidden / heads)."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def build_config(arch: str):
    """A transformers ``PretrainedConfig`` for the named architecture."""
    from transformers import AutoConfig

    spec = dict(ARCHITECTURES[arch])
    return AutoConfig.for_model(spec.pop("model_type"), **spec)
