"""The report from a fixture of rows: every figure and table written, the plotted data equal
to the rows, text at least 7 pt at the printed size; and the committed results build a PDF
without an overfull box."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.text
import pandas as pd
import pytest
from _fixture_rows import KV_PER_TOKEN, write_results
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir

from kvbench.economics import inputs as cost_inputs
from kvbench.report import econ_figures, figures, perf_figures, recipes_table, style, tables, tier_figures
from kvbench.report.build import build, economics_run
from kvbench.report.figures import wilson
from kvbench.rows.store import ResultStore, load_rows
from kvbench.run.app import run

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {
    "latency_vs_length",
    "speedup_vs_length",
    "exactness_vs_length",
    "efficiency_vs_length",
    "throughput_per_reader",
    "tier_reuse_vs_length",
    "tier_stages_mid",
    "tier_stages_long",
    "tier_loader",  # the fixture's disk, redis and wan rows predate the streaming loader: serial rows
    "codec_ratios",
    "econ_usd_per_mreads",
    "econ_breakeven_link",
    "econ_breakeven_reads",
}
TABLES = {
    "latency",
    "crossover",
    "codecs",
    "breakeven",
    "conclusions",
    "tariffs",
    "prices",
    "econ_paper",
    "econ_meta",
    "exactness",
}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The fixture rows, and the economics rows the real experiment prices from them."""
    root = write_results(tmp_path_factory.mktemp("report") / "results")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["+exp=economics", f"results_dir={root}", "logger=none"])
    run(cfg, root / "economics" / "base")
    return root


@pytest.fixture(scope="module")
def rows(results):
    return load_rows([results])


def _line(ax, label):
    found = [l for l in ax.get_lines() if l.get_label() == label]
    assert len(found) == 1, (label, [l.get_label() for l in ax.get_lines()])
    return list(found[0].get_xdata()), list(found[0].get_ydata())


def _panel(axes, title):
    return next(ax for ax in axes.flat if ax.get_title().startswith(title))


# The fixture's rows carry no floors' inputs (weight bytes, calibration) and its tree no REFERENCE:
# the laptop table and the reproducibility appendix are tested on the committed rows below.
NEED_REAL_ROWS = {"table ridge: no reuse rows of qwen3-4b-random", "table recipes: no run folder with a manifest.json"}


def test_every_figure_and_table_is_written(results, tmp_path):
    report = build(results, tmp_path / "paper")
    assert set(report.skipped) == NEED_REAL_ROWS
    for name in FIGURES:
        for suffix in (".pdf", ".png"):
            assert (tmp_path / "paper" / "figures" / f"{name}{suffix}").stat().st_size > 5000, name
    assert {p.stem for p in (tmp_path / "paper" / "tables").glob("*.tex")} == TABLES | {"numbers"}
    tables = {name: (tmp_path / "paper" / "tables" / f"{name}.tex").read_text() for name in TABLES}
    assert all(t.strip() for t in tables.values())
    assert "49.7x" in tables["conclusions"] and "H200, batched" in tables["conclusions"]
    assert r"\url{https://" in tables["prices"] and "Cloudflare R2" in tables["prices"]
    assert "reuse fast ms" in tables["latency"] and r"\begin{longtable}" in tables["codecs"]
    assert "margin H200 batched" in tables["tariffs"] and r"\$4.589 per device-hour" in tables["econ_paper"]
    assert r"\newcommand{\econrun}{results/economics/base}" in tables["econ_meta"]


def test_missing_rows_skip_with_a_note_and_stale_files_go(results, tmp_path):
    (tmp_path / "paper" / "figures").mkdir(parents=True)
    (tmp_path / "paper" / "figures" / "stale.pdf").write_text("old")
    partial = tmp_path / "results"
    shutil.copytree(results / "run1", partial / "run1")
    report = build(partial, tmp_path / "paper")
    assert "figure throughput_per_reader: no experiment=throughput rows" in report.skipped
    assert any(s.startswith("table conclusions: no experiment=economics rows") for s in report.skipped)
    assert not (tmp_path / "paper" / "figures" / "stale.pdf").exists()


