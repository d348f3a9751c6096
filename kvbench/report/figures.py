"""Latency, speedup and exactness figures from reuse rows. Each function takes rows and
returns ``(fig, ax)`` (``ax`` an array of panels where there is one per model); they only plot.

Models never share a panel or a statistic; random-weight models are marked in panel titles.
"""

from __future__ import annotations

import pandas as pd
from scipy.stats import binomtest

from kvbench.economics import inputs as cost_inputs
from kvbench.report.plot import (
    length_axis,
    lines,
    log_axes,
    measured_enough,
    palette,
    panel_title,
    panels,
    shared_legend,
)
from kvbench.report.style import FULL, PAPER_LABEL, PAPER_POINT, figure, model_label


def latency_vs_length(points: pd.DataFrame):
    """Best prefill and each reader's reuse (log-log) against length; one panel per model.

    ``points``: :func:`kvbench.economics.inputs.reuse_points`.
    """
    points = measured_enough(points, "model", "doc_tokens", "reuse_ms")  # one-length models: the table
    prefill = points.drop_duplicates(cost_inputs.IDENTITY).assign(path="prefill (best)", ms=lambda d: d["prefill_ms"])
    reuse = points.assign(path="reuse " + points["reader"], ms=points["reuse_ms"])
    long = pd.concat([prefill, reuse], ignore_index=True)
    colors = {**palette(long["path"]), "prefill (best)": "black"}
    fig, axes, cells = panels(long, size=(FULL[0], 2.4))
    for _, rows, ax in cells:
        # a model measured in several dtypes: a line (dash, marker) per dtype, never one across them
        lines(
            ax,
            rows,
            "doc_tokens",
            "ms",
            hue="path",
            style="dtype",
            colors=colors,
            label=lambda path, dtype: path if dtype == "bfloat16" else f"{path}, {dtype}",
        )
        log_axes(ax)
        panel_title(ax, rows)
        ax.set(xlabel="document tokens L", ylabel="time to first token (ms)")
    shared_legend(fig, axes)
    return fig, axes


def speedup_vs_length(points: pd.DataFrame, paper_points: dict[int, float] | None = None):
    """Best prefill / reuse (log-log) with its bootstrap band: a panel per reader, a line per
    model (and dtype where a model ran in several), the reference paper's own points as stars.

    ``paper_points``: length -> speedup the paper reports (drawn as stars, "M1 Pro (paper)").
    """
    points = measured_enough(points.assign(series=points["model"] + points["dtype"]), "series", "doc_tokens", "speedup")
    several = points.groupby("model")["dtype"].transform("nunique") > 1  # then each dtype is its own line
    points = points.assign(
        label=[
            model_label(m, w) + (f", {d}" if many else "")
            for m, w, d, many in zip(points["model"], points["weights"], points["dtype"], several)
        ]
    )
    colors = palette(points["label"])
    readers = [r for r in cost_inputs.READER_PREFERENCE if r in set(points["reader"])]
    fig, axes = figure((FULL[0] / max(len(readers), 1), 2.5), ncols=max(len(readers), 1), sharey=True)
    grid = sorted(points["doc_tokens"].unique())
    for ax, reader in zip(axes[0], readers):
        mine = points[points["reader"] == reader]
        lines(ax, mine, "doc_tokens", "speedup", hue="label", colors=colors, grid=grid)
        for label, group in mine.dropna(subset=["speedup_ci_low"]).groupby("label"):
            group = group.sort_values("doc_tokens")
            ax.fill_between(
                group["doc_tokens"],
                group["speedup_ci_low"],
                group["speedup_ci_high"],
                color=colors[label],
                alpha=0.15,
                linewidth=0,
            )
        if paper_points:
            ax.scatter(list(paper_points), list(paper_points.values()), label=PAPER_LABEL, **PAPER_POINT)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        log_axes(ax)
        ax.set_title(f"{reader} reader")
        ax.set(xlabel="document tokens L", ylabel="best prefill / reuse" if reader == readers[0] else None)
    shared_legend(fig, axes, ncol=3)
    return fig, axes


def wilson(rate: pd.Series, n: pd.Series) -> tuple[pd.Series, pd.Series]:
    """95% Wilson interval of a rate observed over ``n`` documents (k = rate x n)."""
    bounds = [
        binomtest(int(round(r * k)), int(k)).proportion_ci(0.95, method="wilson") if k > 0 else None
        for r, k in zip(rate, n.fillna(0))
    ]
    return (
        pd.Series([b.low if b else float("nan") for b in bounds], index=rate.index),
        pd.Series([b.high if b else float("nan") for b in bounds], index=rate.index),
    )


