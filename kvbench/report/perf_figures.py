"""How close the readers come to their floors: efficiency per reader and batched throughput.
Drawn from the columns the roofline and throughput runs add; each returns ``(fig, ax)``."""

from __future__ import annotations

import pandas as pd
from matplotlib import ticker
from matplotlib.lines import Line2D

from kvbench.report.plot import (
    length_axis,
    lines,
    log_axes,
    measured_enough,
    palette,
    panel_title,
    panels,
    plain,
    shared_legend,
)
from kvbench.report.style import FULL


def efficiency_vs_length(rows: pd.DataFrame):
    """Floor / measured time of reuse and of prefill against length, a line per reader; a panel
    per model. ``rows``: reuse rows with ``reader``, ``reuse_efficiency``, ``prefill_efficiency``."""
    parts = [
        rows.assign(side=f"{side} ", value=rows[f"{side}_efficiency"])
        for side in ("reuse", "prefill")
        if f"{side}_efficiency" in rows
    ]
    long = pd.concat(parts, ignore_index=True)
    long["line"] = long["side"] + long["reader"].fillna("")
    # Prefill does not depend on the reader: one line per side when every reader shares it.
    long.loc[long["side"] == "prefill ", "line"] = "prefill (best)"
    long = long.drop_duplicates(["model", "dtype", "doc_tokens", "line"])
    long = measured_enough(long, "model", "doc_tokens", "value")  # no empty or one-length panels
    fig, axes, cells = panels(long, size=(FULL[0], 2.4))
    colors = {**palette(long["line"]), "prefill (best)": "black"}
    for _, group, ax in cells:
        lines(ax, group, "doc_tokens", "value", hue="line", colors=colors)
        length_axis(ax)
        ax.set(ylim=(0, 1.05), xlabel="document tokens L", ylabel="efficiency (floor / measured)")
        panel_title(ax, group)
    shared_legend(fig, axes)
    return fig, axes


DECODE_COLUMNS = {
    "per_reader_ms": "decode_per_reader_ms",
    "per_reader_floor_ms": "decode_per_reader_floor_ms",
    "compute_floor_ms": "decode_compute_floor_ms",
    "memory_floor_ms": "decode_memory_floor_ms",
}


def _decode_steps(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that also decoded (``gen_tokens`` > 0), as points of one decode step: per-reader
    step time and its floors in the columns the question's forward uses, question length 0."""
    if "decode_per_reader_ms" not in rows:
        return rows.iloc[0:0]
    steps = rows[rows["decode_per_reader_ms"].notna()]
    return steps.assign(questions=0.0, **{col: steps[src] for col, src in DECODE_COLUMNS.items()})


def throughput_per_reader(rows: pd.DataFrame):
    """Device time per reader against readers per batch (log-log), a line per length with its
    per-reader floor dotted in the length's colour; a panel per model, question length (a 1-token
    question is a decode step's shape, a different regime) and method, and one per model and
    method for the decode steps of runs that decoded (``throughput.gen_tokens``).
    ``rows``: throughput rows (status ok); a point measured by two runs is drawn at its latest."""
    questions = rows["query_tokens"] if "query_tokens" in rows else pd.Series(float("nan"), index=rows.index)
    rows = rows.assign(questions=questions)
    rows = pd.concat([rows, _decode_steps(rows)], ignore_index=True)
    point = ["model", "weights", "dtype", "device", "doc_tokens", "questions", "method", "batch"]
    rows = rows.sort_values("timestamp", na_position="first", kind="stable") if "timestamp" in rows else rows
    rows = rows.drop_duplicates([c for c in point if c in rows], keep="last")
    rows = rows.assign(
        length=rows["doc_tokens"].map(lambda n: f"L={n}"),
        panel=[f"{m}|{q:08.0f}" for m, q in zip(rows["model"], rows["questions"])],
    )
    colors = palette(rows["length"])
    rows = rows.assign(panel=rows["panel"] + "|" + rows["method"])
    fig, axes, cells = panels(rows, by="panel", size=(FULL[0], 1.9), max_cols=2)
    for _, group, ax in cells:
        # a line per length (at most 4), and beside it in the same colour, dotted, its per-reader floor
        lines(ax, group, "batch", "per_reader_ms", hue="length", colors=colors)
        for length, g in group.groupby("length"):
            g = g.sort_values("batch")
            if "per_reader_floor_ms" in g and g["per_reader_floor_ms"].notna().any():
                ax.plot(
                    g["batch"], g["per_reader_floor_ms"], color=colors[length], ls=":", lw=0.9, label=f"_{length} floor"
                )
        log_axes(ax)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(plain))
        q, method = group["questions"].iloc[0], group["method"].iloc[0]
        what = "decode steps" if q == 0 else f"{q:.0f}-token question{'s' if q > 1 else ''}" if pd.notna(q) else ""
        ax.set_title(f"{group['model'].iloc[0]}: {what}, {method}", fontsize=7)
        ax.set(xlabel="readers per batch B", ylabel="device time per reader (ms)")
    floor = Line2D([], [], color="grey", ls=":", lw=0.9, label="per-reader floor (dotted, in the length's colour)")
    shared_legend(fig, axes, ncol=5, extra=[floor])
    return fig, axes
