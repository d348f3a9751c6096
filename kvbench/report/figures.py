"""Plot functions: each takes a DataFrame of rows and returns ``(fig, ax)``; they only plot.

Random-weight models are labelled "(random weights)" in every legend.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from kvbench.crossover import best_prefill_ms  # noqa: E402


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


def _where(rows: pd.DataFrame) -> pd.Series:
    """Tier label per row: tier, variant, and the codec when it is not the identity."""
    variant = rows["tier_variant"].fillna("").map(lambda v: f" {v}" if v else "")
    codec = rows["codec"].fillna("identity").map(lambda c: "" if c == "identity" else f" + {c}")
    return rows["tier"] + variant + codec


def tier_stages(rows: pd.DataFrame, doc_tokens: int):
    """Stacked reuse stages per tier at one length, the best prefill as a reference line."""
    ok = rows[(rows["status"] == "ok") & (rows["doc_tokens"] == doc_tokens)].copy()
    ok["where"] = _where(ok)
    stages = ["fetch_ms", "decode_ms", "h2d_ms", "attach_ms", "query_ms"]
    table = ok.sort_values("reuse_ms").set_index("where")[stages].fillna(0.0)
    fig, ax = plt.subplots(figsize=(6.4, 0.6 + 0.32 * max(len(table), 4)))
    table.plot.barh(stacked=True, ax=ax, colormap="viridis")
    if len(ok):
        ax.axvline(ok.apply(best_prefill_ms, axis=1).median(), color="red", ls="--",
                   label="prefill (best of eager, graph)")
    title = f"L = {doc_tokens}" + (f", {label(ok).iloc[0]}" if len(ok) else "")
    ax.set(xlabel="ms (median per stage, stacked)", ylabel="", title=title)
    ax.legend(fontsize=7, loc="lower right")
    return fig, ax


def tier_reuse_vs_length(rows: pd.DataFrame):
    """Reuse time from every tier against document length, beside the best prefill (log-log).

    Where a tier's line drops below prefill is its crossover length (:mod:`kvbench.crossover`).
    """
    ok = rows[rows["status"] == "ok"].copy()
    ok["where"] = _where(ok)
    ok["best_prefill_ms"] = ok.apply(best_prefill_ms, axis=1)
    fig, ax = plt.subplots(figsize=(9.0, 4.6))
    sns.lineplot(data=ok, x="doc_tokens", y="reuse_ms", hue="where", style="codec", marker="o", ax=ax)
    prefill = ok.groupby("doc_tokens")["best_prefill_ms"].median()
    ax.plot(prefill.index, prefill.values, color="black", lw=2.2, label="prefill (best of eager, graph)")
    model = f" ({label(ok).iloc[0]})" if len(ok) else ""
    ax.set(xscale="log", yscale="log", xlabel="document tokens L",
           ylabel="time to first token (ms, median)", title=f"reuse from each tier vs. prefill{model}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig, ax


def codec_ratios(rows: pd.DataFrame):
    """Lossless compression ratio per codec, each KV set's order-0 channel bound in its colour."""
    ok = rows[(rows["status"] == "ok") & (rows["codec_lossless"] == True)].copy()  # noqa: E712
    ok["label"] = label(ok) + " " + ok["dtype"]
    labels = sorted(ok["label"].unique())
    palette = dict(zip(labels, sns.color_palette(n_colors=len(labels))))
    fig, ax = plt.subplots(figsize=(8.4, 4.8))
    sns.barplot(data=ok, y="codec", x="compress_ratio", hue="label", hue_order=labels, palette=palette,
                ax=ax, errorbar=None)
    for name, group in ok.groupby("label"):
        ax.axvline(group["bound_channel_ratio"].median(), color=palette[name], lw=1.2, ls=":")
    ax.set(xlabel="lossless ratio, median over lengths (dotted: order-0 channel bound)", ylabel="")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig, ax
