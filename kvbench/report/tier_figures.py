"""Storage-tier and codec figures. Each takes rows and returns ``(fig, ax)``; they only plot."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib import ticker

from kvbench.report.plot import lines, log_axes, palette, panel_title, panels, plain, shared_legend
from kvbench.report.style import FULL, figure, legend_outside, model_label

STAGES = ["fetch_ms", "load_ms", "decode_ms", "h2d_ms", "attach_ms", "query_ms"]
# A streaming read's fetch, digests and copies overlap inside its load: stacking them would
# count the same milliseconds twice, so its bar shows the load instead.
OVERLAPPED = ["fetch_ms", "h2d_ms"]


def where(rows: pd.DataFrame) -> pd.Series:
    """Tier label per row: tier, variant, and the codec when it is not the identity."""
    variant = rows["tier_variant"].fillna("").map(lambda v: f" {v}" if v else "")
    codec = rows["codec"].fillna("identity").map(lambda c: "" if c == "identity" else f" + {c}")
    return rows["tier"] + variant + codec


def tier_stages(points: pd.DataFrame, doc_tokens: int):
    """Reuse stages per tier at one length, stacked, with the model's best prefill dashed;
    a panel per model. ``points``: :func:`kvbench.economics.inputs.tier_points`."""
    at = points[points["doc_tokens"] == doc_tokens].assign(where=lambda d: where(d))
    models = sorted(at["model"].unique())
    height = 0.5 + 0.17 * at.groupby("model").size().max()
    fig, axes = figure((FULL[0], height), nrows=len(models))
    colors = dict(zip(STAGES, sns.color_palette("colorblind", len(STAGES))))
    for model, ax in zip(models, axes[:, 0]):
        rows = at[at["model"] == model].sort_values("reuse_ms", ascending=False)
        streamed = rows["load_ms"].notna() if "load_ms" in rows else pd.Series(False, index=rows.index)
        left = pd.Series(0.0, index=rows.index)
        for stage in STAGES:
            width = (rows[stage] if stage in rows else pd.Series(0.0, index=rows.index)).fillna(0.0)
            if stage in OVERLAPPED:
                width = width.where(~streamed, 0.0)
            ax.barh(rows["where"], width, left=left, color=colors[stage], label=stage.removesuffix("_ms"), height=0.7)
            left += width
        ax.axvline(rows["prefill_ms"].median(), color="black", ls="--", lw=1.0, label="prefill (best)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(plain))
        ax.set(xlabel="time to first token (ms, median per stage, stacked)", ylabel="")
        ax.set_title(f"L = {doc_tokens}, {model_label(model, rows['weights'].iloc[0])}")
        legend_outside(ax)
    return fig, axes


def by_tier(points: pd.DataFrame) -> pd.DataFrame:
    """``points`` with ``tier_where`` (tier and variant) and ``codec`` (identity where missing),
    for :func:`tier_lines`."""
    return points.assign(tier_where=where(points.assign(codec="identity")), codec=points["codec"].fillna("identity"))


def tier_lines(ax, rows: pd.DataFrame, y: str, colors: dict) -> None:
    """A line of ``y`` against length per tier (colour) and codec (dash and marker), labelled
    "tier + codec". ``rows``: :func:`by_tier` rows; ``colors``: per ``tier_where``."""
    lines(
        ax,
        rows,
        "doc_tokens",
        y,
        hue="tier_where",
        style="codec",
        colors=colors,
        label=lambda tier, codec: tier if codec == "identity" else f"{tier} + {codec}",
    )


def _reuse_beside_prefill(points: pd.DataFrame, height: float, draw) -> tuple:
    """A log-log panel per model: ``draw(ax, rows)`` draws the reuse lines, the model's best prefill
    goes beside them in black (one model: its own prefill runs)."""
    fig, axes, cells = panels(points, size=(FULL[0], height), max_cols=2)
    for _, rows, ax in cells:
        draw(ax, rows)
        prefill = rows.groupby("doc_tokens")["prefill_ms"].median()
        ax.plot(prefill.index, prefill.values, color="black", lw=2.0, label="prefill (best)")
        log_axes(ax)
        panel_title(ax, rows)
        ax.set(xlabel="document tokens L", ylabel="time to first token (ms)")
    shared_legend(fig, axes, ncol=2)
    return fig, axes


def loader_effect(points: pd.DataFrame):
    """Reuse from the stored tiers through the streaming and the serial loader (dash and marker),
    beside the best prefill (log-log); the KV stored as the artifact itself. ``points``:
    :func:`kvbench.economics.inputs.loader_points`."""
    rows = by_tier(points[(points["tier_io"] != "") & (points["codec"] == "identity")])
    colors = palette(rows["tier_where"])
    return _reuse_beside_prefill(
        rows,
        3.6,
        lambda ax, panel: lines(ax, panel, "doc_tokens", "reuse_ms", hue="tier_where", style="tier_io",
                                colors=colors, label=lambda tier, io: f"{tier}, {io}"),
    )  # fmt: skip


def tier_reuse_vs_length(points: pd.DataFrame):
    """Reuse from each tier (and codec) against length beside the model's best prefill (log-log);
    a panel per model. Colour: the tier; dash and marker: the codec. Where a tier's line drops
    below prefill is its crossover length."""
    points = by_tier(points)
    colors = palette(points["tier_where"])
    return _reuse_beside_prefill(points, 4.4, lambda ax, rows: tier_lines(ax, rows, "reuse_ms", colors))


def codec_ratios(rows: pd.DataFrame):
    """Lossless ratio per codec (median over lengths), a bar per model and dtype, each KV set's
    order-0 channel bound dotted in its colour. ``rows``: compress rows (status ok)."""
    ok = rows[rows["codec_lossless"].fillna(False).astype(bool)].copy()
    ok["label"] = [f"{model_label(m, w)} {d}" for m, w, d in zip(ok["model"], ok["weights"], ok["dtype"])]
    med = ok.groupby(["label", "codec"], as_index=False)[["compress_ratio", "bound_channel_ratio"]].median()
    order = med.groupby("codec")["compress_ratio"].max().sort_values(ascending=False).index
    colors = palette(med["label"])
    fig, axes = figure((FULL[0], 0.7 + 0.07 * len(order) * max(1, len(colors))))
    ax = axes[0, 0]
    sns.barplot(data=med, y="codec", x="compress_ratio", hue="label", order=order, palette=colors, ax=ax)
    for label, group in med.groupby("label"):
        ax.axvline(group["bound_channel_ratio"].median(), color=colors[label], lw=1.2, ls=":")
    ax.set(xlabel="lossless compression ratio (x), median over lengths; dotted: order-0 channel bound", ylabel="")
    legend_outside(ax)
    return fig, ax