def test_speedup_latency_and_paper_points(rows):
    points = cost_inputs.reuse_points(rows)
    fig, axes = figures.speedup_vs_length(points, {255: 9.0, 3774: 49.7})
    # a panel per reader, a line per model
    fast, graph = _panel(axes, "fast reader"), _panel(axes, "graph reader")
    assert _line(fast, "qwen3-4b-random (random weights)") == ([1024, 4096], [30 / 3.0, 90 / 4.5])
    assert _line(graph, "llama-old (random weights)") == ([1024, 4096], [32 / 10.0, 128 / 10.0])
    stars = next(c for c in fast.collections if c.get_label() == style.PAPER_LABEL)
    assert stars.get_offsets().tolist() == [[255, 9.0], [3774, 49.7]]
    fig, axes = figures.latency_vs_length(points)
    qwen = _panel(axes, "qwen3-4b-random")
    assert _line(qwen, "reuse fast")[1] == [3.0, 4.5] and _line(qwen, "prefill (best)")[1] == [30.0, 90.0]
    assert _line(_panel(axes, "llama-old"), "reuse hf")[1] == [30.0, 30.0]


def test_exactness_has_the_rows_intervals_or_wilsons(rows):
    fig, axes = figures.exactness_vs_length(cost_inputs.exactness_points(rows))
    qwen = _panel(axes, "qwen3-4b-random")
    assert _line(qwen, "bfloat16, fast")[1] == [0.75, 0.75]
    bands = [c.get_paths()[0].vertices[:, 1] for c in qwen.collections]
    assert any(abs(b.min() - 0.41) < 1e-9 and abs(b.max() - 0.93) < 1e-9 for b in bands)
    low, high = wilson(pd.Series([0.5]), pd.Series([8]))  # 4 of 8 documents
    assert (round(low[0], 4), round(high[0], 4)) == (0.2152, 0.7848)
    old = _panel(axes, "llama-old")
    assert any(
        abs(b.min() - 0.2152) < 1e-4 and abs(b.max() - 0.7848) < 1e-4
        for b in (c.get_paths()[0].vertices[:, 1] for c in old.collections)
    )


def test_exactness_points_keep_the_fullest_judgement_of_each_point(rows):
    points = cost_inputs.exactness_points(rows)
    real = points[points["model"] == "tiny-real"]
    # 2 dtypes x 2 readers x 2 lengths over 32 documents, and the control; the later 8-document
    # checks (of 1024, and of 2048 which nothing else measured) are outranked
    assert len(real) == 9 and set(real["num_docs"]) == {32} and 2048 not in set(real["doc_tokens"])
    hf = real[(real["dtype"] == "bfloat16") & (real["reader"] == "hf") & (real["doc_tokens"] == 1024)]
    assert sorted(zip(hf["reference_attn_impl"], hf["exact_fraction"])) == [("eager", 0.5), ("sdpa", 0.75)]
    assert real.loc[real["kernel_control"], "reference_attn_impl"].tolist() == ["eager"]
    old = points[points["model"] == "llama-old"]  # first vintage: no reader, no kernel
    assert set(old["reader"]) == {"hf"} and len(old) == 2


def test_exactness_figure_draws_the_kernel_control_apart_and_only_against_one_pass(rows):
    fig, axes = figures.exactness_vs_length(cost_inputs.exactness_points(rows))
    col = next(i for i, ax in enumerate(axes[0]) if ax.get_title().startswith("tiny-real"))
    top, bottom = axes[0, col], axes[1, col]
    assert _line(top, "bfloat16, hf") == ([1024, 4096], [0.75, 0.75])
    assert _line(bottom, "bfloat16, hf")[1] == pytest.approx([29 / 30, 29 / 30])
    low, high = wilson(pd.Series([29 / 30]), pd.Series([30]))  # over the 30 repeatable pairs
    assert any(
        abs(b.min() - low[0]) < 1e-9 and abs(b.max() - high[0]) < 1e-9
        for b in (c.get_paths()[0].vertices[:, 1] for c in bottom.collections)
    )
    control = "bfloat16, hf: eager one-pass (control)"
    assert control in top.get_legend_handles_labels()[1]
    assert control not in bottom.get_legend_handles_labels()[1]
    assert "bfloat16, hf" in top.get_legend_handles_labels()[1]


def test_exactness_table_counts_documents(rows):
    tex = tables.exactness_table(cost_inputs.exactness_points(rows))
    assert r"bfloat16 & hf & 24/32 & 24/32 & 58/60 \\" in tex  # two-stage: 29 of 30 twice
    assert r"bfloat16 & hf, eager one-pass & 16/32 & -- & 29/30 \\" in tex
    assert r"float32 & fast & 32/32 & 32/32 & 64/64 \\" in tex


