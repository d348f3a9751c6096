"""Merging a node's run folders into the committed results: by point id, jobs joined, nothing else touched."""

from __future__ import annotations

import json

from kvbench.rows.merge import main, merge_folder
from kvbench.rows.recipes import RECIPE_FILE, commands
from kvbench.rows.store import ResultStore


def _run(folder, rows, job, config="a: 1\n"):
    store = ResultStore(folder)
    for row in rows:
        store.append(row)
    store.record_job(job)
    store.write_config(config)
    (folder / "kvbench.log").write_text(f"log of {job['pid']}\n")
    return store


def _row(point, value):
    return {"point_id": point, "status": "ok", "speedup": value}


def _job(pid, start, overrides):
    return {"host": "h", "pid": pid, "start_time": start, "overrides": overrides}


def test_node_rows_replace_their_points_and_the_rest_stay(tmp_path):
    committed = tmp_path / "results" / "sweep" / "model=m"
    node = tmp_path / "node-results" / "sweep" / "model=m"
    _run(committed, [_row("p1", 1.0), _row("p2", 2.0)], _job(1, "2026-11-30", ["+exp=sweep"]), "old: 1\n")
    _run(node, [_row("p2", 20.0), _row("p3", 30.0)], _job(2, "2026-12-04", ["+exp=sweep", "doc_tokens=[32768]"]))
    assert merge_folder(node, committed) == (1, 2)
    rows = {r["point_id"]: r["speedup"] for r in ResultStore(committed).rows()}
    assert rows == {"p1": 1.0, "p2": 20.0, "p3": 30.0}
    assert [j["pid"] for j in ResultStore(committed).manifests()] == [1, 2]
    assert commands((committed / RECIPE_FILE).read_text()) == [
        "python -m kvbench +exp=sweep",
        "python -m kvbench +exp=sweep 'doc_tokens=[32768]'",
    ]
    assert (committed / "config.yaml").read_text() == "a: 1\n"  # the newest job's, as its own run would write
    assert (committed / "kvbench.log").read_text() == "log of 1\nlog of 2\n"


def test_the_command_merges_every_run_folder_and_leaves_damaged_lines_behind(tmp_path, capsys):
    node = tmp_path / "node-results"
    _run(node / "audit" / "model=a", [_row("a1", 1.0)], _job(3, "2026-12-04", ["+exp=audit"]))
    _run(node / "tiers" / "tier=disk", [_row("t1", 1.0)], _job(4, "2026-12-04", ["+exp=tiers"]))
    with open(node / "tiers" / "tier=disk" / "rows.jsonl", "a") as fh:
        fh.write("{not json\n")
    assert main([str(node), str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.endswith(": 1 row(s) merged, 0 earlier row(s) kept") for line in out)
    lines = (tmp_path / "results" / "tiers" / "tier=disk" / "rows.jsonl").read_text().splitlines()
    assert [json.loads(line)["point_id"] for line in lines] == ["t1"]
    assert [r["point_id"] for r in ResultStore(tmp_path / "results" / "audit" / "model=a").rows()] == ["a1"]


def test_nothing_to_merge_is_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no run folder (rows.jsonl) under" in err
    assert not (tmp_path / "results").exists()


def test_a_job_that_stopped_early_is_merged_with_a_warning(tmp_path, caplog):
    """A job killed at a deadline leaves ``end_time: null``: its finished points merge, and the merge says so."""
    stopped, done = tmp_path / "node-results" / "audit" / "stopped", tmp_path / "node-results" / "audit" / "done"
    _run(stopped, [_row("a1", 1.0)], {**_job(5, "2026-12-07", ["+exp=audit"]), "end_time": None})
    _run(done, [_row("a2", 1.0)], {**_job(6, "2026-12-07", []), "end_time": "2026-12-07T05:39"})
    with caplog.at_level("WARNING", logger="kvbench.rows.merge"):
        assert merge_folder(stopped, tmp_path / "results" / "stopped") == (0, 1)
        assert merge_folder(done, tmp_path / "results" / "done") == (0, 1)
    assert [r.getMessage() for r in caplog.records if "no end_time" in r.getMessage()] == [
        f"{stopped}: job 5 started 2026-12-07 has no end_time: "
        "it stopped early, and only the points it finished are merged"
    ]
