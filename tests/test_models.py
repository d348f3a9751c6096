"""Model loading by spec and fingerprints."""

from __future__ import annotations

import pytest
import torch

from kvbench.config.schema import ModelConfig
from kvbench.measure.flops import kv_bytes
from kvbench.model.architectures import ARCHITECTURES, build_config
from kvbench.model.loading import context_tokens, embedded_gguf_path, load_model, model_fingerprint


def test_fingerprint_changes_with_weights(tiny_lm):
    fp = model_fingerprint(tiny_lm.model)
    assert fp == tiny_lm.fingerprint and len(fp) == 16
    other = load_model(
        ModelConfig(name="t", source="random", arch="tiny"),
        device=torch.device("cpu"),
        dtype=torch.float32,
        attn_impl="sdpa",
        seed=1,
    )
    assert other.fingerprint != fp and other.weights == "random"


@pytest.mark.parametrize(
    "arch, per_token", [("qwen3-4b", 144 * 1024), ("qwen3-8b", 144 * 1024), ("llama3.1-8b", 128 * 1024)]
)
def test_published_shapes_give_published_kv_sizes(arch, per_token):
    assert kv_bytes(build_config(arch), tokens=1, itemsize=2) == per_token


def test_embedded_gguf_is_found_without_import():
    path = embedded_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50e6


def test_context_lengths():
    assert context_tokens(ModelConfig(source="embedded")) == 8192
    assert context_tokens(ModelConfig(name="q", source="random", arch="qwen3-4b")) == 40960
    assert set(ARCHITECTURES) >= {"qwen3-4b", "qwen3-8b", "llama3.1-8b", "tiny"}
