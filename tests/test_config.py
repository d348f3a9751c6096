"""Bad configs fail at start with one line naming the key; every experiment file composes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from kvbench.config.schema import ConfigError, load_settings
from kvbench.run.app import preflight

EXP_FILES = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "exp").glob("*.yaml"))


def test_defaults_validate(make_cfg):
    settings = load_settings(make_cfg())
    assert settings.model.source == "embedded" and settings.dtype == "float32" and settings.readers == ["fast", "hf"]
    # the default run: a few minutes on 2 cores, still real weights and exactness with intervals
    assert settings.doc_tokens == [128, 512] and (settings.timing.warmup, settings.timing.repeats) == (1, 3)
    assert (settings.exactness.num_docs, settings.exactness.gen_tokens) == (8, 6)


@pytest.mark.parametrize("name", EXP_FILES)
def test_experiment_files_set_their_own_counts(name):
    """The default run's short settings never leak into an experiment that times or judges exactness."""
    raw = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "exp" / f"{name}.yaml")
    if raw.get("experiment") == "economics":
        return
    assert "doc_tokens" in raw, name
    timing, exactness = raw.get("timing") or {}, raw.get("exactness") or {}
    if timing.get("enabled", True):
        assert {"warmup", "repeats"} <= set(timing), name
    if exactness.get("enabled", True):
        assert {"num_docs", "gen_tokens"} <= set(exactness), name


@pytest.mark.parametrize("name", EXP_FILES)
def test_every_experiment_file_composes(make_cfg, name):
    settings = load_settings(make_cfg(f"+exp={name}"))
    # +exp=economics writes a local folder; the committed results/economics/base takes exp_name=economics
    assert settings.exp_name == {"economics": "economics-local"}.get(name, name)
    assert make_cfg(f"+exp={name}", with_hydra=True).hydra.job.name == "kvbench"


def test_sweep_is_multirun_over_models(make_cfg):
    cfg = make_cfg("+exp=sweep", with_hydra=True)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert "qwen3_4b_random" in cfg.hydra.sweeper.params.model
    assert "smollm2" in cfg.hydra.sweeper.params.model
    assert max(cfg.doc_tokens) == 32768 and min(cfg.doc_tokens) == 256


@pytest.mark.parametrize(
    "override, key",
    [
        ("doc_tokens=[128,-5]", "doc_tokens"),
        ("dtype=float8", "dtype"),
        ("attn_impl=flash9", "attn_impl"),
        ("device=tpu", "device"),
        ("timing.repeats=0", "timing.repeats"),
        ("exactness.num_docs=0", "exactness.num_docs"),
        ("model.source=ftp", "model.source"),
        ("model=qwen3_4b_random model.arch=qwen9", "model.arch"),
        ("logger.backend=mlflow", "logger.backend"),
    ],
)
def test_bad_value_names_key(make_cfg, override, key):
    with pytest.raises(ConfigError) as err:
        load_settings(make_cfg(*override.split()))
    message = str(err.value)
    assert message.startswith(f"{key}=") and "allowed" in message and "\n" not in message


def test_unknown_key_fails(make_cfg):
    with pytest.raises(Exception, match="doc_tokenz"):
        make_cfg("doc_tokenz=5")
    with pytest.raises(ConfigError, match="doc_tokenz"):
        load_settings(make_cfg("+doc_tokenz=5"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_gpu_fails_at_start(make_cfg):
    settings = load_settings(make_cfg("device=cuda"))
    with pytest.raises(ConfigError, match=r"^device='cuda' is invalid: allowed cpu \| auto"):
        preflight(settings)


def test_length_beyond_context_fails_at_start(make_cfg):
    settings = load_settings(make_cfg("model=tiny_random", "doc_tokens=[64,4096]"))
    with pytest.raises(ConfigError, match=r"^doc_tokens=\[4096\] is invalid: allowed up to \d+"):
        preflight(settings)


def test_length_beyond_context_can_be_skipped(make_cfg):
    settings = load_settings(make_cfg("model=tiny_random", "doc_tokens=[64,4096]", "skip_beyond_context=true"))
    skip = preflight(settings)[2]
    assert skip == [4096]


def test_length_beyond_corpus_fails_at_start(make_cfg):
    settings = load_settings(make_cfg("model=tiny_random", "skip_beyond_context=true", "doc_tokens=[100000000]"))
    with pytest.raises(ConfigError, match=r"^doc_tokens=100000000 is invalid: allowed up to \d+ \(the pydoc corpus"):
        preflight(settings)


def test_hub_model_needs_path(make_cfg):
    with pytest.raises(ConfigError, match="model.path"):
        load_settings(make_cfg("model=hub"))
