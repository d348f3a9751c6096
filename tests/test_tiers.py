"""Storage tiers: bitwise round trips, corrupt and truncated objects, failed puts, cold reads."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from _tiers import make_artifact

from kvbench.codecs import CodecError, get_codec
from kvbench.config.schema import ConfigError, TierConfig, WanProfile
from kvbench.tiers import StageTimer, TierError, open_tier, variants
from kvbench.tiers.pagecache import drop_file_pages, resident_fraction

CPU = torch.device("cpu")
FAST_WAN = {"fast": WanProfile(bandwidth_mb_s=2000, rtt_ms=0.0, egress_usd_per_gb=0.05)}


def tier_cfg(name: str, tmp_path, io: str = "stream") -> TierConfig:
    return TierConfig(name=name, dir=str(tmp_path), profiles=FAST_WAN if name == "wan" else {}, io=io, workers=4)


SMALL_CHUNKS = 4096  # many chunks per object, so the streaming path runs in parallel and in order out of order


@pytest.mark.parametrize("io", ["stream", "serial"])
@pytest.mark.parametrize(
    "name, variant", [("gpu", ""), ("host", ""), ("disk", "cold"), ("disk", "warm"), ("wan", "fast")]
)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_round_trip_is_bitwise(tmp_path, name, variant, dtype, io):
    art = make_artifact(dtype=dtype)
    with open_tier(tier_cfg(name, tmp_path, io), variant, get_codec("identity"), CPU) as tier:
        tier.put(get_codec("identity").encode(art, chunk_bytes=SMALL_CHUNKS))
        for _ in range(2):  # a second read sees the same object (cold reads drop the cache again)
            tier.prepare()
            timer = StageTimer(CPU)
            read = tier.get(timer)
            assert read.kv.equals(art) and read.kv.meta["model_fingerprint"] == "model-a"
        assert tier.stored_bytes() > 0
        stages = timer.results()
        assert all(ms >= 0 for ms in stages.values())
        if name in ("disk", "wan"):
            expected = {"load", "decode"} if io == "stream" else {"fetch", "decode", "h2d"}
            assert expected <= set(stages) and read.fetch_bytes == tier.stored_bytes()
            assert (read.stream is not None) == (io == "stream")
            if io == "stream":
                assert read.stream.chunks == -(-art.nbytes // SMALL_CHUNKS) > 4


@pytest.mark.parametrize("name, variant", [("disk", "warm"), ("disk", "cold"), ("wan", "fast")])
@pytest.mark.parametrize("codec", ["identity", "int4-kivi", "fp8-head"])
def test_parallel_and_serial_reads_return_identical_tensors(tmp_path, name, variant, codec):
    art = make_artifact(tokens=512)
    blob = get_codec(codec).encode(art, chunk_bytes=SMALL_CHUNKS)
    out = {}
    for io in ("stream", "serial"):
        with open_tier(tier_cfg(name, tmp_path, io), variant, get_codec(codec), CPU) as tier:
            tier.put(blob)
            out[io] = tier.get().kv
    assert out["stream"].equals(out["serial"])
    assert codec != "identity" or out["stream"].equals(art)


def test_the_pinned_pool_is_made_once_and_reused(tmp_path):
    from kvbench.tiers.stream import PinnedPool

    art = make_artifact(tokens=512)
    with open_tier(tier_cfg("disk", tmp_path), "warm", get_codec("identity"), CPU) as tier:
        tier.put(get_codec("identity").encode(art, chunk_bytes=SMALL_CHUNKS))
        before = PinnedPool.allocations
        tier.get()
        made = PinnedPool.allocations - before
        for _ in range(3):
            assert tier.get().kv.equals(art)
        assert made == tier.slots == 8 and PinnedPool.allocations - before == made


@pytest.mark.parametrize("io", ["stream", "serial"])
@pytest.mark.parametrize("damage, match", [("flip", "fails its digest"), ("truncate", "not a readable|short")])
def test_damaged_disk_object_is_caught_before_use(tmp_path, damage, match, io):
    codec = get_codec("identity")
    with open_tier(tier_cfg("disk", tmp_path, io), "warm", codec, CPU) as tier:
        tier.put(codec.encode(make_artifact(), chunk_bytes=SMALL_CHUNKS))
        if damage == "flip":
            _flip_middle_byte(tier.path)
        else:
            os.truncate(tier.path, tier.path.stat().st_size - 100)
        with pytest.raises(CodecError, match=match):
            tier.get()


@pytest.mark.parametrize("io", ["stream", "serial"])
def test_damaged_wan_object_is_caught_before_use(tmp_path, io):
    codec = get_codec("identity")
    blob = bytearray(codec.encode(make_artifact(), chunk_bytes=SMALL_CHUNKS))
    blob[-7] ^= 0x01
    with open_tier(tier_cfg("wan", tmp_path, io), "fast", codec, CPU) as tier:
        tier.put(bytes(blob))
        with pytest.raises(CodecError, match="fails its digest"):
            tier.get()


def test_artifact_equals_sees_one_flipped_bit():
    art = make_artifact()
    other = make_artifact()
    other.values[1].view(torch.int16)[0, 0, 5, 3] ^= 1
    assert art.equals(make_artifact()) and not art.equals(other)


def _flip_middle_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 3 // 4] ^= 0x10  # inside the tensor payload, past the header
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["gpu", "host"], ids=["gpu-tier", "host-tier"])  # id "gpu" would read as the marker
def test_resident_tiers_refuse_a_corrupt_blob_at_put(tmp_path, name):
    codec = get_codec("identity")
    blob = bytearray(codec.encode(make_artifact()))
    blob[-7] ^= 0x01
    with open_tier(tier_cfg(name, tmp_path), "", codec, CPU) as tier:
        with pytest.raises(CodecError, match="fails its digest"):
            tier.put(bytes(blob))


def test_disk_full_leaves_no_partial_file(tmp_path, monkeypatch):
    import kvbench.rows.atomic as atomic

    real_write, calls = os.write, []

    def write_then_fill(fd, data):  # the first slice lands, then the disk is full
        if calls:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        calls.append(1)
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(atomic, "WRITE_CHUNK", 4096)
    monkeypatch.setattr(atomic.os, "write", write_then_fill)
    with open_tier(tier_cfg("disk", tmp_path), "warm", get_codec("identity"), CPU) as tier:
        with pytest.raises(TierError, match="disk full.*no partial file"):
            tier.put(get_codec("identity").encode(make_artifact()))
        assert calls and list(tmp_path.iterdir()) == []


def test_disk_tier_removes_its_file(tmp_path):
    with open_tier(tier_cfg("disk", tmp_path), "warm", get_codec("identity"), CPU) as tier:
        tier.put(get_codec("identity").encode(make_artifact()))
        assert tier.path.exists()
    assert list(tmp_path.iterdir()) == []


def test_cold_read_drops_the_files_pages(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(4 << 20))
    path.read_bytes()
    assert resident_fraction(path) > 0.5  # just written and read: cached
    method, ok = drop_file_pages(path)
    assert ok == (resident_fraction(path) == 0.0)
    assert method in ("fadvise", "drop_caches") if ok else method == "none"


def test_cold_disk_tier_records_method(tmp_path):
    with open_tier(tier_cfg("disk", tmp_path), "cold", get_codec("identity"), CPU) as tier:
        tier.put(get_codec("identity").encode(make_artifact()))
        tier.prepare()
        info = tier.info()
        assert info["tier_reader"] == "posix" and info["cold_method"] in ("fadvise", "drop_caches", "none")
        assert info["cold_ok"] == (resident_fraction(tier.path) == 0.0)


def test_variants_per_tier():
    assert variants(TierConfig(name="disk")) == ["cold", "warm"]
    assert variants(TierConfig(name="wan", profiles=FAST_WAN)) == ["fast"]
    assert variants(TierConfig(name="host")) == [""]


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(name="nfs"), "tier.name"),
        (dict(name="disk", cache=["lukewarm"]), "tier.cache"),
        (dict(name="redis", chunk_mib=1024), "tier.chunk_mib"),
        (dict(name="redis", repeats=0), "tier.repeats"),
        (dict(name="wan"), "tier.profiles"),
        (dict(name="wan", profiles=FAST_WAN, profile="moon"), "tier.profile"),
    ],
)
def test_bad_tier_config_names_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=rf"^{key}="):
        TierConfig(**kwargs)


def test_bad_wan_profile_names_the_key():
    with pytest.raises(ConfigError, match="bandwidth_mb_s"):
        WanProfile(bandwidth_mb_s=0)


@pytest.mark.gpu
def test_host_tier_copies_pinned_kv_to_the_device(tmp_path):
    device = torch.device("cuda")
    art = make_artifact(tokens=4096)
    with open_tier(tier_cfg("host", tmp_path), "", get_codec("identity"), device) as tier:
        tier.put(get_codec("identity").encode(art))
        assert tier.kv.keys[0].is_pinned()
        timer = StageTimer(device)
        read = tier.get(timer)
        assert read.kv.device.type == "cuda" and read.kv.equals(art)
        assert read.h2d_bytes == art.nbytes and timer.results()["h2d"] > 0 and timer.clocks()["h2d"] == "cuda_events"
        assert tier.info()["link_gbps"] > 1


def test_host_links_are_measured_once_and_clean_up(tmp_path, monkeypatch):
    import kvbench.measure.calibrate as calibrate
    import kvbench.measure.links as links

    monkeypatch.setattr(links, "CACHE_FILE", tmp_path / "cache" / "calibration.json")
    measured = links.host_links(str(tmp_path / "dir"), CPU, 2, 32 << 20)
    assert measured.pagecache_gbps > 0 and measured.hash_gbps > 0 and measured.h2d_gbps is None
    assert measured.direct_gbps is None or measured.direct_gbps > 0  # None where O_DIRECT is refused
    assert list((tmp_path / "dir").iterdir()) == []
    assert measured.key in (tmp_path / "cache" / "calibration.json").read_text()
    assert calibrate.CACHE_FILE != links.CACHE_FILE  # the test did not touch the real cache


def test_tier_floor_is_bytes_over_the_slowest_link_plus_the_rest():
    from kvbench.measure.links import tier_floor_ms

    # the host's own stages (a page-cache copy at 40 GB/s, a digest at 80) share its cores: 100 + 50 ms
    assert tier_floor_ms(4_000_000_000, [40.0, 80.0], [50.0], reuse_floor_ms=3.0) == pytest.approx(150.0 + 3.0)
    # DMA stages overlap: the slower of a 2 GB/s disk and a 50 GB/s copy, beside a 80 GB/s digest
    assert tier_floor_ms(4_000_000_000, [80.0], [2.0, 50.0], reuse_floor_ms=3.0) == pytest.approx(2000.0 + 3.0)
    assert tier_floor_ms(10**9, [None], [1.0], reuse_floor_ms=2.0, fixed_ms=140.0) == pytest.approx(1142.0)


def test_wan_reads_past_max_fetch_s_are_not_worth_timing():
    from kvbench.tiers import too_slow

    slow = {"slow": WanProfile(bandwidth_mb_s=100.0, rtt_ms=50.0, egress_usd_per_gb=0.0)}
    cfg = TierConfig(name="wan", profiles=slow, max_fetch_s=1.0)
    assert too_slow(cfg, "slow", 50_000_000) is None  # 0.1 s + 0.5 s floor
    assert "link floor 1.1 s" in too_slow(cfg, "slow", 100_000_000)
    assert too_slow(TierConfig(name="wan", profiles=slow), "slow", 10**12) is None  # no limit set
    assert too_slow(TierConfig(name="disk"), "cold", 10**12) is None


KILLED_WRITER = """
import os, sys, time, torch
import kvbench.rows.atomic as atomic
from kvbench.codecs import get_codec
from kvbench.tiers.disk import DiskTier

