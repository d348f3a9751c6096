"""Codec settings compose and validate at config time; the compress experiment runs end to end."""

from __future__ import annotations

import json

import pytest

from kvbench.config.schema import ConfigError, load_settings
from kvbench.run.app import run

CPU_COMPRESS = (
    "+exp=compress",
    "hydra.mode=RUN",
    "model=tiny_random",
    "device=cpu",
    "dtype=bfloat16",
    "doc_tokens=[48]",
    "timing.warmup=0",
    "timing.repeats=1",
    "exactness.num_docs=2",
    "exactness.gen_tokens=3",
    "compress.loss_tokens=8",
)


def test_every_codec_config_file_composes(make_cfg):
    from kvbench.codecs import CODECS

    for name in CODECS:
        assert load_settings(make_cfg(f"codec={name}", "dtype=bfloat16")).codec.name == name


def test_codec_with_unsupported_dtype_fails_at_config_time(make_cfg):
    with pytest.raises(ConfigError, match=r"codec.name='exponent-ans'.*bfloat16 \| float16"):
        load_settings(make_cfg("codec=exponent-ans", "dtype=float32"))
    with pytest.raises(ConfigError, match="compress.codecs='exponent-ans'"):
        load_settings(make_cfg(*CPU_COMPRESS, "dtype=float32"))


def test_unknown_codec_and_bad_compress_settings_fail(make_cfg):
    with pytest.raises(ConfigError, match="codec.name='gzip'"):
        load_settings(make_cfg("codec.name=gzip"))
    with pytest.raises(ConfigError, match="compress.codecs='zstd-7'"):
        load_settings(make_cfg(*CPU_COMPRESS, "compress.codecs=[zstd-7]"))
    with pytest.raises(ConfigError, match="compress.loss_tokens"):
        load_settings(make_cfg(*CPU_COMPRESS, "compress.loss_tokens=1"))


def test_gpu_experiment_file_lists_every_codec(make_cfg):
    from kvbench.codecs import CODECS

    settings = load_settings(make_cfg("+exp=compress", "hydra.mode=RUN"))
    assert settings.experiment == "compress" and set(settings.compress.codecs) == set(CODECS)


@pytest.mark.slow
def test_compress_runs_on_cpu(make_cfg, tmp_path):
    codecs = "compress.codecs=[zstd-9,exponent-ans,nvcomp-zstd,int4-kivi]"
    rows = {
        r["codec"]: r
        for r in run(make_cfg(*CPU_COMPRESS, codecs, "compress.codec_max_mb.zstd-9=0.001"), tmp_path / "run")
    }
    assert rows["zstd-9"]["status"] == "skipped" and "codec_max_mb" in rows["zstd-9"]["reason"]
    assert rows["nvcomp-zstd"]["status"] == "skipped"
    ex, q = rows["exponent-ans"], rows["int4-kivi"]
    assert ex["status"] == "ok" and ex["roundtrip_bitwise"] and ex["compress_ratio"] > 1
    assert ex["bound_channel_ratio"] >= ex["bound_order0_ratio"] > 1
    assert ex["encode_gbps"] > 0 and ex["decode_gbps"] > 0 and ex["nll_delta"] is None
    assert q["status"] == "ok" and not q["roundtrip_bitwise"] and q["compress_ratio"] > 2
    assert 0 < q["kv_rel_rmse"] < 0.2 and q["encode_device_gbps"] > 0
    assert q["num_docs"] == 2 and 0 <= q["exact_fraction"] <= 1 and q["nll_delta"] is not None
    assert q["kv_bytes"] == 2 * 2 * 2 * 16 * 2 * 48
    lines = (tmp_path / "run" / "rows.jsonl").read_text().splitlines()
    assert {json.loads(l)["experiment"] for l in lines} == {"compress"}
