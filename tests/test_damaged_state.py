"""Damaged state never crashes a run (#23, item 6): rows that are JSON but not rows, manifests of the
wrong shape, and a disk that fills up or fails while rows are written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
from conftest import TINY
from test_cli import ROOT

import kvbench.rows.store as store_module
import kvbench.run.app as app
from kvbench.rows.schema import make_row
from kvbench.rows.store import ResultStore, StoreWriteError, load_rows
from kvbench.run.console import print_summary

FAST = (*TINY, "readers=[hf]", "exactness.enabled=false", "timing.repeats=1", "timing.docs=1")


@pytest.mark.parametrize("line", ["{}", '{"status": "ok"}', '{"point_id": 7, "status": "ok"}', '{"point_id": "x"}'])
def test_json_that_is_not_a_row_is_moved_aside_like_an_unreadable_line(tmp_path, line, capsys):
    store = ResultStore(tmp_path)
    store.append(make_row(point_id="a"))
    with open(store.rows_path, "a") as fh:
        fh.write(line + "\n")
    assert store.done() == {"a"}  # the resume reads on (it raised KeyError)
    print_summary(store.rows(), title="t")  # and so does the summary
    assert "a" in list(load_rows([tmp_path])["point_id"])  # the report's reader takes any object, as before
    store.append(make_row(point_id="b"))
    assert (tmp_path / "rows.rejected.jsonl").read_text() == line + "\n"
    assert [r["point_id"] for r in store.rows()] == ["a", "b"]


def test_the_summary_prints_rows_missing_columns_or_holding_odd_values(capsys):
    rows = [
        {"point_id": "a", "status": "failed", "reason": "[/] not markup", "kv_bytes": "many"},
        {"point_id": "b", "status": "ok", "exact_fraction": 1.0, "exact_fraction_ci_low": "x"},
    ]
    print_summary(rows, title="t")
    assert "[/] not markup" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["[]", "null", '{"jobs": 5}', '{"jobs": [1, 2]}', '"text"', "{}"])
def test_a_manifest_of_the_wrong_shape_is_kept_aside_and_a_new_one_begun(tmp_path, caplog, text):
    (tmp_path / "manifest.json").write_text(text)
    (tmp_path / "manifest.rejected.json").write_text("an earlier one")
    ResultStore(tmp_path).record_job({"host": "h", "pid": 1, "start_time": "t"})
    assert (tmp_path / "manifest.rejected.json").read_text() == "an earlier one"  # never overwritten
    assert (tmp_path / "manifest.rejected.1.json").read_text() == text
    warning = f"{tmp_path / 'manifest.json'} is not a manifest (a list of jobs): kept as manifest.rejected.1.json"
    assert warning in caplog.messages
    assert [j["host"] for j in ResultStore(tmp_path).manifests()] == ["h"]
    assert "python -m kvbench" in (tmp_path / "RECIPE").read_text()


def test_a_job_whose_overrides_are_not_a_list_still_gets_a_recipe(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"jobs": [{"host": "h", "overrides": 5}]}))
    ResultStore(tmp_path).record_job({"host": "i", "pid": 2, "start_time": "u", "overrides": ["seed=1"]})
    assert "python -m kvbench seed=1" in (tmp_path / "RECIPE").read_text()


def _failing_write(code: int, fail_on: int):
    """``atomic_write`` that raises ``OSError(code)`` on its ``fail_on``-th call for rows.jsonl."""
    real, calls = store_module.atomic_write, []

    def write(path, data):
        if path.name == "rows.jsonl":
            calls.append(path)
            if len(calls) == fail_on:
                raise OSError(code, os.strerror(code), str(path))
        return real(path, data)

    return write


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on device (ENOSPC)"), (errno.EIO, "(EIO)")])
def test_a_failed_write_is_one_line_naming_the_file_and_nothing_committed_is_lost(tmp_path, monkeypatch, code, words):
    store = ResultStore(tmp_path)
    store.append(make_row(point_id="a"))
    monkeypatch.setattr(store_module, "atomic_write", _failing_write(code, fail_on=1))
    with pytest.raises(StoreWriteError) as info:
        store.append(make_row(point_id="b"))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"cannot write {store.rows_path}: ") and words in message
    assert "nothing committed was lost" in message
    assert [r["point_id"] for r in store.rows()] == ["a"]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_a_full_disk_mid_run_stops_it_with_the_rows_kept_and_the_next_run_resumes(make_cfg, tmp_path, monkeypatch):
    cfg = make_cfg(*FAST, "doc_tokens=[32,48,64]")
    monkeypatch.setattr(store_module, "atomic_write", _failing_write(errno.ENOSPC, fail_on=2))
    with pytest.raises(StoreWriteError, match="no space left on device"):
        app.run(cfg, tmp_path)
    kept = ResultStore(tmp_path).rows()
    assert [r["doc_tokens"] for r in kept] == [32]
    monkeypatch.undo()
    rows = app.run(cfg, tmp_path)  # resumes: 32 is done, 48 and 64 are measured
    assert [r["doc_tokens"] for r in rows] == [48, 64]
    assert sorted(r["doc_tokens"] for r in ResultStore(tmp_path).rows()) == [32, 48, 64]
    assert ResultStore(tmp_path).rows()[0] == kept[0]


_FULL_DISK = """
import errno, os, runpy
import kvbench.rows.store as store
real = store.atomic_write
def full(path, data):
    if path.name == "rows.jsonl":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return real(path, data)
store.atomic_write = full
runpy.run_module("kvbench", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_a_full_disk_through_the_command_line_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, *FAST, "doc_tokens=[32]", f"results_dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("kvbench: cannot write ") and "rows.jsonl: no space left on device (ENOSPC)" in line
