"""Storage-tier and codec figures. Each takes rows and returns ``(fig, ax)``; they only plot."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib import ticker

from kvbench.economics import inputs as cost_inputs
from kvbench.report.plot import lines, log_axes, palette, panels, plain
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


def family(rows: pd.DataFrame) -> pd.Series:
    """A tier's family, one panel each (at most 8 tier-and-codec lines in any): memory (GPU and
    pinned host), local disk, Redis, and the wide-area links (same zone apart from the rest)."""
    variant = rows["tier_variant"].fillna("")
    names = {"gpu": "GPU and host memory", "host": "GPU and host memory", "disk": "local disk", "redis": "Redis"}
    return pd.Series(
        [
            names.get(t) or ("wide area, same zone" if v == "same-zone" else "wide area, other links")
            for t, v in zip(rows["tier"], variant)
        ],
        index=rows.index,
    )


def by_tier(points: pd.DataFrame) -> pd.DataFrame:
    """``points`` with ``tier_where`` (tier and variant), ``codec`` (identity where missing) and
    ``family`` (:func:`family`), for :func:`tier_lines`."""
    return points.assign(
        tier_where=where(points.assign(codec="identity")),
        codec=points["codec"].fillna("identity"),
        family=family(points),
    )


def tier_lines(ax, rows: pd.DataFrame, y: str, colors: dict, grid=None) -> None:
    """A line of ``y`` against length per tier (colour) and codec (dash), joining measured
    neighbours only (``grid``: the lengths measured), labelled "tier + codec".
    ``rows``: :func:`by_tier` rows; ``colors``: per ``tier_where``."""
    lines(
        ax,
        rows,
        "doc_tokens",
        y,
        hue="tier_where",
        style="codec",
        colors=colors,
        label=lambda tier, codec: tier if codec == "identity" else f"{tier} + {codec}",
        grid=grid,
    )


def family_panels(points: pd.DataFrame, height: float, draw, ylabel: str, reference=None) -> tuple:
    """A log-log panel per (model, tier family), each with its own legend: ``draw(ax, rows, grid)``
    draws the tier lines, ``reference(rows) -> Series`` (by length) the black reference line."""
    points = points.assign(panel=points["model"] + " | " + points["family"])
    fig, axes, cells = panels(points, by="panel", size=(FULL[0], height), max_cols=2)
    grid = sorted(points["doc_tokens"].unique())
    for _, rows, ax in cells:
        draw(ax, rows, grid)
        if reference is not None:
            ref = reference(rows)
            ax.plot(ref.index, ref.values, color="black", lw=2.0, label="prefill (best)")
        log_axes(ax)
        ax.set_title(f"{rows['family'].iloc[0]} ({rows['model'].iloc[0]})", fontsize=8)
        ax.set(xlabel="document tokens L", ylabel=ylabel)
        ax.legend(loc="best", frameon=False, fontsize=7, handlelength=2.2)
    return fig, axes


def _prefill(rows: pd.DataFrame) -> pd.Series:
    return rows.groupby("doc_tokens")["prefill_ms"].median()


def loader_effect(points: pd.DataFrame):
    """Reuse from the stored tiers through the streaming and the serial loader (dash), beside the
    best prefill (log-log), a panel per tier family; the KV stored as the artifact itself.
    ``points``: :func:`kvbench.economics.inputs.loader_points`."""
    rows = by_tier(points[(points["tier_io"] != "") & (points["codec"] == "identity")])
    colors = palette(rows["tier_where"])
    return family_panels(
        rows,
        2.3,
        lambda ax, panel, grid: lines(ax, panel, "doc_tokens", "reuse_ms", hue="tier_where", style="tier_io",
                                      colors=colors, label=lambda tier, io: f"{tier}, {io}", grid=grid),
        "time to first token (ms)",
        _prefill,
    )  # fmt: skip


def tier_reuse_vs_length(points: pd.DataFrame):
    """Reuse from each tier (and codec) against length beside the model's best prefill (log-log);
    a panel per model and tier family. Colour: the tier; dash: the codec. Where a tier's line
    drops below prefill is its crossover length."""
    points = by_tier(points)
    colors = palette(points["tier_where"])
    return family_panels(
        points,
        2.3,
        lambda ax, rows, grid: tier_lines(ax, rows, "reuse_ms", colors, grid),
        "time to first token (ms)",
        _prefill,
    )


def codec_ratios(rows: pd.DataFrame):
    """Lossless ratio per codec (median over lengths), a bar per model and dtype; the ratios the
    KV set's per-channel order-0 entropy and (16-bit KV) its better context entropy allow are in
    its legend label, not drawn as lines. ``rows``: compress rows (status ok)."""
    ok = rows[rows["codec_lossless"].fillna(False).astype(bool)].copy()
    ok["label"] = [f"{model_label(m, w)} {d}" for m, w, d in zip(ok["model"], ok["weights"], ok["dtype"])]
    ok["context_ratio"] = cost_inputs.context_ratio(ok)
    med = ok.groupby(["label", "codec"], as_index=False)["compress_ratio"].median()
    entropy = ok.groupby("label")[["bound_channel_ratio", "context_ratio"]].median()
    names = {
        label: f"{label} (order-0 {e['bound_channel_ratio']:.2f}"
        + (f", context {e['context_ratio']:.2f})" if pd.notna(e["context_ratio"]) else ")")
        for label, e in entropy.iterrows()
    }
    med["label"] = med["label"].map(names)
    order = med.groupby("codec")["compress_ratio"].max().sort_values(ascending=False).index
    colors = palette(med["label"])
    fig, axes = figure((FULL[0], 1.4 + 0.06 * len(order) * max(1, len(colors))))
    ax = axes[0, 0]
    sns.barplot(data=med, y="codec", x="compress_ratio", hue="label", order=order, palette=colors, ax=ax)
    hatches = ["", "//", "..", "xx", "\\\\", "--", "oo", "++"]
    for i, container in enumerate(ax.containers):  # a hatch per KV set: apart in greyscale too
        for bar in container:
            bar.set_hatch(hatches[i % len(hatches)])
    ax.set(xlabel="lossless compression ratio (x), median over lengths", ylabel="")
    handles, labels = ax.get_legend_handles_labels()
    ax.get_legend().remove()
    fig.legend(
        handles, labels, loc="outside lower center", ncol=2, frameon=False, title="KV set (ratios its entropies allow)"
    )
    return fig, ax
