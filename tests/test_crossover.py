"""Crossover lengths on hand-made rows, and on the committed sweep: like with like, CIs decide."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kvbench.economics.crossover import IDENTITY, best_prefill_ms, comparison, crossovers, headline_reuse, main

SWEEP = Path(__file__).resolve().parents[1] / "results" / "sweep"


def _row(L, prefill, reuse, *, low=None, high=None, **identity):
    """A new-style reuse row: best prefill, reuse through its reader, speedup with its CI."""
    speedup = prefill / reuse
    return dict(
        dict(
            experiment="reuse",
            model="m",
            dtype="bfloat16",
            device="gpu",
            deterministic=False,
            reader="graph",
            status="ok",
        ),
        doc_tokens=L,
        prefill_best_ms=prefill,
        prefill_ms=prefill,
        reuse_ms=reuse,
        speedup=speedup,
        speedup_ci_low=speedup * 0.95 if low is None else low,
        speedup_ci_high=speedup * 1.05 if high is None else high,
        **identity,
    )


def _only(rows):
    (c,) = crossovers(rows)
    return c


def test_reuse_winning_from_2048_on_says_2048():
    c = _only([_row(512, 10, 20), _row(1024, 20, 25), _row(2048, 40, 20), _row(4096, 80, 22)])
    assert (c["crossover_tokens"], c["label"]) == (2048, "2048")
    assert c["not_resolved"] == [] and c["point_estimate"] == []
    # speedup 0.8 at 1024, 2.0 at 2048: crosses 1 at 1024 * 2 ** (log 1.25 / log 2.5)
    assert c["crossover_interp"] == pytest.approx(1024 * 2 ** (math.log(1.25) / math.log(2.5)))


def test_speedup_is_prefill_over_reuse():
    c = comparison(_row(1024, 30.0, 10.0))
    assert c.speedup == pytest.approx(3.0) and c.verdict == "win"
    assert comparison(_row(1024, 10.0, 30.0)).verdict == "loss"
    # all-winning rows: reuse cheaper everywhere, so the crossover is at or below the shortest length
    assert _only([_row(256, 30, 10), _row(512, 60, 10)])["label"] == "<= 256"
    assert _only([_row(256, 10, 30), _row(512, 10, 60)])["label"] == "none up to 512"


def test_a_ci_that_straddles_one_is_not_resolved():
    rows = [_row(1024, 10, 20), _row(2048, 22, 20, low=0.9, high=1.3), _row(4096, 80, 20), _row(8192, 160, 20)]
    c = _only(rows)
    assert c["crossover_tokens"] == 4096 and c["label"] == "4096; not resolved at 2048"
    assert c["not_resolved"] == [2048]
    assert c["crossover_interp"] is None  # no resolved loss just below 4096 to interpolate from
    tail = _only([_row(1024, 10, 20), _row(2048, 22, 20, low=0.95, high=1.2)])
    assert tail["crossover_tokens"] is None and tail["label"] == "not resolved at 2048"


def test_a_ci_above_one_wins_even_where_the_point_estimate_is_close():
    c = _only([_row(1024, 10, 20), _row(2048, 20.4, 20, low=1.01, high=1.03)])
    assert c["label"] == "2048"
    below = _only([_row(1024, 10, 20), _row(2048, 20.4, 20, low=0.99, high=1.03)])
    assert below["label"] == "not resolved at 2048"


def test_a_deterministic_control_never_merges_with_the_main_sweep():
    main_rows = [_row(1024, 10, 20), _row(2048, 40, 20)]
    control = [_row(1024, 10, 20, deterministic=True), _row(2048, 15, 20, deterministic=True)]
    by_control = {c["deterministic"]: c for c in crossovers(main_rows + control)}
    assert by_control[False]["label"] == "2048" and by_control[True]["label"] == "none up to 2048"


@pytest.mark.parametrize(
    "column, value",
    [
        ("reader", "hf"),
        ("tier", "disk"),
        ("codec", "int4-kivi"),
        ("weights", "random"),
        ("attn_impl", "eager"),
        ("batch", 8),
        ("model_fingerprint", "other"),
    ],
)
def test_every_identity_column_separates_groups(column, value):
    assert column in IDENTITY
    rows = [_row(1024, 10, 20), _row(2048, 40, 20), _row(1024, 10, 20, **{column: value})]
    assert len(crossovers(rows)) == 2


def test_query_tokens_is_not_identity():
    rows = [_row(1024, 10, 20, query_tokens=14), _row(2048, 40, 20, query_tokens=17)]
    assert _only(rows)["label"] == "2048"


def test_rows_that_disagree_at_one_length_leave_it_not_resolved():
    rows = [_row(1024, 10, 20), _row(2048, 40, 20), _row(2048, 10, 20)]
    assert _only(rows)["label"] == "not resolved at 2048"


def test_failed_and_incomplete_rows_are_left_out():
    rows = [
        _row(1024, 10, 20),
        _row(2048, 40, 20),
        dict(_row(4096, 1, 20), status="failed"),
        dict(_row(8192, 1, 20), reuse_ms=None),
    ]
    c = _only(rows)
    assert (c["label"], c["l_max"]) == ("2048", 2048)


def test_old_graph_rows_compare_graph_reuse_with_the_best_prefill():
    """Rows from before the ``reader`` column: graph reuse, as speedup_graph paired them, never eager reuse."""
    old = dict(
        experiment="reuse",
        model="m",
        status="ok",
        doc_tokens=1024,
        prefill_ms=30.0,
        prefill_graph_ms=9.0,
        reuse_ms=40.0,
        reuse_graph_ms=6.0,
        speedup=0.75,
        speedup_ci_low=0.7,
        speedup_ci_high=0.8,
    )
    assert headline_reuse(old) == ("reuse_graph_ms", 6.0) and best_prefill_ms(old) == 9.0
    c = comparison(old)
    assert c.speedup == pytest.approx(1.5) and c.verdict == "win"
    assert c.ci is None  # the row's CI belongs to eager prefill / eager reuse, not to this ratio
    assert _only([old])["point_estimate"] == [1024]


def test_old_rows_measure_against_the_faster_prefill():
    rows = [
        dict(status="ok", doc_tokens=1024, prefill_ms=30.0, prefill_graph_ms=9.0, reuse_ms=10.0),
        dict(status="ok", doc_tokens=2048, prefill_ms=60.0, prefill_graph_ms=70.0, reuse_ms=12.0),
    ]
    assert [comparison(r).prefill_ms for r in rows] == [9.0, 60.0]
    assert _only(rows)["crossover_tokens"] == 2048


def test_new_rows_take_prefill_best_and_the_readers_reuse():
    row = _row(1024, 8.0, 4.0, prefill_graph_ms=3.0, reuse_graph_ms=1.0)
    assert best_prefill_ms(row) == 8.0 and headline_reuse(row) == ("reuse_ms", 4.0)
    assert comparison(row).ci == (row["speedup_ci_low"], row["speedup_ci_high"])


def test_a_ci_of_an_inverted_speedup_is_not_trusted():
    """A row whose stored speedup is reuse / prefill: its CI is of another ratio, so the point estimate decides."""
    row = dict(_row(2048, 40.0, 20.0), speedup=0.5, speedup_ci_low=0.45, speedup_ci_high=0.55)
    c = comparison(row)
    assert c.ci is None and c.verdict == "win"


def test_missing_values_from_a_dataframe_are_nan():
    nan = float("nan")
    row = dict(_row(1024, 10, 20), reader=nan, prefill_best_ms=nan, reuse_graph_ms=nan, prefill_graph_ms=nan)
    assert headline_reuse(row) == ("reuse_ms", 20) and best_prefill_ms(row) == 10
    rows = [row, dict(_row(2048, 40, 20), reader=nan, tier=nan)]
    assert _only(rows)["label"] == "2048"


def _stored_headline(row):
    """The speedup the row itself reports for its headline (graph in old GPU rows), and its CI low."""
    if headline_reuse(row)[0] == "reuse_graph_ms":
        return row["speedup_graph"], None
    return row["speedup"], row.get("speedup_ci_low")


@pytest.mark.skipif(not SWEEP.exists(), reason="no committed sweep")
def test_the_committed_sweep_agrees_with_its_own_speedups():
    """From the crossover on every length wins by the row's stored headline speedup; the length below does not."""
    from kvbench.rows.store import load_rows

    rows = [r for r in load_rows([SWEEP]).to_dict("records") if comparison(r)]
    found = crossovers(rows)
    assert {c["reader"] for c in found} == {"fast", "graph", "hf"}  # each reader is its own group
    assert len(found) == len({(r["model"], r["reader"]) for r in rows})
    norm = lambda v: "" if v is None or v != v else v
    for c in found:
        members = {int(r["doc_tokens"]): r for r in rows if all(norm(r.get(k)) == c[k] for k in IDENTITY)}
        assert sorted(members) == c["lengths"]
        if c["crossover_tokens"] is not None:
            assert all(_stored_headline(r)[0] > 1 for n, r in members.items() if n >= c["crossover_tokens"])
        below = [n for n in c["lengths"] if c["crossover_tokens"] is None or n < c["crossover_tokens"]]
        if below:
            speedup, low = _stored_headline(members[below[-1]])
            assert speedup <= 1 or (low is not None and low <= 1), (c["model"], below[-1])


