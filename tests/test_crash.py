"""A sweep killed with SIGKILL in the middle of a point resumes with nothing lost, duplicated or torn."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = [32, 48, 64]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_sigkill_mid_point_then_resume(tmp_path):
    # Many timed repeats make each point take seconds, so the kill lands inside one.
    cmd = [
        sys.executable,
        "-m",
        "kvbench",
        "model=tiny_random",
        "readers=[hf]",
        f"doc_tokens=[{','.join(map(str, LENGTHS))}]",
        "exactness.enabled=false",
        "timing.warmup=0",
        "timing.repeats=100",
        f"results_dir={tmp_path / 'results'}",
    ]
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    rows_path = None
    while time.monotonic() < deadline and first.poll() is None:
        found = list((tmp_path / "results").rglob("rows.jsonl"))
        if found and _lines(found[0]):
            rows_path = found[0]
            break
        time.sleep(0.05)
    assert rows_path is not None, (tmp_path / "first.log").read_text()[-2000:]
    time.sleep(0.3)  # into the next point
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    killed_at = datetime.now(UTC).isoformat(timespec="seconds")
    before = _lines(rows_path)  # every line parses: nothing torn
    assert 1 <= len(before) < len(LENGTHS) and [r["doc_tokens"] for r in before] == LENGTHS[: len(before)]
    interrupted = LENGTHS[len(before)]

    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    after = _lines(rows_path)
    assert sorted(r["doc_tokens"] for r in after) == LENGTHS  # none lost, none duplicated
    assert len({r["point_id"] for r in after}) == len(LENGTHS) and all(r["status"] == "ok" for r in after)
    by_length = {r["doc_tokens"]: r for r in after}
    assert all(by_length[r["doc_tokens"]] == r for r in before)  # finished points were not re-measured
    assert by_length[interrupted]["timestamp"] >= killed_at  # the interrupted point was measured again
    run_dir = rows_path.parent
    assert not list(run_dir.glob(".*.tmp")) and not (run_dir / "rows.rejected.jsonl").exists()
    jobs = json.loads((run_dir / "manifest.json").read_text())["jobs"]
    assert [j["end_time"] is None for j in jobs] == [True, False]  # the killed job's entry is kept
    log.close()
