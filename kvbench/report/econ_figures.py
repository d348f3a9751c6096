"""Economics figures, from economics rows (``+exp=economics``). Each returns ``(fig, ax)``."""

from __future__ import annotations

import pandas as pd

from kvbench.report.plot import lines, log_axes, palette, panel_title, panels, shared_legend
from kvbench.report.style import FULL, HALF, figure, model_label
from kvbench.report.tier_figures import by_tier, family_panels, tier_lines


def _price(rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    return f"{first['gpu_price']} ${first['gpu_usd_per_hour']:.2f}/GPU-h"


def usd_per_mreads_vs_length(tiers: pd.DataFrame):
    """Dollars per million reads from each tier (device time, plus egress for the wan tier)
    against length, with every reader prefilling as the black reference; a panel per model and
    tier family. ``tiers``: economics cost rows of tier points."""
    tiers = by_tier(tiers)
    colors = palette(tiers["tier_where"])

    def draw(ax, rows: pd.DataFrame, grid) -> None:
        # the black reference drawn here, not by family_panels: its label is not "prefill (best)"
        tier_lines(ax, rows, "reuse_usd_per_mreads", colors, grid)
        prefill = rows.groupby("doc_tokens")["prefill_usd_per_mreads"].median()
        ax.plot(prefill.index, prefill.values, color="black", lw=2.0, label="prefill every read")

    fig, axes = family_panels(tiers, 2.3, draw, "USD per million reads")
    fig.suptitle(_price(tiers), fontsize=7)
    return fig, axes


def breakeven_link_vs_length(reuse: pd.DataFrame, tiers: pd.DataFrame):
    """The slowest link from which a fetched KV still beats prefill (GB/s, per model through its
    best reader) against length; each tier's measured link (or fetch rate) as markers."""
    reuse = reuse.assign(label=[f"break-even ({r} reader)" for r in reuse["reuse_reader"]])
    fig, axes, cells = panels(reuse, size=(FULL[0], 2.8))
    marks = palette(tiers["tier"]) if len(tiers) else {}
    for model, rows, ax in cells:
        lines(ax, rows, "doc_tokens", "breakeven_link_gbps", hue="label", colors={l: "black" for l in rows["label"]})
        mine = tiers[
            (tiers["model"] == model) & (tiers["codec"].fillna("identity") == "identity") & (tiers["tier"] != "gpu")
        ]  # the GPU tier moves no bytes
        for tier, group in mine.groupby("tier"):
            link = group["link_gbps"].fillna(group["fetch_gbps"]) if "fetch_gbps" in group else group["link_gbps"]
            ax.scatter(group["doc_tokens"], link, color=marks[tier], marker="D", s=16, label=f"{tier}: measured link")
        log_axes(ax)
        panel_title(ax, rows)
        ax.set(xlabel="document tokens L", ylabel="break-even link (GB/s)")
    shared_legend(fig, axes, ncol=4)
    return fig, axes


def breakeven_reads_vs_length(reuse: pd.DataFrame):
    """N*: readers from which storing the KV (one prefill to write it) beats prefilling for each,
    against length, per model through its best reader (dashed: per reader in a batch)."""
    reuse = reuse.assign(label=[model_label(m, w) for m, w in zip(reuse["model"], reuse["weights"])])
    fig, axes = figure(HALF)
    ax = axes[0, 0]
    lines(ax, reuse, "doc_tokens", "breakeven_reads", hue="label", style="reuse_basis")
    ax.axhline(2.0, color="grey", lw=0.8, ls=":")
    log_axes(ax)
    ax.set(xlabel="document tokens L", ylabel="break-even readers N*")
    shared_legend(fig, axes, ncol=1)
    return fig, ax