def _table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of a rich table (rows drawn with │)."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.strip().startswith("│")
    ]


def test_command_line_prints_one_line_per_group(tmp_path, capsys):
    import json

    graph_old = dict(
        experiment="reuse",
        model="old",
        dtype="bfloat16",
        device="gpu",
        deterministic=False,
        status="ok",
        doc_tokens=1024,
        prefill_ms=30.0,
        reuse_ms=40.0,
        reuse_graph_ms=6.0,
    )
    rows = [
        _row(1024, 10, 20),
        _row(2048, 22, 20, low=0.9, high=1.3),
        _row(4096, 80, 20),
        graph_old,
        dict(_row(512, 10, 20, model="mixed"), speedup_ci_low=None),
        _row(1024, 40, 20, model="mixed"),
    ]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "(experiment=reuse, dtype=bfloat16, device=gpu, deterministic=False)" in " ".join(out.split())
    header, *body = _table_rows(out.replace("┃", "│"))
    assert header == ["model", "reader", "reuse", "crossover", "interpolated", "judged by"]
    assert body == [
        ["m", "graph", "reuse_ms", "4096; not resolved at 2048", "-", "95% CI"],
        ["mixed", "graph", "reuse_ms", "1024", "724", "95% CI; point estimate at 512"],
        ["old", "", "reuse_graph_ms", "<= 1024", "-", "point estimate (no CI)"],
    ]
    lines = out.splitlines()
    assert any(line.startswith("model, reader: what tells the groups apart") for line in lines)
    for column in header[2:]:  # every other column explained under the table, in a line of its own
        assert any(line.startswith(f"{column}: ") for line in lines), column
    assert "interpolated: tokens where the speedup crosses 1" in " ".join(out.split())