def test_economics_figures_plot_the_priced_rows(rows):
    econ, _, _ = economics_run(rows)
    cost = econ[econ["econ_row"] == "cost"]
    tiers = cost[cost["tier"].notna()]
    rate, kv = 4.59, KV_PER_TOKEN * 4096
    fig, axes = econ_figures.usd_per_mreads_vs_length(tiers)
    wan = _panel(axes, "wide area, same zone")  # a panel per tier family
    x, y = _line(wan, "wan same-zone")
    reuse_ms = 500.0 + 1 + 12.0 + 1 + 13
    assert x == [1024, 4096] and y[1] == pytest.approx(1e6 * (reuse_ms / 3.6e6 * rate + kv / 1e9 * 0.09))
    assert _line(wan, "prefill every read")[1] == pytest.approx([1e6 * 30 / 3.6e6 * rate, 1e6 * 90 / 3.6e6 * rate])
    fast = cost[(cost["tier"].isna()) & (cost["reuse_reader"] == "fast")]
    fig, axes = econ_figures.breakeven_link_vs_length(fast, tiers)
    qwen = _panel(axes, "qwen3-4b-random")
    assert _line(qwen, "break-even (fast reader)")[1] == pytest.approx(
        [KV_PER_TOKEN * 1024 / 1e9 / 0.027, kv / 1e9 / 0.0855]
    )
    host = next(c for c in qwen.collections if c.get_label() == "host: measured link")
    assert host.get_offsets()[:, 1].tolist() == [50.0, 50.0]
    batched = cost[(cost["tier"].isna()) & (cost["reuse_basis"] == "batched") & (cost["reuse_reader"] == "shared")]
    fig, ax = econ_figures.breakeven_reads_vs_length(pd.concat([fast, batched]))
    assert _line(ax, "qwen3-4b-random (random weights), single")[1] == pytest.approx([30 / 27, 90 / 85.5])
    assert _line(ax, "qwen3-4b-random (random weights), batched")[1] == pytest.approx([30 / 29.5, 90 / 89.5])


def test_efficiency_throughput_and_tier_figures(rows):
    fig, axes = perf_figures.efficiency_vs_length(cost_inputs.ok_rows(rows, "reuse").query("reuse_efficiency.notna()"))
    assert _line(axes[0, 0], "reuse fast")[1] == pytest.approx([0.1, 0.2])
    assert _line(axes[0, 0], "prefill (best)")[1] == pytest.approx([0.3, 0.5])
    fig, axes = perf_figures.throughput_per_reader(cost_inputs.ok_rows(rows, "throughput"))
    # a panel per model, question length and method; a line per length, its floor dotted beside it
    shared = _panel(axes, "qwen3-4b-random: 32-token questions, shared")
    assert _line(shared, "L=4096") == ([1, 4, 16], [5.0, 1.6, 0.5])
    assert _line(shared, "_L=4096 floor")[1] == pytest.approx([2.2, 0.7, 0.325])
    # a 1-token question (a decode step's shape) is another regime: its own panels, not one line
    batch = cost_inputs.ok_rows(rows, "throughput").assign(query_tokens=32)
    one = batch.assign(query_tokens=1, per_reader_ms=batch["per_reader_ms"] / 10)
    fig, axes = perf_figures.throughput_per_reader(pd.concat([batch, one]))
    shown = {ax.get_title().split(": ")[-1]: ax for ax in axes.flat if ax.get_visible()}
    assert sorted(shown) == [
        "1-token question, naive",
        "1-token question, shared",
        "32-token questions, naive",
        "32-token questions, shared",
    ]
    assert _line(shown["1-token question, shared"], "L=4096")[1] == pytest.approx([0.5, 0.16, 0.05])
    assert _line(shown["32-token questions, shared"], "L=4096")[1] == pytest.approx([5.0, 1.6, 0.5])
    # a run that decoded adds panels of its decode steps
    decoded = batch.assign(
        decode_per_reader_ms=batch["per_reader_ms"] / 4,
        gen_tokens=16,
        decode_per_reader_floor_ms=[0.01 if m == "shared" else 0.1 for m in batch["method"]],
        decode_compute_floor_ms=0.005,
        decode_memory_floor_ms=0.01,
    )
    fig, axes = perf_figures.throughput_per_reader(pd.concat([batch, decoded]))
    shown = {ax.get_title().split(": ")[-1]: ax for ax in axes.flat if ax.get_visible()}
    assert "decode steps, shared" in shown and "32-token questions, shared" in shown
    steps = shown["decode steps, shared"]
    assert _line(steps, "L=4096")[1] == pytest.approx([1.25, 0.4, 0.125])
    assert _line(steps, "_L=4096 floor")[1] == pytest.approx([0.01] * 3)
    assert _line(shown["32-token questions, shared"], "L=4096")[1] == pytest.approx([5.0, 1.6, 0.5])
    tiers = cost_inputs.tier_points(rows)
    fig, axes = tier_figures.tier_stages(tiers, 4096)
    assert 500.0 in {round(p.get_width(), 6) for p in axes[0, 0].patches}
    fig, axes = tier_figures.tier_reuse_vs_length(tiers)
    memory = _panel(axes, "GPU and host memory")  # a panel per tier family
    assert _line(memory, "host")[1] == pytest.approx([1 + 3 + 1 + 13, 1 + 12 + 1 + 13])


