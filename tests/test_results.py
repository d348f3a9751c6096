"""Rows: schema, atomic append, resume, NaN handling, damaged lines kept aside, concurrent writers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from kvbench.economics.crossover import main as crossover_main
from kvbench.rows.schema import COLUMNS, REQUIRED, make_row, schema_markdown
from kvbench.rows.store import ResultStore, load_rows, point_id

ROOT = Path(__file__).resolve().parents[1]


def test_required_columns_are_in_the_schema():
    assert set(REQUIRED) <= set(COLUMNS)
    assert all(f"`{c}`" in schema_markdown() for c in REQUIRED)


def test_make_row_rejects_unknown_columns_and_bad_status():
    with pytest.raises(KeyError, match="speedupp"):
        make_row(speedupp=2.0)
    with pytest.raises(ValueError, match="needs a reason"):
        make_row(status="failed")
    with pytest.raises(ValueError, match="not one of"):
        make_row(status="meh", reason="x")


def test_append_replaces_same_point_and_is_valid_jsonl(tmp_path):
    store = ResultStore(tmp_path)
    store.append(make_row(point_id="a", status="failed", reason="boom", speedup=float("nan")))
    store.append(make_row(point_id="b", speedup=3.0))
    store.append(make_row(point_id="a", speedup=2.0))
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    assert [json.loads(l)["point_id"] for l in lines] == ["b", "a"]
    assert store.done() == {"a", "b"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "rows.jsonl"]  # no temporary left


def test_nan_becomes_null(tmp_path):
    ResultStore(tmp_path).append(make_row(point_id="a", speedup=float("nan")))
    assert json.loads((tmp_path / "rows.jsonl").read_text())["speedup"] is None


def _damage(path: Path) -> None:
    with open(path, "a") as fh:
        fh.write('{"point_id": "torn", "stat\n[1, 2]\n')


def test_unreadable_lines_are_skipped_then_moved_aside_never_deleted(tmp_path, caplog):
    store = ResultStore(tmp_path)
    store.append(make_row(point_id="a", speedup=1.0))
    _damage(tmp_path / "rows.jsonl")
    assert [r["point_id"] for r in store.rows()] == ["a"]
    assert (
        f"{store.rows_path}: skipping 2 unreadable line(s); the next write moves them to rows.rejected.jsonl"
        in caplog.messages
    )
    store.append(make_row(point_id="b", speedup=2.0))
    assert [r["point_id"] for r in store.rows()] == ["a", "b"]
    assert (tmp_path / "rows.rejected.jsonl").read_text() == '{"point_id": "torn", "stat\n[1, 2]\n'
    assert f"{store.rows_path}: 2 unreadable line(s) moved to {store.rejected_path}" in caplog.messages
    store.append(make_row(point_id="c", speedup=3.0))  # a later append keeps what was set aside
    assert (tmp_path / "rows.rejected.jsonl").read_text().count("\n") == 2


def test_load_rows_and_crossover_skip_a_damaged_line(tmp_path, caplog, capsys):
    store = ResultStore(tmp_path / "tier=gpu")
    for n, reuse in ((1024, 50.0), (4096, 40.0)):
        store.append(
            make_row(
                experiment="tiers",
                point_id=str(n),
                model="x",
                dtype="bfloat16",
                device="d",
                tier="gpu",
                tier_variant="",
                codec="identity",
                doc_tokens=n,
                prefill_ms=n / 40,
                reuse_ms=reuse,
                speedup=n / 40 / reuse,
            )
        )
    _damage(store.rows_path)
    df = load_rows([tmp_path])
    assert sorted(df["doc_tokens"]) == [1024, 4096]
    assert f"{store.rows_path}: skipped 2 unreadable line(s)" in caplog.messages
    crossover_main([str(tmp_path)])
    assert "4096" in capsys.readouterr().out


def test_a_line_that_is_not_utf8_is_moved_aside_byte_for_byte(tmp_path):
    store = ResultStore(tmp_path)
    store.append(make_row(point_id="a"))
    with open(store.rows_path, "ab") as fh:
        fh.write(b'{"point_id": "\xff\xfe"}\n')
    store.append(make_row(point_id="b"))
    assert (tmp_path / "rows.rejected.jsonl").read_bytes() == b'{"point_id": "\xff\xfe"}\n'
    assert [r["point_id"] for r in store.rows()] == ["a", "b"]


def test_a_damaged_manifest_is_kept_aside(tmp_path, caplog):
    (tmp_path / "manifest.json").write_text('{"jobs": [')
    ResultStore(tmp_path).record_job({"host": "h", "pid": 1, "start_time": "t"})
    assert (tmp_path / "manifest.rejected.json").read_text() == '{"jobs": ['
    assert f"{tmp_path / 'manifest.json'} is not JSON: kept as manifest.rejected.json" in caplog.messages
    assert [j["host"] for j in ResultStore(tmp_path).manifests()] == ["h"]


def test_stale_temporary_of_a_killed_writer_is_removed(tmp_path):
    stale = tmp_path / ".rows.jsonl.k1ll3d.tmp"
    stale.write_text('{"half": ')
    ResultStore(tmp_path).append(make_row(point_id="a"))
    assert not stale.exists()


def test_point_id_is_stable_and_order_free():
    assert point_id({"a": 1, "b": "x"}) == point_id({"b": "x", "a": 1}) != point_id({"a": 2, "b": "x"})


def test_point_id_never_changes_so_committed_rows_still_resume():
    assert point_id({"model": "m", "doc_tokens": 1024}) == "357860c02e0c914f"  # sha256 of the sorted JSON, 16 hex
    assert point_id({"dtype": torch.float16}) == point_id({"dtype": "torch.float16"})  # non-JSON values as text


def test_a_blank_line_between_rows_is_ignored(tmp_path):
    store = ResultStore(tmp_path)
    store.append(make_row(point_id="a"))
    with open(store.rows_path, "a") as fh:
        fh.write("\n" + json.dumps(make_row(point_id="b")) + "\n")
    assert [r["point_id"] for r in store.rows()] == ["a", "b"]


def test_load_rows_finds_nested_runs(tmp_path):
    for sub in ("model=a", "model=b"):
        ResultStore(tmp_path / "sweep" / sub).append(make_row(point_id=sub, model=sub))
    df = load_rows([tmp_path])
    assert list(df["model"]) == ["model=a", "model=b"] and list(df.index) == [0, 1]
    assert list(df["run_dir"]) == [str(tmp_path / "sweep" / "model=a"), str(tmp_path / "sweep" / "model=b")]


def test_load_rows_reads_a_rows_file_named_directly(tmp_path):
    store = ResultStore(tmp_path)
    store.append(make_row(point_id="a", model="m"))
    assert list(load_rows([store.rows_path])["model"]) == ["m"]


def test_load_rows_reads_on_past_a_file_without_readable_rows(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "rows.jsonl").write_text("[1, 2]\n")
    ResultStore(tmp_path / "b").append(make_row(point_id="b", model="m"))
    assert list(load_rows([tmp_path])["model"]) == ["m"]


def test_manifest_keeps_one_entry_per_job_and_reads_the_old_single_job_file(tmp_path):
    store = ResultStore(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"host": "old", "pid": 1, "start_time": "2026-01-01"}))
    job = {"host": "h", "pid": 2, "start_time": "2026-02-01", "end_time": None}
    store.record_job(job)
    store.record_job(dict(job, end_time="2026-02-02"))  # the same job finishing updates its entry
    assert [(j["host"], j.get("end_time")) for j in store.manifests()] == [("old", None), ("h", "2026-02-02")]


def test_manifest_keeps_jobs_apart_that_differ_in_host_pid_or_start_time_alone(tmp_path):
    store = ResultStore(tmp_path)
    job = {"host": "h", "pid": 1, "start_time": "2026-01-01"}
    for other in ({"host": "g"}, {"pid": 2}, {"start_time": "2026-01-02"}):
        store.record_job(dict(job, **other))
    store.record_job(job)
    assert len(store.manifests()) == 4


def test_manifest_lists_jobs_oldest_first_and_writes_other_values_as_text(tmp_path):
    store = ResultStore(tmp_path)
    store.record_job({"host": "h", "pid": 2, "start_time": "2026-02-01", "cwd": tmp_path})
    store.record_job({"host": "h", "pid": 1, "start_time": "2026-01-01"})
    assert [j["pid"] for j in store.manifests()] == [1, 2]
    assert store.manifests()[1]["cwd"] == str(tmp_path)


def test_credentials_never_reach_rows_config_or_manifest(tmp_path):
    store = ResultStore(tmp_path)
    url = "redis://kv:hunter2@cache.example:6379/0"
    store.append(make_row(point_id="a", status="failed", reason=f"TierError: cannot reach {url}"))
    store.write_config(f"tier:\n  url: {url}\n")
    store.record_job({"host": "h", "pid": 1, "start_time": "t", "overrides": [f"tier.url={url}"]})
    for name in ("rows.jsonl", "config.yaml", "manifest.json"):
        text = (tmp_path / name).read_text()
        assert "hunter2" not in text and "redis://***@cache.example:6379/0" in text, name


WRITER = textwrap.dedent("""
    import sys
    from kvbench.rows.store import ResultStore
    from kvbench.rows.schema import make_row
    store, name, count = ResultStore(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    for i in range(count):
        store.append(make_row(point_id=f"{name}-{i}", reason="x" * 2000, status="failed"))
        if i == 0:
            store.record_job({"host": "h", "pid": name, "start_time": "t"})
""")


def test_concurrent_writers_never_lose_or_interleave_lines(tmp_path):
    """Four processes append to one folder at once: every row arrives once, every line is whole."""
    writers, count = 4, 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), f"w{w}", str(count)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=120) == 0
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    ids = [json.loads(line)["point_id"] for line in lines]  # every line parses: none interleaved
    assert sorted(ids) == sorted(f"w{w}-{i}" for w in range(writers) for i in range(count))
    assert sorted(j["pid"] for j in ResultStore(tmp_path).manifests()) == [f"w{w}" for w in range(writers)]
    assert not (tmp_path / "rows.rejected.jsonl").exists()
