"""Faults end as recorded rows and the sweep goes on: out of memory, a Redis server killed
mid-sweep, a disk tier that cannot write. Damaged or hostile artifacts are refused before use."""

from __future__ import annotations

import errno
import json
import os
import pickle

import pytest
import torch
from _tiers import make_artifact, redis_server_or_skip
from conftest import TINY

import kvbench.kv.artifact as artifact_module
import kvbench.run.app as app
from kvbench.codecs import CodecError, get_codec
from kvbench.config.schema import TierConfig
from kvbench.kv.artifact import ArtifactCorruptError, KVArtifact
from kvbench.tiers import TierError, open_tier
from kvbench.tiers.redis_server import LocalRedisServer

FAST = (*TINY, "exactness.enabled=false")
CPU_TIERS = (
    "+exp=tiers",
    "model=tiny_random",
    "device=cpu",
    "dtype=float32",
    "timing.warmup=0",
    "timing.repeats=2",
    "exactness.enabled=false",
)


def hook_points(monkeypatch, before=None, after=None):
    """Call ``before(point)`` / ``after(point)`` around every point of whichever experiment runs."""
    real_get = app.get_experiment

    def get_experiment(name):
        experiment = real_get(name)
        real_run = experiment.run_point

        def run_point(ctx, point):
            if before:
                before(point)
            fields = real_run(ctx, point)
            if after:
                after(point)
            return fields

        experiment.run_point = run_point
        return experiment

    monkeypatch.setattr(app, "get_experiment", get_experiment)


@pytest.mark.slow
def test_out_of_memory_is_recorded_and_the_sweep_goes_on(make_cfg, tmp_path, monkeypatch):
    def run_out_of_memory(point):
        if point["doc_tokens"] == 32:  # a real allocation failure on the host
            torch.empty(1 << 50, dtype=torch.uint8)
        if point["doc_tokens"] == 48:  # what CUDA raises
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    hook_points(monkeypatch, before=run_out_of_memory)
    rows = app.run(make_cfg(*FAST, "doc_tokens=[32,48,64]"), tmp_path)
    statuses = [(r["doc_tokens"], r["status"]) for r in rows]
    assert statuses == [(n, s) for n, s in ((32, "oom"), (48, "oom"), (64, "ok")) for _ in range(2)]  # fast, hf
    assert "can't allocate memory" in rows[0]["reason"]
    assert rows[2]["reason"] == "OutOfMemoryError: CUDA out of memory. Tried to allocate 80.00 GiB"


@pytest.mark.slow
def test_redis_killed_mid_sweep_fails_the_remaining_points(make_cfg, tmp_path, monkeypatch):
    server = LocalRedisServer(redis_server_or_skip())
    try:

        def kill_after_first(point):
            if point["doc_tokens"] == 32:
                server.proc.kill()  # SIGKILL, as an OOM killer or a crash would
                server.proc.wait()

        hook_points(monkeypatch, after=kill_after_first)
        rows = app.run(make_cfg(*CPU_TIERS, "doc_tokens=[32,48,64]", "tier=redis", f"tier.url={server.url}"), tmp_path)
    finally:
        server.stop()
    assert [(r["doc_tokens"], r["status"]) for r in rows] == [(32, "ok"), (48, "failed"), (64, "failed")]
    assert all(f"cannot reach redis at 127.0.0.1:{server.port}" in r["reason"] for r in rows[1:])
    assert [json.loads(line)["status"] for line in (tmp_path / "rows.jsonl").read_text().splitlines()] == [
        "ok",
        "failed",
        "failed",
    ]


@pytest.mark.slow
def test_disk_tier_write_failure_is_a_row_naming_tier_dir(make_cfg, tmp_path, monkeypatch):
    import kvbench.tiers.disk as disk

    errors = iter([errno.ENOSPC, errno.EACCES])

    def failing_write(path, data):  # root ignores permissions, so the errors are injected
        code = next(errors)
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(disk, "atomic_write", failing_write)
    store = tmp_path / "store"
    rows = app.run(
        make_cfg(*CPU_TIERS, "doc_tokens=[32,64]", "tier=disk", "tier.cache=[warm]", f"tier.dir={store}"),
        tmp_path / "run",
    )
    assert [r["status"] for r in rows] == ["failed", "failed"]
    for r, words in zip(rows, ("disk full (ENOSPC)", "permission denied (EACCES)")):
        assert f"tier.dir={store}" in r["reason"] and words in r["reason"] and "\n" not in r["reason"]
        assert r["prefill_ms"] > 0 and r["prefill_best_ms"] > 0  # the point keeps the prefill it measured


def test_disk_tier_dir_that_cannot_be_created_names_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(TierError, match=f"cannot create tier.dir={blocker / 'kv'}: .*ENOTDIR"):
        open_tier(TierConfig(name="disk", dir=str(blocker / "kv")), "warm", get_codec("identity"), torch.device("cpu"))


# -- hostile and damaged artifacts ------------------------------------------------------------


class _RunsCode:
    """A pickle payload: unpickling it would run a shell command that leaves a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_payload_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    payloads = [pickle.dumps(_RunsCode(marker)), pickle.dumps({"k.0": torch.zeros(2)})]
    torch.save({"k.0": torch.zeros(1, 2, 4, 16), "v.0": torch.zeros(1, 2, 4, 16)}, tmp_path / "kv.pt")
    payloads.append((tmp_path / "kv.pt").read_bytes())  # torch.save's zip of pickles
    for blob in payloads:
        with pytest.raises(ArtifactCorruptError):
            KVArtifact.from_bytes(blob)
        with pytest.raises(CodecError):
            get_codec("identity").decode(blob, torch.device("cpu"))
    assert not marker.exists()


def _with_header(blob: bytes, edit) -> bytes:
    """``blob`` (safetensors) with its JSON header changed by ``edit(header)``; the data untouched."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + bytes(blob[8 + size :])


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h["__metadata__"].update(num_layers="two"),
        lambda h: h["__metadata__"].update(num_layers="3"),
        lambda h: h["__metadata__"].update(num_layers="-1"),
        lambda h: h.pop("v.1"),
        lambda h: h["k.0"].update(shape=[1, 2, 10**6, 16]),
        lambda h: h["k.0"].update(data_offsets=[0, 1 << 40]),
    ],
    ids=[
        "layers-not-a-number",
        "layers-missing",
        "layers-negative",
        "tensor-missing",
        "shape-too-big",
        "offsets-past-end",
    ],
)
def test_metadata_is_validated_before_any_tensor_is_read(monkeypatch, edit):
    blob = _with_header(bytes(make_artifact().to_bytes()), edit)
    read = []
    real_check = artifact_module.ChunkList.check_all
    monkeypatch.setattr(artifact_module.ChunkList, "check_all", lambda *a, **k: read.append(1) or real_check(*a, **k))
    with pytest.raises(ValueError):  # ArtifactCorruptError is a ValueError
        KVArtifact.from_bytes(blob)
    assert read == []  # refused from the header alone: no tensor byte was hashed or used
