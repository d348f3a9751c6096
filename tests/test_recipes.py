"""Every results folder names the commands that made it, and the store keeps that true."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from kvbench.rows.recipes import RECIPE_FILE, command, commands, recipe_text
from kvbench.rows.store import MANIFEST_FILE, ResultStore, read_manifest

RESULTS = Path(__file__).resolve().parents[1] / "results"
FOLDERS = sorted(p.parent for p in RESULTS.rglob("rows.jsonl"))


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_folder_has_its_recipe(folder):
    recipe = (folder / RECIPE_FILE).read_text()
    assert recipe == recipe_text(read_manifest(folder / MANIFEST_FILE)), (
        f"stale {RECIPE_FILE}: rewrite it from the manifest"
    )
    assert all(line.startswith("python -m kvbench") for line in commands(recipe))
    # a recipe re-runs from any checkout: a path it names is relative to the repository
    absolute = [arg for line in commands(recipe) for arg in shlex.split(line) if "=/" in arg]
    assert not absolute, f"absolute paths in {RECIPE_FILE}: {absolute}"


def test_command_drops_results_dir_and_quotes_brackets():
    line = command(["+exp=tiers", "results_dir=new", "doc_tokens=[4096,32768]"])
    assert line == "python -m kvbench +exp=tiers 'doc_tokens=[4096,32768]'"
    assert shlex.split(line)[3:] == ["+exp=tiers", "doc_tokens=[4096,32768]"]


def test_record_job_writes_the_recipe(tmp_path):
    store = ResultStore(tmp_path)
    job = {"host": "h", "cpu": "x86_64", "overrides": ["+exp=smoke"]}
    store.record_job({**job, "pid": 1, "start_time": "2026-12-01T00:00", "git_sha": "aaaaaaa1"})
    store.record_job({**job, "pid": 2, "start_time": "2026-12-02T00:00", "git_sha": "bbbbbbb2"})
    store.record_job({**job, "pid": 3, "start_time": "2026-12-03T00:00", "overrides": ["dtype=bfloat16"]})
    text = (tmp_path / RECIPE_FILE).read_text()
    assert commands(text) == ["python -m kvbench +exp=smoke", "python -m kvbench dtype=bfloat16"]
    # a command run again at a later commit names both: the later job's rows replaced the earlier's
    assert "# 2 job(s), 2026-12-01T00:00 to 2026-12-02T00:00 on x86_64, git aaaaaaa, bbbbbbb" in text
    assert "# 1 job(s), first 2026-12-03T00:00 on x86_64, git ?" in text


QUEUES = sorted((RESULTS.parent / "scripts").glob("*.recipe"))


@pytest.mark.parametrize("queue", QUEUES, ids=lambda p: p.name)
def test_a_queued_recipe_composes_and_validates_every_line(queue, make_cfg):
    from kvbench.config.schema import load_settings

    lines = commands(queue.read_text())
    assert lines and all(line.startswith("python -m kvbench") for line in lines)
    for line in lines:
        load_settings(make_cfg(*shlex.split(line)[3:]))
