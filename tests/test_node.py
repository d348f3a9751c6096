"""scripts/node.sh on a node: the Qwen GGUF's pieces arrive over several calls, are joined and verified;
recipes run as jobs that write under node-results/."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIECES = 3


@pytest.fixture
def node(tmp_path):
    """A carried tree (just the Qwen preset, with the hash of ``blob``) and a HOME outside it."""
    blob = os.urandom(3 * 1024)
    tree, home = tmp_path / "tree", tmp_path / "home"
    (tree / "conf" / "model").mkdir(parents=True)
    home.mkdir()
    preset = (ROOT / "conf" / "model" / "qwen2_5_0_5b.yaml").read_text()
    real_sha = preset.split("sha256: ")[1].split()[0]
    (tree / "conf" / "model" / "qwen2_5_0_5b.yaml").write_text(
        preset.replace(real_sha, hashlib.sha256(blob).hexdigest())
    )
    return tree, home, blob


def _carry(tree: Path, blob: bytes, index: int) -> None:
    """This call's transfer: one wheelhouse/qwen-NN folder, as `make wheelhouse-qwen` lays them out."""
    shutil.rmtree(tree / "wheelhouse", ignore_errors=True)
    folder = tree / "wheelhouse" / f"qwen-{index:02d}"
    folder.mkdir(parents=True)
    size = len(blob) // PIECES
    (folder / f"qwen.gguf.{index:02d}-of-{PIECES:02d}").write_bytes(blob[index * size : (index + 1) * size])


def _source(tree: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", f"source {ROOT}/scripts/node.sh env"],
        cwd=tree,
        capture_output=True,
        text=True,
        env=dict(os.environ, HOME=str(home)),
        timeout=60,
    )


def test_pieces_gathered_over_calls_then_joined_and_verified(node):
    tree, home, blob = node
    cached = home / ".cache" / "kvbench" / "models" / f"{hashlib.sha256(blob).hexdigest()}.gguf"
    for index in (2, 0):  # any order
        _carry(tree, blob, index)
        proc = _source(tree, home)
        assert proc.returncode == 0 and not cached.exists()
    assert "pieces here: 2 of 3" in proc.stderr
    _carry(tree, blob, 1)
    proc = _source(tree, home)
    assert proc.returncode == 0, proc.stderr
    assert cached.read_bytes() == blob and "joined and verified" in proc.stderr
    assert not list((home / ".cache" / "kvbench" / "pieces").glob("*/*"))  # the pieces are cleared
    shutil.rmtree(tree / "wheelhouse")
    assert _source(tree, home).returncode == 0 and cached.read_bytes() == blob  # later calls reuse it


def test_pieces_that_do_not_match_the_hash_are_refused(node):
    tree, home, blob = node
    bad = bytes([blob[0] ^ 0xFF]) + blob[1:]  # differs from blob in its first byte, whatever that byte is
    for index in range(PIECES):
        _carry(tree, bad, index)
        proc = _source(tree, home)
    assert proc.returncode == 1 and "refused" in proc.stderr
    assert list((home / ".cache" / "kvbench" / "models").iterdir()) == []  # nothing half-joined is left


