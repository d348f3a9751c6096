"""Helpers shared by the tier tests: small artifacts and the redis-server they run against."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from kvbench.artifact import KVArtifact


def make_artifact(tokens: int = 300, layers: int = 2, dtype: torch.dtype = torch.bfloat16,
                  fingerprint: str = "model-a") -> KVArtifact:
    """Random KV: ``layers`` tensors of ``(1, 2, tokens, 16)`` per side, with the metadata readers check."""
    gen = torch.Generator().manual_seed(tokens)
    keys = [torch.randn(1, 2, tokens, 16, generator=gen).to(dtype) for _ in range(layers)]
    values = [torch.randn(1, 2, tokens, 16, generator=gen).to(dtype) for _ in range(layers)]
    meta = {"num_layers": str(layers), "num_tokens": str(tokens), "model_fingerprint": fingerprint,
            "tokenizer_hash": "tok"}
    return KVArtifact(keys, values, meta)


def redis_server_or_skip() -> str:
    """Path of redis-server; skips without one, but in CI (CI=true) a missing server is a failure."""
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("redis-server is not installed: .ci/run must apt-get install redis-server")
    pytest.skip("redis-server is not installed (apt-get install redis-server)")
