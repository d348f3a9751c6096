"""Hostile config values (#23, items 1 and 7): paths that escape results_dir, absurd counts, files
that are not what they claim, unusable folders and schemes. Each ends in one line, exit code 2,
and no folder, found before anything is measured."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import _kvbench

from kvbench.config.schema import ConfigError, load_settings
from kvbench.model.loading import context_tokens, load_tokenizer

CHEAP = ("model=tiny_random", "doc_tokens=[32]", "exactness.enabled=false", "timing.repeats=1")
TIERS = ("+exp=tiers", "hydra.mode=RUN", "device=cpu", "dtype=float32")


def _gguf_with_junk(tmp_path: Path) -> Path:
    path = tmp_path / "junk.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"junk" * 4)  # the magic, a version, then junk
    return path


CASES = {
    "exp_name-traversal": (lambda t: ["exp_name=../../escape"], "exp_name='../../escape' is invalid"),
    "exp_name-slash": (lambda t: ["exp_name=a/b"], "exp_name='a/b' is invalid"),
    "exp_name-300": (lambda t: ["exp_name=" + "x" * 300], "exp_name='xxxx"),
    "results_dir-empty": (lambda t: ["results_dir="], "results_dir='' is invalid"),
    "results_dir-through-a-file": (lambda t: [f"results_dir={t / 'a-file' / 'sub'}"], "is a file, not a folder"),
    "repeats-1e22": (lambda t: ["timing.repeats=10000000000000000000000"], "timing.repeats=10000000000000000000000"),
    "tier.url-scheme": (lambda t: [*TIERS, "tier=redis", "tier.url=http://h:1/0"], "tier.url='http://h:1/0'"),
    "tier.dir-proc": (lambda t: [*TIERS, "tier=disk", "tier.dir=/proc/kvbench"], "tier.dir='/proc/kvbench'"),
    "server_bin-missing": (
        lambda t: [*TIERS, "tier=redis", "tier.server_bin=/nonexistent/redis-server"],
        "tier.server_bin='/nonexistent/redis-server' is invalid",
    ),
    "not-a-gguf": (lambda t: ["model=gguf", "model.path=/etc/passwd"], "model.path='/etc/passwd' is invalid"),
    "cfg-hydra-resolve": (lambda t: ["--cfg", "hydra", "--resolve"], "Interpolation key 'results_dir' not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_value_ends_in_one_line_exit_2_and_no_folder(tmp_path, case):
    args, expected = CASES[case]
    (tmp_path / "a-file").write_text("a file, not a folder")
    results = tmp_path / "results"  # made by the run; exp_name=../../escape would land beside tmp_path
    overrides = args(tmp_path)
    if not any(o.startswith("results_dir=") for o in overrides):
        overrides.append(f"results_dir={results}")
    flags = 3 if overrides[0] == "--cfg" else 0  # options before the overrides, for argparse
    root_default = Path("/default").exists()
    proc = _kvbench(*overrides[:flags], *CHEAP, *overrides[flags:], timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvbench: config error: ") and expected in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no results folder left
    assert not (tmp_path.parent / "escape").exists()
    assert Path("/default").exists() == root_default  # results_dir= made /default/ at the filesystem root


@pytest.mark.parametrize(
    "override, key",
    [
        ("timing.warmup=100000", "timing.warmup"),
        ("timing.docs=1000000000", "timing.docs"),
        ("exactness.num_docs=1000000000000", "exactness.num_docs"),
        ("exactness.gen_tokens=1000000000", "exactness.gen_tokens"),
        ("seed=-1", "seed"),
        ("tier.repeats=10000000000000000000000", "tier.repeats"),
        ("tier.connect_timeout_s=inf", "tier.connect_timeout_s"),
        ("tier.max_fetch_s=nan", "tier.max_fetch_s"),
        ("audit.ks=[100000000000]", "audit.ks"),
        ("audit.noise_rel=inf", "audit.noise_rel"),
        ("throughput.batches=[10000000000]", "throughput.batches"),
        ("fast.own_kernel=fast", "fast.own_kernel"),
        ("corpus.max_texts=0", "corpus.max_texts"),
        ("tier.url=redis://h:99999/0", "tier.url"),
        ("tier.url=redis://h:1/x", "tier.url"),
        ("tier.url=h:1", "tier.url"),
        ("tier.dir=", "tier.dir"),
        ("results_dir=/tmp/" + "y" * 300, "results_dir"),
        ("exp_name=.hidden", "exp_name"),
        ("exp_name=..", "exp_name"),
    ],
)
def test_absurd_or_malformed_values_fail_at_load(make_cfg, override, key):
    with pytest.raises(ConfigError, match=rf"^{key}=") as info:
        load_settings(make_cfg(override))
    assert "\n" not in str(info.value)


def test_credentials_never_reach_a_config_error(make_cfg):
    with pytest.raises(ConfigError) as info:
        load_settings(make_cfg("tier.url='http://u:hunter2@h:1/0?password=hunter2'"))
    assert "hunter2" not in str(info.value) and "http://h:1/0" in str(info.value)


def test_a_redis_scheme_is_case_insensitive(make_cfg):
    assert load_settings(make_cfg("tier.url=REDIS://h:1/0")).tier.url == "redis://h:1/0"
    assert load_settings(make_cfg("tier.url=Rediss://u:p@h:1")).tier.url == "rediss://u:p@h:1"
    assert load_settings(make_cfg("tier.url=unix:///run/redis.sock")).tier.url == "unix:///run/redis.sock"


@pytest.mark.parametrize(
    "spec, key",
    [
        (lambda t: dict(source="gguf", path=str(_gguf_with_junk(t))), "model.path"),
        (lambda t: dict(source="random", arch="tiny", tokenizer="/nonexistent"), "model.tokenizer"),
        (lambda t: dict(source="hub", path=str(t)), "model.path"),  # a folder without a tokenizer
    ],
    ids=["gguf-magic-then-junk", "missing-tokenizer", "hub-folder-without-tokenizer"],
)
def test_files_that_are_not_what_they_claim_are_config_errors(tmp_path, spec, key):
    from kvbench.config.schema import ModelConfig

    (tmp_path / "config.json").write_text("{}")
    model = ModelConfig(**spec(tmp_path))
    with pytest.raises(ConfigError, match=rf"^{key}=.* is invalid: cannot load ") as info:
        load_tokenizer(model)
        context_tokens(model)
    assert "\n" not in str(info.value)


def test_a_gguf_with_junk_after_its_magic_is_one_line_through_the_command_line(tmp_path):
    proc = _kvbench("model=gguf", f"model.path={_gguf_with_junk(tmp_path)}", f"results_dir={tmp_path / 'r'}")
    assert proc.returncode == 2 and proc.stderr.strip().startswith("kvbench: config error: model.path=")
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