# The two rates drawn, top and bottom: against a one-pass prefill of document and question (the
# claim), and bit for bit against the same computation split in two (storing the KV changes nothing).
EXACTNESS_RATES = (("exact_fraction", "= one-pass\n(24 tokens)"), ("bitwise_twostage", "bitwise =\ntwo-stage"))


def exactness_long(points: pd.DataFrame) -> pd.DataFrame:
    """Exactness rates as one row per (point, rate) with their 95% Wilson intervals: the
    rows' ``*_ci_low``/``*_ci_high`` where present, else computed from the documents judged
    (``num_docs``; ``bitwise_twostage_n`` where present).
    ``points``: :func:`kvbench.economics.inputs.exactness_points`."""
    parts = []
    for rate, name in EXACTNESS_RATES:
        if rate not in points:
            continue
        r = points[points[rate].notna()].copy()
        n = r[f"{rate}_n"].fillna(r["num_docs"]) if f"{rate}_n" in r else r["num_docs"]
        low, high = wilson(r[rate], n)
        r["ci_low"] = r[f"{rate}_ci_low"].fillna(low) if f"{rate}_ci_low" in r else low
        r["ci_high"] = r[f"{rate}_ci_high"].fillna(high) if f"{rate}_ci_high" in r else high
        parts.append(r.assign(rate=name, value=r[rate]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["model", "rate", "kernel_control"])


def exactness_vs_length(points: pd.DataFrame):
    """Exact-continuation (top) and bitwise two-stage (bottom) rates with 95% Wilson intervals
    against length: a column of panels per model, a colour per dtype, a dash and marker per
    reader. The kernel-choice control (the one-pass reference on eager attention) is drawn as
    lone crosses in the top row. ``points``: :func:`kvbench.economics.inputs.exactness_points`."""
    long = exactness_long(points)
    models = sorted(long["model"].unique(), key=str)
    fig, axes = figure((FULL[0] / max(len(models), 1), 1.75), ncols=max(len(models), 1), nrows=len(EXACTNESS_RATES))
    colors = palette(long["dtype"])
    for col, model in enumerate(models):
        for row, (_, name) in enumerate(EXACTNESS_RATES):
            ax, group = axes[row, col], long[(long["model"] == model) & (long["rate"] == name)]
            # the control changes only the one-pass reference: the two-stage rate does not see it
            main = group[~group["kernel_control"]]
            control = group[group["kernel_control"]] if row == 0 else group.iloc[0:0]
            lines(ax, main, "doc_tokens", "value", hue="dtype", style="reader", colors=colors)
            for (dtype, _), g in main.groupby(["dtype", "reader"]):
                g = g.sort_values("doc_tokens")
                ax.fill_between(
                    g["doc_tokens"], g["ci_low"], g["ci_high"], color=colors[dtype], alpha=0.10, linewidth=0
                )
                # bars too: a band over one length has no width
                ax.errorbar(
                    g["doc_tokens"],
                    g["value"],
                    yerr=[g["value"] - g["ci_low"], g["ci_high"] - g["value"]],
                    fmt="none",
                    ecolor=colors[dtype],
                    elinewidth=0.8,
                    capsize=2,
                    alpha=0.7,
                )
            for (dtype, reader, kernel), g in control.groupby(["dtype", "reader", "reference_attn_impl"]):
                ax.errorbar(
                    g["doc_tokens"],
                    g["value"],
                    yerr=[g["value"] - g["ci_low"], g["ci_high"] - g["value"]],
                    fmt="x" if reader == "hf" else "+",
                    color=colors[dtype],
                    markersize=7,
                    capsize=2,
                    linestyle="none",
                    label=f"{dtype}, {reader}: {kernel} one-pass (control)",
                )
            length_axis(ax)
            ax.set(
                ylim=(-0.03, 1.05),
                xlabel="document tokens L" if row == len(EXACTNESS_RATES) - 1 else None,
                ylabel=f"fraction {name}" if col == 0 else None,
            )
            if row == 0:
                panel_title(ax, group)
    shared_legend(fig, axes, ncol=4)
    return fig, axes
