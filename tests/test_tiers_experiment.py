"""Experiment ``tiers`` end to end on CPU (tiny random model), and crossover lengths over rows."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _tiers import redis_server_or_skip
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir

from kvbench.config.schema import load_settings
from kvbench.economics.crossover import crossovers
from kvbench.experiments import RunContext
from kvbench.experiments.tiers import TiersExperiment
from kvbench.run.app import identity_columns, measure_point, preflight, run
from kvbench.tiers.redis_server import free_port

CPU_TIERS = (
    "+exp=tiers",
    "model=tiny_random",
    "device=cpu",
    "dtype=float32",
    "doc_tokens=[32,64]",
    "timing.warmup=0",
    "timing.repeats=2",
)
STAGES = ("fetch_ms", "decode_ms", "h2d_ms", "attach_ms", "query_ms")


def _settings(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return load_settings(compose("config", overrides=[*CPU_TIERS, *overrides]))


@pytest.fixture(scope="module")
def cpu_ctx(tiny_lm):
    """The runner's context for the CPU-sized tiers file, built once (loading costs seconds)."""
    settings = _settings()
    device, corpus = preflight(settings)[:2]
    return RunContext(settings, tiny_lm, corpus, device, "cpu", torch.float32)


def measure(ctx: RunContext, *overrides: str) -> list[dict]:
    """Every point of the tiers experiment under ``overrides``, through the runner's point handling."""
    ctx = dataclasses.replace(ctx, settings=_settings(*overrides))
    exp = TiersExperiment()
    return [measure_point(ctx, exp, p, identity_columns(ctx, exp.name, p), []) for p in exp.points(ctx)]


def test_tiers_file_is_the_gpu_sweep(make_cfg):
    cfg = make_cfg("+exp=tiers", with_hydra=True)
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.model.arch == "qwen3-4b"
    assert set(cfg.hydra.sweeper.params.tier.split(",")) == {"gpu", "host", "disk", "redis", "wan"}
    assert (cfg.device, cfg.dtype, min(cfg.doc_tokens), max(cfg.doc_tokens)) == ("cuda", "bfloat16", 1024, 32768)
    wan = make_cfg("+exp=tiers", "tier=wan").tier.profiles
    assert set(wan) == {"same-zone", "cross-region", "internet"}
    assert all(
        p.bandwidth_mb_s > 0 and p.rtt_ms > 0 and p.egress_usd_per_gb >= 0
        for name, p in wan.items()
        if name != "same-zone"
    )


@pytest.mark.parametrize(
    "tier, variants",
    [
        ("gpu", {""}),
        ("host", {""}),
        ("disk", {"cold", "warm"}),
        ("redis", {""}),
        ("wan", {"same-zone", "cross-region"}),
    ],
    ids=["gpu-tier", "host-tier", "disk-tier", "redis-tier", "wan-tier"],
)
def test_every_tier_runs_on_cpu(cpu_ctx, tmp_path, tier, variants):
    if tier == "redis":
        redis_server_or_skip()
    extra = ("tier.profile=null", "tier.profiles.internet.bandwidth_mb_s=1000") if tier == "wan" else ()
    rows = measure(cpu_ctx, f"tier={tier}", f"tier.dir={tmp_path / 'store'}", *extra)
    assert [r["status"] for r in rows] == ["ok"] * len(rows), [r["reason"] for r in rows]
    assert {r["tier_variant"] for r in rows} >= variants and {r["doc_tokens"] for r in rows} == {32, 64}
    for r in rows:
        assert r["tier"] == tier and r["codec"] == "identity" and r["tier_bitwise"] is True
        assert all(r[s] is not None and r[s] >= 0 for s in STAGES)
        assert r["reuse_ms"] >= sum(r[s] for s in STAGES) * 0.5 and r["prefill_ms"] > 0
        assert r["speedup"] == pytest.approx(r["prefill_best_ms"] / r["reuse_ms"])  # prefill over reuse, not inverted
        assert r["stored_bytes"] > 0 and r["kv_bytes"] > 0 and r["put_ms"] >= 0
        # the device floors, as the reuse rows carry them; a tier read is measured against them
        assert 0 < r["reuse_floor_ms"] < r["reuse_ms"] and r["prefill_floor_ms"] > 0 and r["peak_tflops"] > 0
        assert r["reuse_efficiency"] == r["reuse_floor_ms"] / r["reuse_ms"]
        assert r["prefill_efficiency"] == r["prefill_floor_ms"] / r["prefill_best_ms"]
    if tier in ("disk", "redis", "wan"):
        assert all(r["fetch_bytes"] == r["stored_bytes"] and r["fetch_gbps"] > 0 for r in rows)
        assert all(r["tier_io"] == "stream" and r["load_ms"] > 0 and r["verify_ms"] >= 0 for r in rows)
        # streamed: reuse is the load (fetch, verify and copy overlapped) plus what follows it
        assert all(r["reuse_ms"] >= (r["load_ms"] + r["attach_ms"] + r["query_ms"]) * 0.5 for r in rows)
    # every row stands beside its tier's floor, from this host's measured links
    assert all(0 < r["tier_floor_ms"] and r["tier_efficiency"] == r["tier_floor_ms"] / r["reuse_ms"] for r in rows)
    assert all(r["tier_floor_ms"] >= r["reuse_floor_ms"] for r in rows)
    assert all(r["timing_docs"] >= 2 for r in rows)
    if tier == "disk":
        assert all(r["cold_ok"] is not None for r in rows if r["tier_variant"] == "cold")
        assert not list((tmp_path / "store").iterdir())  # the tier removed its files
    if tier == "wan":
        assert all(r["link_gbps"] > 0 and r["egress_usd"] >= 0 for r in rows)


