"""Bad input through the real command line: one line each, exit non-zero, nothing lost or left behind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_cli import ROOT, _kvbench

# Run the real entry point with every point's measurement failing, as a broken store or driver would.
_ALL_POINTS_FAIL = """
import runpy, kvbench.run.app as app
real = app.get_experiment
def broken(name):
    experiment = real(name)
    def fail(ctx, point):
        raise RuntimeError("injected: the store is gone")
    experiment.run_point = fail
    return experiment
app.get_experiment = broken
runpy.run_module("kvbench", run_name="__main__", alter_sys=True)
"""
TINY = (
    "model=tiny_random",
    "doc_tokens=[32,64]",
    "timing.warmup=0",
    "timing.repeats=1",
    "exactness.num_docs=1",
    "exactness.gen_tokens=2",
)


def _error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line a failure prints: the last of stderr, with no Hydra report or traceback before it."""
    assert "HYDRA_FULL_ERROR" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "Available options" not in proc.stderr and "search path" not in proc.stderr
    return proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "override, starts, allowed",
    [
        ("model=nope", "model='nope' is invalid: allowed ", ["smollm2", "tiny_random", "qwen3_4b_random", "hub"]),
        ("+exp=nope", "exp='nope' is invalid: allowed ", ["compress", "smoke", "sweep", "tiers"]),
        ("tier=nope", "tier='nope' is invalid: allowed ", ["disk", "gpu", "host", "redis", "wan"]),
        ("foo=1", "foo is not a key of the config: allowed ", ["experiment", "doc_tokens", "model"]),
        ("+foo=1", "foo is not a key of the config: allowed ", ["experiment", "doc_tokens", "model"]),
        ("model.nope=1", "model.nope is not a key of model: allowed ", ["source", "path", "arch"]),
        ("device=cuda:abc", "device='cuda:abc' is invalid: allowed ", ["cpu", "cuda:N"]),
        ("timing.repeats=abc", "timing.repeats is invalid: ", ["Integer"]),
    ],
)
def test_bad_input_ends_in_one_line_and_leaves_no_folder(tmp_path, override, starts, allowed):
    proc = _kvbench(override, f"results_dir={tmp_path}", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = _error_line(proc)
    assert line.startswith(f"kvbench: config error: {starts}"), line
    assert all(word in line for word in allowed), line
    assert list(tmp_path.iterdir()) == []


def test_a_bad_multirun_leaves_no_sweep_folder(tmp_path):
    proc = _kvbench("-m", "model=nope,tiny_random", f"results_dir={tmp_path}", timeout=120)
    assert proc.returncode == 2 and _error_line(proc).startswith("kvbench: config error: model='nope'")
    assert list(tmp_path.iterdir()) == []


def test_a_config_error_never_removes_an_earlier_runs_folder(tmp_path):
    run_dir = tmp_path / "default" / "model=tiny_random"
    run_dir.mkdir(parents=True)
    (run_dir / "rows.jsonl").write_text('{"point_id": "a", "status": "ok"}\n')
    proc = _kvbench("model=tiny_random", "doc_tokens=[-1]", f"results_dir={tmp_path}", timeout=120)  # same folder
    assert proc.returncode == 2 and "doc_tokens=[-1] is invalid" in _error_line(proc)
    assert (run_dir / "rows.jsonl").read_text() == '{"point_id": "a", "status": "ok"}\n'


@pytest.mark.slow
def test_a_run_whose_every_point_failed_exits_non_zero_and_keeps_the_rows(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _ALL_POINTS_FAIL, *TINY, f"results_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("kvbench: 4 of 4 points failed and none was measured") and "store is gone" in line
    (rows_file,) = tmp_path.rglob("rows.jsonl")
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    assert [(r["doc_tokens"], r["status"]) for r in rows] == [(32, "failed")] * 2 + [(64, "failed")] * 2  # fast, hf
    assert all("injected: the store is gone" in r["reason"] for r in rows)


@pytest.mark.slow
def test_multirun_still_runs_every_job(tmp_path):
    proc = _kvbench("-m", *TINY, "doc_tokens=[32]", "seed=0,1", f"results_dir={tmp_path}", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = sorted(tmp_path.rglob("rows.jsonl"))
    assert [f.parent.name.rpartition(",")[2] for f in files] == ["seed=0", "seed=1"]
    for f in files:
        assert [json.loads(line)["status"] for line in f.read_text().splitlines()] == ["ok", "ok"]  # fast, hf


def test_only_config_errors_are_described():
    from omegaconf import OmegaConf
    from omegaconf.errors import ValidationError

    from kvbench.config.hydra_errors import describe
    from kvbench.config.schema import TimingConfig

    assert describe(RuntimeError("CUDA driver")) is None and describe(KeyError("x")) is None
    timing = OmegaConf.structured(TimingConfig)
    with pytest.raises(ValidationError) as info:
        timing.repeats = "abc"
    assert describe(info.value).startswith("repeats is invalid: Value 'abc'")


def test_remove_run_dir_stops_below_the_results_folder_and_at_anything_kept(tmp_path):
    from kvbench.run.folders import is_fresh, remove_run_dir

    results = tmp_path / "results"
    run_dir = results / "exp" / "base"
    run_dir.mkdir(parents=True)
    (run_dir / "kvbench.log").touch()
    (results / "exp" / "multirun.yaml").write_text("x")
    assert is_fresh(run_dir)
    remove_run_dir(run_dir, results)
    assert results.is_dir() and list(results.iterdir()) == []

    kept = results / "exp" / "other"
    kept.mkdir(parents=True)
    (results / "exp" / "base").mkdir()
    (results / "exp" / "base" / "kvbench.log").write_text("an earlier run's log\n")
    assert not is_fresh(results / "exp" / "base")
    (results / "exp" / "new").mkdir()
    remove_run_dir(results / "exp" / "new", results)
    assert sorted(p.name for p in (results / "exp").iterdir()) == ["base", "other"]
