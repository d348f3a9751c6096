"""The row schema: every column documented, make_row strict about names and status, reasons on one line."""

from __future__ import annotations

import dataclasses

import pytest

from kvbench.rows.schema import COLUMNS, REQUIRED, STATUSES, Row, make_row, one_line, schema_markdown


def test_every_column_is_documented_and_unmeasured_by_default():
    fields = dataclasses.fields(Row)
    assert COLUMNS == tuple(f.name for f in fields) and len(set(COLUMNS)) == len(COLUMNS)
    assert all(len(f.metadata["doc"]) > 10 for f in fields)
    assert {f.name: f.default for f in fields if f.default is not None} == {"status": "ok"}
    assert set(REQUIRED) <= set(COLUMNS) and STATUSES == ("ok", "skipped", "oom", "failed")


def test_make_row_fills_every_column_in_schema_order():
    row = make_row(model="m", speedup=2.5)
    assert list(row) == list(COLUMNS)
    assert row["model"] == "m" and row["speedup"] == 2.5 and row["status"] == "ok" and row["reason"] is None


@pytest.mark.parametrize("status", STATUSES[1:])
def test_a_row_that_is_not_ok_needs_a_reason(status):
    with pytest.raises(ValueError, match=f"row status '{status}' needs a reason"):
        make_row(status=status)
    assert make_row(status=status, reason="why")["reason"] == "why"


def test_unknown_columns_and_statuses_are_refused():
    with pytest.raises(KeyError, match=r"not row columns: \['speedupp', 'zz'\]"):
        make_row(zz=1, speedupp=2.0, model="m")
    with pytest.raises(ValueError, match="is not one of"):
        make_row(status="meh", reason="x")


def test_one_line_keeps_the_type_and_the_first_line():
    assert one_line(RuntimeError("disk on fire\nTraceback ...")) == "RuntimeError: disk on fire"
    assert one_line(KeyError()) == "KeyError: "
    assert one_line(ValueError("")) == "ValueError: "


def test_schema_markdown_is_one_table_line_per_column():
    lines = schema_markdown().splitlines()
    assert lines[:2] == ["| column | meaning |", "|---|---|"]
    assert len(lines) == 2 + len(COLUMNS)
    doc = dataclasses.fields(Row)[0].metadata["doc"]
    assert lines[2] == f"| `{COLUMNS[0]}` | {doc} |"
