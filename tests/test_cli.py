"""The real command line: the smoke experiment end to end, and a bad config failing at start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvbench.rows.schema import REQUIRED

ROOT = Path(__file__).resolve().parents[1]


def _kvbench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, HYDRA_FULL_ERROR="0")
    return subprocess.run(
        [sys.executable, "-m", "kvbench", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_smoke_experiment_writes_every_required_column(tmp_path):
    proc = _kvbench("+exp=smoke", f"results_dir={tmp_path}", timeout=900)  # a hang guard: ~90 s on 2 idle cores
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "smoke" / "base"
    rows = [json.loads(l) for l in (run_dir / "rows.jsonl").read_text().splitlines()]
    assert [(r["doc_tokens"], r["reader"]) for r in rows] == [(64, "fast"), (64, "hf"), (128, "fast"), (128, "hf")]
    for row in rows:
        assert row["status"] == "ok" and row["weights"] == "real"
        missing = [c for c in REQUIRED if row.get(c) is None]
        assert not missing, missing
        # SmolLM2-135M: 30 layers x 3 KV heads x head_dim 64, float32.
        assert row["kv_bytes"] == 2 * 30 * 3 * 64 * 4 * row["doc_tokens"]
        assert row["bitwise_twostage"] == 1.0
    assert {"config.yaml", "manifest.json", "rows.jsonl"} <= {p.name for p in run_dir.iterdir()}
    assert "smollm2-135m-instruct" in proc.stdout  # the summary table
    # progress: every stage in kvbench.log with a timestamp, and on the console (no terminal: no bar)
    # exactly as often as in the log, so nothing is printed twice
    logged = [line.split(" - ", 1)[1] for line in (run_dir / "kvbench.log").read_text().splitlines()]
    shown = [line.split(" - ", 1)[1] for line in (proc.stdout + proc.stderr).splitlines() if "[kvbench." in line]
    assert sorted(shown) == sorted(logged)
    for L in (64, 128):
        assert logged.count(f"point {1 if L == 64 else 3}/4 L={L} reader=fast") == 1
    for stage in (
        "timing prefill (eager, fast) and reuse (fast, hf), rounds 4/4",
        "exactness (hf reader), documents 2/2",
    ):
        assert sum(line.strip().startswith(stage) and " done in " in line for line in logged) == 2, stage
    assert "GGUF tensors" not in proc.stderr  # the libraries' own bars are off


@pytest.mark.parametrize("override, key", [("dtype=int3", "dtype"), ("doc_tokens=[-1]", "doc_tokens")])
def test_bad_config_fails_fast_with_one_line(tmp_path, override, key):
    proc = _kvbench(override, f"results_dir={tmp_path}", timeout=120)
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"kvbench: config error: {key}=") and "allowed" in line
    assert not any(tmp_path.rglob("rows.jsonl"))
