"""What the config's names may refer to: the codecs and the random-weight architectures.

Plain data, so that the schema (:mod:`kvbench.config.schema`) validates ``codec.name``,
``compress.codecs`` and ``model.arch`` while composing, before any model or codec library
loads. The mechanisms build from these tables (:mod:`kvbench.codecs.registry`,
:mod:`kvbench.model.architectures`); a test checks that every name here has a builder.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL = ("float32", "bfloat16", "float16")
HALF = ("bfloat16", "float16")


@dataclass(frozen=True)
class CodecInfo:
    """A codec as the config sees it: lossless or not, where it decodes, which KV dtypes it takes."""

    lossless: bool
    device: str
    dtypes: tuple[str, ...]
    about: str


NVCOMP = (
    "nvcomp-ans",
    "nvcomp-zstd",
    "nvcomp-gdeflate",
    "nvcomp-bitcomp",
    "nvcomp-cascaded",
    "nvcomp-ans-planes",
    "nvcomp-zstd-planes",
)

CODECS: dict[str, CodecInfo] = {
    "identity": CodecInfo(True, "cpu", ALL, "the artifact's safetensors blob"),
    **{f"zstd-{lv}": CodecInfo(True, "cpu", ALL, f"zstd level {lv}") for lv in (1, 3, 9, 19)},
    "lz4": CodecInfo(True, "cpu", ALL, "LZ4 frame"),
    "deflate": CodecInfo(True, "cpu", ALL, "zlib deflate, level 6"),
    "planes-zstd": CodecInfo(True, "cpu", ALL, "byte planes, zstd-3 each"),
    "exponent-ans": CodecInfo(True, "cpu", HALF, "rANS exponent, raw sign+mantissa"),
    "delta-planes-zstd": CodecInfo(True, "cpu", ALL, "delta against the previous token, byte planes, zstd-3"),
    "xor-planes-zstd": CodecInfo(True, "cpu", ALL, "XOR with the previous token, byte planes, zstd-3"),
    **{name: CodecInfo(True, "cuda", ALL, f"nvCOMP {name.removeprefix('nvcomp-')} on the GPU") for name in NVCOMP},
    "fp8-tensor": CodecInfo(False, "cuda", ALL, "fp8 e4m3, scale per tensor"),
    "fp8-head": CodecInfo(False, "cuda", ALL, "fp8 e4m3, scale per head"),
    "int8-kivi": CodecInfo(False, "cuda", ALL, "int8 KIVI, groups of 32"),
    "int4-kivi": CodecInfo(False, "cuda", ALL, "int4 KIVI, groups of 32"),
}

# Architecture shapes for random-initialised models (compute-only timing, like dummy weights),
# copied from the published ``config.json`` of each checkpoint; only what decides compute and
# KV size is kept. ``tiny`` exists for tests.
ARCHITECTURES: dict[str, dict] = {
    "qwen3-4b": dict(
        model_type="qwen3",
        hidden_size=2560,
        intermediate_size=9728,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_position_embeddings=40960,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
    "qwen3-8b": dict(
        model_type="qwen3",
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_position_embeddings=40960,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    ),
    "llama3.1-8b": dict(
        model_type="llama",
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=128256,
        max_position_embeddings=131072,
        rope_theta=500_000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        rope_scaling=dict(
            rope_type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=8192,
        ),
    ),
    "tiny": dict(
        model_type="qwen3",
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=49152,
        max_position_embeddings=4096,
        rope_theta=10_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
}
