"""How close the readers come to their floors: efficiency per reader and batched throughput.
Drawn from the columns the roofline and throughput runs add; each returns ``(fig, ax)``."""

from __future__ import annotations

import pandas as pd

from matplotlib import ticker

from kvbench.report.plot import length_axis, lines, log_axes, palette, panel_title, panels, plain, shared_legend
from kvbench.report.style import FULL

FLOORS = (("per_reader_floor_ms", "--", "floor"), ("compute_floor_ms", ":", "compute floor"),
          ("memory_floor_ms", "-.", "memory floor"))


def efficiency_vs_length(rows: pd.DataFrame):
    """Floor / measured time of reuse and of prefill against length, a line per reader; a panel
    per model. ``rows``: reuse rows with ``reader``, ``reuse_efficiency``, ``prefill_efficiency``."""
    parts = [rows.assign(side=f"{side} ", value=rows[f"{side}_efficiency"]) for side in ("reuse", "prefill")
             if f"{side}_efficiency" in rows]
    long = pd.concat(parts, ignore_index=True)
    long["line"] = long["side"] + long["reader"].fillna("")
    # Prefill does not depend on the reader: one line per side when every reader shares it.
    long.loc[long["side"] == "prefill ", "line"] = "prefill (best)"
    long = long.drop_duplicates(["model", "dtype", "doc_tokens", "line"])
    fig, axes, cells = panels(long, size=(FULL[0], 2.4))
    colors = {**palette(long["line"]), "prefill (best)": "black"}
    for _, group, ax in cells:
        lines(ax, group, "doc_tokens", "value", hue="line", colors=colors)
        length_axis(ax)
        ax.set(ylim=(0, 1.05), xlabel="document tokens L", ylabel="efficiency (floor / measured)")
        panel_title(ax, group)
    shared_legend(fig, axes)
    return fig, axes


def throughput_per_reader(rows: pd.DataFrame):
    """Device time per reader against readers per batch (log-log), a line per length and method,
    the per-reader, compute and memory floors in the length's colour; a panel per model and
    question length (a 1-token question is a decode step's shape, a different regime).
    ``rows``: throughput rows (status ok)."""
    questions = rows["query_tokens"] if "query_tokens" in rows else pd.Series(float("nan"), index=rows.index)
    rows = rows.assign(length=rows["doc_tokens"].map(lambda n: f"L={n}"), questions=questions,
                       panel=[f"{m}|{q:08.0f}" for m, q in zip(rows["model"], questions)])
    colors = palette(rows["length"])
    fig, axes, cells = panels(rows, by="panel", size=(FULL[0], 2.8), max_cols=2)
    for _, group, ax in cells:
        lines(ax, group, "batch", "per_reader_ms", hue="length", style="method", colors=colors)
        for length, g in group.drop_duplicates(["doc_tokens", "batch"]).groupby("length"):
            g = g.sort_values("batch")
            for col, dash, name in FLOORS:
                if col in g and g[col].notna().any():
                    ax.plot(g["batch"], g[col], color=colors[length], ls=dash, lw=0.8, label=f"{length}, {name}")
        log_axes(ax)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(plain))
        panel_title(ax, group)
        q = group["questions"].iloc[0]
        if pd.notna(q):
            ax.set_title(f"{ax.get_title()}, {q:.0f}-token question{'s' if q > 1 else ''}")
        ax.set(xlabel="readers per batch B", ylabel="device time per reader (ms)")
    shared_legend(fig, axes, ncol=4)
    return fig, axes
