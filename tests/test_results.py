"""Rows: schema, atomic append, resume, NaN handling."""

from __future__ import annotations

import json

import pytest

from kvbench.results import ResultStore, load_rows, point_id
from kvbench.rows import COLUMNS, REQUIRED, make_row, schema_markdown


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
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_nan_becomes_null_and_torn_line_is_ignored(tmp_path):
    store = ResultStore(tmp_path)
    store.append(make_row(point_id="a", speedup=float("nan")))
    assert json.loads((tmp_path / "rows.jsonl").read_text())["speedup"] is None
    with open(tmp_path / "rows.jsonl", "a") as fh:
        fh.write('{"point_id": "torn", "stat')
    assert [r["point_id"] for r in store.rows()] == ["a"]


def test_point_id_is_stable_and_order_free():
    assert point_id({"a": 1, "b": "x"}) == point_id({"b": "x", "a": 1}) != point_id({"a": 2, "b": "x"})


def test_load_rows_finds_nested_runs(tmp_path):
    for sub in ("model=a", "model=b"):
        ResultStore(tmp_path / sub).append(make_row(point_id=sub, model=sub))
    df = load_rows([tmp_path])
    assert sorted(df["model"]) == ["model=a", "model=b"]
