"""Plot functions: each takes a DataFrame of rows and returns ``(fig, ax)``; they only plot.

Random-weight models are labelled "(random weights)" in every legend.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def label(df: pd.DataFrame) -> pd.Series:
    """Legend label per row: model name, marked when its weights are random."""
    return df["model"] + df["weights"].map({"random": " (random weights)", "real": ""})


def latency_vs_length(rows: pd.DataFrame):
    """Prefill and reuse time (log-log) against document length, one colour per model."""
    ok = rows[rows["status"] == "ok"].copy()
    ok["label"] = label(ok)
    long = ok.melt(id_vars=["label", "doc_tokens"], var_name="path", value_name="ms",
                   value_vars=[c for c in ("prefill_ms", "reuse_ms", "reuse_graph_ms") if c in ok])
    long["path"] = long["path"].map({"prefill_ms": "prefill", "reuse_ms": "reuse (HF eager)",
                                     "reuse_graph_ms": "reuse (CUDA graph)"})
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(data=long.dropna(), x="doc_tokens", y="ms", hue="label", style="path", marker="o", ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="document tokens L", ylabel="time to first token (ms, median)")
    ax.legend(fontsize=7)
    return fig, ax


def speedup_vs_length(rows: pd.DataFrame, column: str = "speedup"):
    """Speedup of reuse over prefill against document length, with its bootstrap CI where known."""
    ok = rows[(rows["status"] == "ok") & rows[column].notna()].copy()
    ok["label"] = label(ok)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(data=ok, x="doc_tokens", y=column, hue="label", marker="o", ax=ax)
    if column == "speedup" and "speedup_ci_low" in ok:
        for _, group in ok.groupby("label"):
            ax.fill_between(group["doc_tokens"], group["speedup_ci_low"], group["speedup_ci_high"], alpha=0.2)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel="document tokens L", ylabel=f"{column} (prefill / reuse)")
    ax.legend(fontsize=7)
    return fig, ax


def exactness_vs_length(rows: pd.DataFrame):
    """Exact-continuation and bitwise two-stage rates against document length."""
    ok = rows[(rows["status"] == "ok") & rows["exact_fraction"].notna()].copy()
    ok["label"] = label(ok)
    long = ok.melt(id_vars=["label", "doc_tokens"], value_vars=["exact_fraction", "bitwise_twostage"],
                   var_name="rate", value_name="fraction")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(data=long, x="doc_tokens", y="fraction", hue="label", style="rate", marker="o", ax=ax)
    ax.set(xscale="log", ylim=(-0.05, 1.05), xlabel="document tokens L", ylabel="fraction of documents")
    ax.legend(fontsize=7)
    return fig, ax


def tier_stages(rows: pd.DataFrame, doc_tokens: int):
    """Stacked reuse stages per tier at one length, prefill as a reference line."""
    ok = rows[(rows["status"] == "ok") & (rows["doc_tokens"] == doc_tokens)].copy()
    ok["where"] = ok["tier"] + ok["tier_variant"].fillna("").map(lambda v: f" {v}" if v else "")
    stages = ["fetch_ms", "decode_ms", "h2d_ms", "attach_ms", "query_ms"]
    table = ok.set_index("where")[stages].fillna(0.0)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    table.plot.barh(stacked=True, ax=ax, colormap="viridis")
    if len(ok):
        ax.axvline(ok["prefill_ms"].median(), color="red", ls="--", label="prefill")
    ax.set(xlabel="ms (median per stage, stacked)", ylabel="", title=f"L = {doc_tokens}")
    ax.legend(fontsize=7)
    return fig, ax


def codec_ratios(rows: pd.DataFrame):
    """Lossless compression ratio per codec beside the order-0 channel bound."""
    ok = rows[(rows["status"] == "ok") & (rows["codec_lossless"] == True)].copy()  # noqa: E712
    ok["label"] = label(ok) + " " + ok["dtype"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.barplot(data=ok, y="codec", x="compress_ratio", hue="label", ax=ax, errorbar=None)
    for bound in ok["bound_channel_ratio"].dropna().unique()[:4]:
        ax.axvline(bound, color="grey", lw=0.6, ls=":")
    ax.set(xlabel="lossless ratio (dotted: order-0 channel bound)", ylabel="")
    ax.legend(fontsize=7)
    return fig, ax