def test_command_line_says_when_there_is_nothing(tmp_path, capsys):
    main([str(tmp_path)])
    assert capsys.readouterr().out.strip() == f"no ok rows with a prefill and a reuse time under {tmp_path}"


def test_interpolation_needs_a_loss_below_and_a_win_above_one():
    from kvbench.economics.crossover import _interpolate

    assert _interpolate(1000, 4000, 0.5, 2.0) == pytest.approx(2000)
    assert _interpolate(1000, 4000, 1.0, 2.0) is None and _interpolate(1000, 4000, 0.5, 1.0) is None


def test_labels_list_every_length_that_is_not_resolved():
    c = _only([_row(1024, 22, 20, low=0.9, high=1.3), _row(2048, 44, 40, low=0.9, high=1.3), _row(4096, 80, 20)])
    assert c["label"] == "4096; not resolved at 1024, 2048" and (c["l_min"], c["l_max"]) == (1024, 4096)


def test_rows_with_only_the_best_prefill_count():
    row = dict(_row(2048, 40, 20), prefill_ms=None)
    assert comparison(row).prefill_ms == 40 and comparison(row).ci is not None


def test_a_ci_is_used_when_the_stored_speedup_matches_to_a_millionth():
    row = _row(2048, 40.0, 20.0)
    assert comparison(dict(row, speedup=2.0 * (1 + 1e-7))).ci is not None
    assert comparison(dict(row, speedup=2.0 * (1 + 1e-5))).ci is None


def test_a_nan_reuse_time_leaves_the_row_out():
    assert comparison(dict(_row(2048, 40, 20), reuse_ms=float("nan"))) is None


def test_a_group_that_lost_its_graph_reader_at_one_length_says_so():
    graph = dict(status="ok", doc_tokens=1024, prefill_ms=30.0, reuse_ms=40.0, reuse_graph_ms=6.0)
    eager = dict(status="ok", doc_tokens=2048, prefill_ms=60.0, reuse_ms=40.0)
    (c,) = crossovers([graph, eager])
    assert c["reuse_column"] == "reuse_graph_ms, reuse_ms" and c["point_estimate"] == [1024, 2048]


def test_judged_by_lists_the_point_estimates():
    from kvbench.economics.crossover import _judged_by

    assert _judged_by(dict(lengths=[1, 2, 3], point_estimate=[1, 2])) == "95% CI; point estimate at 1, 2"


def test_command_line_with_one_group_and_several_folders(tmp_path, capsys):
    import json

    for name, rows in (("a", [_row(1024, 10, 20)]), ("b", [_row(2048, 40, 20)])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main([str(tmp_path / "a"), str(tmp_path / "b")])
    header, body = _table_rows(capsys.readouterr().out.replace("┃", "│"))
    assert header[0] == "model" and body[:4] == ["m", "reuse_ms", "2048", "1448"]  # 1024 x sqrt(2)
    main([str(tmp_path / "x"), str(tmp_path / "y")])
    assert capsys.readouterr().out.strip().endswith(f"under {tmp_path / 'x'} {tmp_path / 'y'}")
