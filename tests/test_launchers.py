"""Hydra launchers: the configs compose, one GPU per job on a local host, and a real submitit sweep on CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kvbench.run.gpu_slot import OneGpuPerJob

ROOT = Path(__file__).resolve().parents[1]


def test_local_gpus_launcher_composes_with_the_gpu_pinning_callback(make_cfg):
    cfg = make_cfg("+exp=sweep", "hydra/launcher=local_gpus", "hydra.launcher.gpus_per_node=2", with_hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.LocalLauncher") and launcher.gpus_per_node == 2
    assert cfg.hydra.callbacks.one_gpu_per_job._target_ == "kvbench.run.gpu_slot.OneGpuPerJob"
    assert cfg.hydra.mode.name == "MULTIRUN"


def test_slurm_launcher_composes_with_one_gpu_per_task(make_cfg):
    cfg = make_cfg("hydra/launcher=slurm", "hydra.launcher.partition=gpu", with_hydra=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.partition) == (1, 1, "gpu")
    assert launcher.max_num_timeout > 0  # a preempted job is resubmitted and resumes


@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="hydra-ray-launcher is an extra: pip install -e '.[ray]'",
)
def test_ray_launcher_composes_with_one_gpu_per_task(make_cfg):
    cfg = make_cfg("hydra/launcher=ray_cluster", "hydra.launcher.ray.init.address=auto", with_hydra=True)
    assert cfg.hydra.launcher._target_.endswith("ray_launcher.RayLauncher")
    assert cfg.hydra.launcher.ray.remote.num_gpus == 1 and cfg.hydra.launcher.ray.init.address == "auto"


HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from kvbench.run.gpu_slot import acquire_gpu
    gpu, lock = acquire_gpu(["0", "1"], Path(sys.argv[1]), poll_s=0.05)
    print(gpu, flush=True)
    sys.stdin.readline()  # hold the GPU until told to go
""")


def test_each_process_gets_its_own_gpu_and_a_third_waits_for_one(tmp_path):
    def start():
        return subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path)],
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    first, second = start(), start()
    gpus = {first.stdout.readline().strip(), second.stdout.readline().strip()}
    assert gpus == {"0", "1"}
    third = start()
    with pytest.raises(subprocess.TimeoutExpired):
        third.wait(timeout=1.0)  # both GPUs held: it waits (it would have printed and blocked on stdin)
    first.stdin.write("go\n")
    first.stdin.flush()
    first.wait(timeout=30)
    freed = third.stdout.readline().strip()
    assert freed in gpus
    for p in (second, third):
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.wait(timeout=30) == 0


def test_callback_narrows_visible_gpus_and_restores_them(tmp_path, monkeypatch):
    callback = OneGpuPerJob(lock_dir=str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    callback.on_job_start(config=None)
    assert os.environ["CUDA_VISIBLE_DEVICES"] in ("2", "3")
    callback.on_job_end(config=None, job_return=None)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")  # one GPU for all jobs: they take turns on it
    callback.on_job_start(config=None)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5" and callback._lock.is_locked
    callback.on_job_end(config=None, job_return=None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU (a CPU run): left alone
    callback.on_job_start(config=None)
    assert callback._lock is None


@pytest.mark.slow
def test_submitit_local_sweep_lands_in_one_results_set(tmp_path):
    """Two submitit jobs at once, one per (pretend) GPU, writing to the same run folder."""
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvbench",
            "-m",
            "hydra/launcher=local_gpus",
            "hydra.launcher.gpus_per_node=2",
            f"hydra.launcher.submitit_folder={tmp_path}/submitit/%j",
            f"hydra.callbacks.one_gpu_per_job.lock_dir={tmp_path}/locks",
            "model=tiny_random",
            "device=cpu",
            "doc_tokens=[32],[64]",
            "readers=[hf]",
            "exactness.enabled=false",
            "timing.warmup=0",
            "timing.repeats=2",
            f"results_dir={results}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = [p.parent for p in results.rglob("rows.jsonl")]
    rows = [json.loads(line) for line in (run_dir / "rows.jsonl").read_text().splitlines()]
    assert sorted((r["doc_tokens"], r["status"]) for r in rows) == [(32, "ok"), (64, "ok")]
    jobs = json.loads((run_dir / "manifest.json").read_text())["jobs"]
    assert len(jobs) == 2 and all(j["cuda_visible_devices"] in ("0", "1") and j["end_time"] for j in jobs)
    for a in jobs:  # jobs that shared a GPU never ran at the same time
        for b in jobs:
            if a is not b and a["cuda_visible_devices"] == b["cuda_visible_devices"]:
                assert a["end_time"] <= b["start_time"] or b["end_time"] <= a["start_time"]


@pytest.mark.gpu
def test_pinned_job_sees_exactly_one_gpu(tmp_path):
    import torch

    script = textwrap.dedent(f"""
        import os
        from kvbench.run.gpu_slot import OneGpuPerJob
        OneGpuPerJob(lock_dir={str(tmp_path)!r}).on_job_start(config=None)
        import torch
        print(os.environ["CUDA_VISIBLE_DEVICES"], torch.cuda.device_count())
    """)
    visible = ",".join(str(i) for i in range(torch.cuda.device_count()))
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=visible),
    ).stdout.split()
    assert out[0] in visible.split(",") and out[1] == "1"