def test_text_is_at_least_7pt_and_figures_fit_the_page(results, tmp_path, monkeypatch):
    saved = []
    monkeypatch.setattr(style, "save", lambda fig, path: saved.append(fig))  # keep them to inspect
    build(results, tmp_path / "paper")
    assert len(saved) == len(FIGURES)
    for fig in saved:
        assert fig.get_size_inches()[0] <= style.TEXT_WIDTH_IN + 1e-9
        for text in fig.findobj(matplotlib.text.Text):
            if text.get_text() and text.get_visible():
                assert text.get_fontsize() >= style.MIN_FONT_PT, text.get_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_paper_builds_from_committed_results_without_overfull_boxes(tmp_path):
    shutil.copy(ROOT / "paper" / "main.tex", tmp_path / "main.tex")
    build(ROOT / "results", tmp_path)
    for _ in range(2):
        proc = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout[-3000:]
    log = (tmp_path / "main.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log, [l for l in log.splitlines() if "Overfull" in l]
    assert "Float too large" not in log and (tmp_path / "main.pdf").stat().st_size > 100_000


def test_a_point_measured_by_two_runs_counts_once_at_its_latest():
    """A launcher's demonstration sweep re-measures points the reference sweep has: one point each."""
    base = dict(
        experiment="reuse",
        status="ok",
        model="m",
        weights="random",
        dtype="bfloat16",
        device="H200",
        doc_tokens=1024,
        reader="fast",
        prefill_ms=30.0,
        prefill_best_ms=30.0,
    )
    rows = pd.DataFrame(
        [
            {**base, "reuse_ms": 5.0, "timestamp": pd.Timestamp("2026-11-29", tz="UTC")},
            {**base, "reuse_ms": 4.0, "timestamp": pd.Timestamp("2026-11-30", tz="UTC")},
            {**base, "reuse_ms": 6.0, "timestamp": pd.Timestamp("2026-11-28", tz="UTC"), "reader": "graph"},
        ]
    )
    points = cost_inputs.reuse_points(rows)
    assert points[["reader", "reuse_ms"]].values.tolist() == [["fast", 4.0], ["graph", 6.0]]


def test_a_partial_remeasurement_does_not_replace_the_reference_curve():
    base = dict(
        experiment="reuse",
        status="ok",
        model="m",
        weights="random",
        dtype="bfloat16",
        device="H200",
        reader="fast",
        prefill_ms=30.0,
        prefill_best_ms=30.0,
    )
    sweep = [
        {
            **base,
            "run_dir": "sweep",
            "doc_tokens": n,
            "reuse_ms": 5.0,
            "timestamp": pd.Timestamp("2026-11-29", tz="UTC"),
        }
        for n in (1024, 2048)
    ]
    demo = {
        **base,
        "run_dir": "launcher",
        "doc_tokens": 1024,
        "reuse_ms": 4.0,
        "timestamp": pd.Timestamp("2026-11-30", tz="UTC"),
    }
    points = cost_inputs.reuse_points(pd.DataFrame([*sweep, demo]))
    assert points[["doc_tokens", "reuse_ms"]].values.tolist() == [[1024, 5.0], [2048, 5.0]]


def test_a_tier_keeps_its_colour_and_a_codec_its_dash():
    rows = pd.DataFrame(
        [
            dict(
                model="m", weights="random", tier=t, tier_variant=v, codec=c, doc_tokens=n, reuse_ms=r, prefill_ms=50.0
            )
            for t, v, c, r in (
                ("disk", "warm", None, 200.0),
                ("disk", "warm", "int4-kivi", 60.0),
                ("gpu", None, None, 5.0),
            )
            for n in (4096, 32768)
        ]
    )
    fig, axes = tier_figures.tier_reuse_vs_length(rows)
    found = {l.get_label(): l for ax in axes.flat for l in ax.get_lines()}  # panels per tier family
    plain, int4, gpu = found["disk warm"], found["disk warm + int4-kivi"], found["gpu"]
    assert plain.get_color() == int4.get_color() != gpu.get_color()
    assert plain.get_linestyle() != int4.get_linestyle() and list(int4.get_ydata()) == [60.0, 60.0]


def test_a_model_in_two_dtypes_gets_a_line_per_dtype():
    points = pd.DataFrame(
        [
            dict(
                model="q",
                weights="real",
                dtype=d,
                device="H200",
                doc_tokens=n,
                reader="fast",
                prefill_ms=p,
                reuse_ms=r,
                speedup=p / r,
                speedup_ci_low=None,
                speedup_ci_high=None,
            )
            for d, p, r in (("bfloat16", 20.0, 5.0), ("float32", 40.0, 8.0))
            for n in (1024, 2048)  # a panel of one length would be left to the table
        ]
    )
    fig, axes = figures.latency_vs_length(points)
    panel = _panel(axes, "q")
    assert _line(panel, "reuse fast")[1] == [5.0] * 2 and _line(panel, "reuse fast, float32")[1] == [8.0] * 2
    fig, axes = figures.speedup_vs_length(points)
    fast = _panel(axes, "fast reader")
    assert _line(fast, "q, bfloat16")[1] == [4.0] * 2 and _line(fast, "q, float32")[1] == [5.0] * 2


@pytest.mark.slow
def test_committed_rows_give_the_laptop_table_the_appendix_and_every_number(tmp_path):
    """On the committed rows: the M1 Pro's floors beside the H200's, a captioned appendix of
    recipes, and a value for every number the paper's text cites (context entropy aside, which
    needs rows measured after it was added)."""
    root = Path(__file__).resolve().parents[1] / "results"
    report = build(root, tmp_path / "paper")
    tables = tmp_path / "paper" / "tables"
    ridge = (tables / "ridge.tex").read_text()
    assert "Apple M1 Pro (16-core GPU), specification" in ridge and "NVIDIA H200, calibrated" in ridge
    assert "49.7x" in ridge and "compute" in ridge and "memory" in ridge
    recipes = (tables / "recipes.tex").read_text()
    assert r"\caption{How the rows" in recipes and r"\label{tab:recipes}" in recipes
    assert r"sweep/model=qwen3\_4b\_random" in recipes
    numbers = dict(re.findall(r"\\newcommand\{\\(\w+)\}\{(.*)\}", (tables / "numbers.tex").read_text()))
    missing = {k for k, v in numbers.items() if v == "--"} - {"contextceiling"}
    assert not missing, missing
    assert numbers["mridge"] == "26" and numbers["standinmodel"] == "qwen3-4b-random"
    assert "table ridge" not in " ".join(report.skipped)


def test_the_appendix_reads_each_reference_folders_manifest(tmp_path):
    """The appendix summarises a folder's manifest as its RECIPE does, never parsing the RECIPE back."""
    store = ResultStore(tmp_path / "sweep" / "a")
    for pid, day, sha in (
        (1, "2026-12-01", "abcdef0123"),
        (2, "2026-12-02", "1234567fff"),
        (3, "2026-12-03", "7654321"),
    ):
        job = dict(host="h", pid=pid, start_time=f"{day}T10:00:00", device_name="H200", git_sha=sha)
        store.record_job({**job, "overrides": ["+exp=sweep", f"seed={min(pid, 2)}"]})  # two commands
    (tmp_path / "sweep" / "a" / "RECIPE").unlink()  # derived from the manifest: not what is read
    (tmp_path / "REFERENCE").write_text("sweep/a\n")
    rows = recipes_table.recipe_rows(tmp_path)
    assert rows.to_dict("records") == [
        dict(
            folder="sweep/a",
            jobs=3,
            device="H200",
            days="2026-12-01, 2026-12-02, 2026-12-03",  # the second command ran again, at a later commit
            commits="abcdef0, 1234567, 7654321",
        )
    ]