def _fake_python(tmp_path: Path, body: str) -> tuple[dict, Path]:
    """An environment whose ``python3`` is a shell script running ``body`` (``$CALLS`` names a
    file it may write), and that file."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text(f"#!/bin/sh\n{body}\n")
    (fake / "python3").chmod(0o755)
    calls = tmp_path / "calls.txt"
    return dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", CALLS=str(calls), OUT=str(tmp_path)), calls


def _node(script: Path, tree: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """``bash SCRIPT ARGS...`` from ``tree`` (the node's repository root) with ``env``."""
    return subprocess.run(["bash", str(script), *args], cwd=tree, capture_output=True, text=True, env=env, timeout=60)


def test_run_executes_a_recipe_file_and_a_literal_line(tmp_path):
    """Without a GPU the runner still queues each job, passes its overrides through and collects logs;
    a literal line may keep the recipe file's ``python -m kvbench``."""
    tree = tmp_path / "tree"
    (tree / "results" / "x").mkdir(parents=True)
    (tree / "results" / "x" / "RECIPE").write_text("# made by\npython -m kvbench +exp=smoke 'doc_tokens=[64]'\n")
    env, calls = _fake_python(tmp_path, 'echo "$@" >> "$CALLS"')  # records its arguments instead of measuring
    node = ROOT / "scripts" / "node.sh"
    literal = "python -m kvbench +exp=tiers tier=host"  # a line copied from a recipe file
    proc = _node(node, tree, env, "run", "-t", "60", "results/x/RECIPE", "+exp=tiers tier=disk", literal)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(calls.read_text().splitlines())
    assert lines == [
        "-m kvbench +exp=smoke doc_tokens=[64] results_dir=node-results",
        "-m kvbench +exp=tiers tier=disk results_dir=node-results",
        "-m kvbench +exp=tiers tier=host results_dir=node-results",
    ]
    assert proc.stdout.count("end rc=0") == 3


def test_the_queue_log_gives_each_jobs_own_exit_status(tmp_path):
    """A failed job's status reaches the log (the line's own ``$(date)`` once reset it to 0), and
    ``timeout``'s 124 is named as the deadline, whose job left only the points done before it."""
    tree = tmp_path / "tree"
    tree.mkdir()
    # exit 3 for one job; 124, what `timeout` returns for a job it stopped, for another
    env, _ = _fake_python(tmp_path, 'case "$*" in *tier=disk*) exit 3;; *tier=host*) exit 124;; esac')
    jobs = ["+exp=smoke", "+exp=tiers tier=disk", "+exp=tiers tier=host"]
    proc = _node(ROOT / "scripts" / "node.sh", tree, env, "run", "-t", "60", *jobs)
    assert "end rc=0: +exp=smoke" in proc.stdout, proc.stdout + proc.stderr
    assert "end rc=3: +exp=tiers tier=disk" in proc.stdout
    assert "end rc=124 (stopped at the deadline" in proc.stdout and "tier=host" in proc.stdout


def test_a_started_queue_sees_the_carried_wheelhouse(tmp_path):
    """The queue runs from a copy of the tree without the wheelhouse; recipes still name
    wheelhouse/tokenizer relative to the root, so the copy links it."""
    tree = tmp_path / "tree"
    (tree / "wheelhouse" / "tokenizer").mkdir(parents=True)
    (tree / "wheelhouse" / "tokenizer" / "tokenizer.json").write_text("{}")
    (tree / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "node.sh", tree / "scripts" / "node.sh")  # the queue sources its copy
    # checks the tokenizer is where the job's overrides say, from its working folder
    env, calls = _fake_python(tmp_path, 'ls wheelhouse/tokenizer/tokenizer.json >> "$CALLS" 2>&1')
    start = _node(tree / "scripts" / "node.sh", tree, env, "start", "+exp=smoke model.tokenizer=wheelhouse/tokenizer")
    assert start.returncode == 0 and "started 1 job" in start.stdout, start.stderr
    deadline = time.monotonic() + 60  # the detached queue runs the job when it gets to it
    while not (calls.exists() and calls.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the file appears when the job opens it, its line a moment later
    assert calls.read_text().strip() == "wheelhouse/tokenizer/tokenizer.json"


def test_collect_waits_for_a_queue_whose_first_job_has_not_started(tmp_path):
    """``start`` then ``collect`` at once (one device call): collect waits for the detached queue until
    its jobs end, even before the first one has spawned, and returns their log."""
    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "node.sh", tree / "scripts" / "node.sh")
    env, calls = _fake_python(tmp_path, 'sleep 3; echo "$@" >> "$CALLS"')  # a job that takes a while
    node = tree / "scripts" / "node.sh"
    assert _node(node, tree, env, "start", "+exp=smoke").returncode == 0
    collected = _node(node, tree, env, "collect", "30")
    assert "end rc=0: +exp=smoke" in collected.stdout, collected.stdout + collected.stderr
    assert calls.read_text().startswith("-m kvbench +exp=smoke")