real_write = os.write
def slow_write(fd, data):  # a slow disk: the writer is still writing when it is killed
    time.sleep(0.01)
    return real_write(fd, data)

atomic.os.write = slow_write
atomic.WRITE_CHUNK = 1 << 16
tier = DiskTier(get_codec("identity"), torch.device("cpu"), directory=sys.argv[1], cold=False)
print(tier.path, flush=True)
tier.store(bytes(64 << 20))
"""


def test_a_writer_killed_mid_store_leaves_no_readable_object(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    path = Path(proc.stdout.readline().strip())
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not path.exists()  # the object appears only whole, by rename
    assert not list(tmp_path.glob("*.kv"))  # at most a temporary sibling, which no reader opens


def test_each_tier_names_the_links_its_read_crosses(tmp_path):
    """A tier's floor is its own path: page cache and digests share the cores (warm disk), the disk's
    DMA overlaps them (cold), the paced link overlaps and adds its round trips (wan), nothing (gpu)."""
    from kvbench.measure.links import HostLinks

    links = HostLinks(key="test", workers=4, pagecache_gbps=40.0, direct_gbps=2.0, hash_gbps=80.0, h2d_gbps=50.0)
    codec, n = get_codec("identity"), 4_000_000_000
    floors = {}
    for name, variant in [("gpu", ""), ("host", ""), ("disk", "warm"), ("disk", "cold"), ("wan", "fast")]:
        with open_tier(tier_cfg(name, tmp_path), variant, codec, CPU) as tier:
            floors[(name, variant)] = tier.link_path(links).floor_ms(n, reuse_floor_ms=3.0)
    assert floors[("gpu", "")] == pytest.approx(3.0)
    assert floors[("host", "")] == pytest.approx(80.0 + 3.0)  # one 50 GB/s copy
    assert floors[("disk", "warm")] == pytest.approx(100.0 + 50.0 + 3.0)  # 40 GB/s copy + 80 GB/s digests
    assert floors[("disk", "cold")] == pytest.approx(2000.0 + 3.0)  # the 2 GB/s disk
    assert floors[("wan", "fast")] == pytest.approx(2000.0 + 0.0 + 3.0)  # 2 GB/s profile, no RTT