def test_unreachable_redis_fails_its_points_and_the_sweep_goes_on(make_cfg, tmp_path):
    rows = run(make_cfg(*CPU_TIERS, "tier=redis", f"tier.url=redis://127.0.0.1:{free_port()}/0"), tmp_path)
    assert [r["status"] for r in rows] == ["failed", "failed"]  # a configured server that is gone is a fault
    assert all("cannot reach redis at 127.0.0.1" in r["reason"] for r in rows)


def test_corrupt_stored_artifact_fails_its_point_only(cpu_ctx, tmp_path, monkeypatch):
    import kvbench.tiers.disk as disk

    real_put = disk.DiskTier.put

    def corrupting_put(self, blob):  # the 64-token document's file gets one bit flipped
        real_put(self, blob)
        if b'"num_tokens":"64"' in blob[:4096]:
            data = bytearray(self.path.read_bytes())
            data[-3] ^= 0x20
            self.path.write_bytes(bytes(data))

    monkeypatch.setattr(disk.DiskTier, "put", corrupting_put)
    rows = measure(cpu_ctx, "tier=disk", "tier.cache=[warm]", f"tier.dir={tmp_path / 'store'}")
    status = {r["doc_tokens"]: (r["status"], r["reason"]) for r in rows}
    assert status[32] == ("ok", None)
    assert status[64][0] == "failed" and "fails its digest" in status[64][1]


def test_artifact_of_another_model_is_refused(cpu_ctx, monkeypatch):
    from kvbench.experiments.base import RunContext

    real_snapshot = RunContext.snapshot

    def other_model(ctx, cache, ids):
        art = real_snapshot(ctx, cache, ids)
        art.meta["model_fingerprint"] = "someone-else"
        return art

    monkeypatch.setattr(RunContext, "snapshot", other_model)
    rows = measure(cpu_ctx, "tier=host")
    assert all(
        r["status"] == "failed" and "ArtifactMismatchError" in r["reason"] and "model_fingerprint" in r["reason"]
        for r in rows
    )


def _row(tier, L, prefill, reuse, status="ok", variant=""):
    return dict(
        model="m",
        dtype="bf16",
        device="d",
        tier=tier,
        tier_variant=variant,
        codec="identity",
        doc_tokens=L,
        prefill_ms=prefill,
        reuse_ms=reuse,
        status=status,
    )


def test_crossover_is_the_shortest_length_that_keeps_winning():
    rows = [
        _row("disk", 1024, 10, 20),
        _row("disk", 2048, 20, 15),
        _row("disk", 4096, 40, 45),
        _row("disk", 8192, 90, 60),
        _row("disk", 16384, 200, 80),
        _row("gpu", 1024, 10, 5),
        _row("gpu", 2048, 20, 6),
        _row("wan", 1024, 10, 500, variant="internet"),
        _row("wan", 2048, 20, 900, variant="internet"),
        _row("wan", 4096, 40, 1, status="failed"),
    ]
    by_tier = {c["tier"]: c for c in crossovers(rows)}
    disk = by_tier["disk"]
    assert disk["crossover_tokens"] == 8192 and disk["label"] == "8192"  # 2048 wins once, then loses again
    assert 4096 < disk["crossover_interp"] < 8192
    assert by_tier["gpu"]["label"] == "<= 1024" and by_tier["gpu"]["crossover_interp"] is None
    assert by_tier["wan"]["crossover_tokens"] is None and by_tier["wan"]["label"] == "none up to 2048"


def test_crossover_interpolates_where_speedup_crosses_one():
    # speedup 0.5 at 1000, 2.0 at 4000: log-log midpoint 2000
    (c,) = crossovers([_row("host", 1000, 10, 20), _row("host", 4000, 40, 20)])
    assert c["crossover_interp"] == pytest.approx(2000)


def test_crossover_measures_against_the_faster_prefill():
    # eager prefill 30 ms but a graph prefill of 9 ms at 1024: reuse at 10 ms does not win there
    rows = [dict(_row("gpu", 1024, 30, 10), prefill_graph_ms=9), dict(_row("gpu", 2048, 60, 12), prefill_graph_ms=70)]
    (c,) = crossovers(rows)
    assert c["crossover_tokens"] == 2048
