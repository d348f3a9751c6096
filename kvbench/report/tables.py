"""LaTeX tables (booktabs) of latency, crossovers and codecs, from rows. Sized for a 6.5 in
text block at ``\\small``: few columns, models as group headers instead of a column."""

from __future__ import annotations

import pandas as pd

from kvbench.economics import inputs as cost_inputs
from kvbench.report.latex import fmt, table
from kvbench.report.style import model_label


def _group(df: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [
            f"{model_label(m, w)}, {d}, {dev}"
            for m, w, d, dev in zip(df["model"], df["weights"], df["dtype"], df["device"])
        ],
        index=df.index,
    )


def latency_table(points: pd.DataFrame) -> str:
    """Best prefill and each reader's reuse per model and length, and the best reader's speedup.
    ``points``: :func:`kvbench.economics.inputs.reuse_points`."""
    wide = points.pivot_table(index=cost_inputs.IDENTITY, columns="reader", values="reuse_ms").reset_index()
    best = cost_inputs.headline(points).set_index(cost_inputs.IDENTITY)
    wide = wide.join(best[["prefill_ms", "speedup", "reader"]], on=cost_inputs.IDENTITY)
    wide["group"] = _group(wide)
    readers = [r for r in cost_inputs.READER_PREFERENCE[::-1] if r in wide]
    cols = [("doc_tokens", "L", "r", fmt("{:d}")), ("prefill_ms", "prefill ms", "r", fmt("{:.1f}"))]
    cols += [(r, f"reuse {r} ms", "r", fmt("{:.1f}")) for r in readers]
    cols += [("speedup", "speedup", "r", fmt("{:.1f}x")), ("reader", "best reader", "l", fmt("{}"))]
    return table(wide.sort_values(["group", "doc_tokens"]), cols, group="group")


def crossover_table(crossings: pd.DataFrame) -> str:
    """Crossover length per (model, tier, variant, loader, codec), from
    :func:`kvbench.economics.crossover.crossovers`."""
    crossings = crossings.assign(group=crossings["model"] + ", " + crossings["dtype"] + ", " + crossings["device"])
    cols = [
        ("tier", "tier", "l", fmt("{}")),
        ("tier_variant", "variant", "l", fmt("{}")),
        ("tier_io", "loader", "l", fmt("{}")),
        ("codec", "codec", "l", fmt("{}")),
        ("label", "crossover L", "r", fmt("{}")),
        ("crossover_interp", "interpolated", "r", fmt("{:.0f}")),
    ]
    return table(crossings, cols, group="group")


def codec_table(rows: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """Per model and dtype, every codec at the longest length measured (a lossy codec: over the most
    documents, then the longest length): ratio beside the ratio the
    per-channel order-0 entropy allows and (16-bit KV, where measured) the one the better context
    entropy allows, decode speed, and for lossy codecs the exactness and NLL given up, the NLL
    change with its interval over documents (a longtable)."""
    ok = rows.copy()
    # a lossy codec's row over the most documents (its interval is the point), then the longest length
    docs = ok["num_docs"].where(ok["nll_delta"].notna()).fillna(0) if "nll_delta" in ok else 0
    ok = ok.assign(_docs=docs)
    keys = ["model", "dtype", "codec"]
    ok = ok[ok["_docs"] == ok.groupby(keys)["_docs"].transform("max")]
    ok = ok[ok["doc_tokens"] == ok.groupby(keys)["doc_tokens"].transform("max")].drop(columns="_docs")
    ok["group"] = _group(ok)
    if "entropy_prev_token_bits" in ok:
        ok["context_ratio"] = cost_inputs.context_ratio(ok)
    lossy = ok["nll_delta"].notna() if "nll_delta" in ok else pd.Series(False, index=ok.index)
    ok["docs"] = ok["num_docs"].where(lossy) if "num_docs" in ok else None
    if "nll_delta_ci_low" in ok:
        ok["nll_ci"] = [
            f"[{lo:+.3f}, {hi:+.3f}]" if pd.notna(lo) else None
            for lo, hi in zip(ok["nll_delta_ci_low"], ok["nll_delta_ci_high"])
        ]
    cols = [
        ("codec", "codec", "l", fmt("{}")),
        ("doc_tokens", "L", "r", fmt("{:d}")),
        ("compress_ratio", "ratio", "r", fmt("{:.3f}")),
        ("bound_channel_ratio", "order-0", "r", fmt("{:.3f}")),
        ("context_ratio", "context", "r", fmt("{:.3f}")),
        ("decode_gbps", "dec GB/s", "r", fmt("{:.3g}")),
        ("decode_device_gbps", "dev GB/s", "r", fmt("{:.3g}")),
        ("docs", "docs", "r", fmt("{:.0f}")),
        ("exact_fraction", "exact", "r", fmt("{:.2f}")),
        ("nll_delta", "dNLL", "r", fmt("{:+.3f}")),
        ("nll_ci", "95% CI", "l", fmt("{}")),
    ]
    cols = [c for c in cols if c[0] in ok]
    order = ok.sort_values(["group", "compress_ratio"], ascending=[True, False])
    return table(order, cols, group="group", long=True, caption=caption, label=label)


def _count(rate: pd.Series, n: pd.Series) -> pd.Series:
    """``k/n`` documents from a rate over ``n`` documents."""
    return pd.Series([f"{round(r * k):d}/{int(k):d}" for r, k in zip(rate, n)], index=rate.index)


def exactness_table(points: pd.DataFrame) -> str:
    """Documents whose 24-token continuation after reuse equals the one-pass prefill's, as k/n,
    per model, dtype and reader (rows) and length (columns); then, over all lengths, those whose
    logits and tokens equal the two-stage computation bit for bit (among the pairs whose reuse
    repeated itself). The kernel-choice control's rows name their one-pass kernel.
    ``points``: :func:`kvbench.economics.inputs.exactness_points`."""
    p = points.assign(cell=_count(points["exact_fraction"], points["num_docs"]))
    kernels = zip(p["reference_attn_impl"], p["kernel_control"])
    p["who"] = p["reader"] + [f", {kernel} one-pass" if control else "" for kernel, control in kernels]
    p["group"] = [f"{model_label(m, w)}, {dev}" for m, w, dev in zip(p["model"], p["weights"], p["device"])]
    key = ["group", "dtype", "who"]
    wide = p.pivot_table(index=key, columns="doc_tokens", values="cell", aggfunc="first")
    if "bitwise_twostage" in p:
        both = p[p["bitwise_twostage"].notna()]
        n = both["bitwise_twostage_n"].fillna(both["num_docs"]) if "bitwise_twostage_n" in both else both["num_docs"]
        sums = both.assign(k=(both["bitwise_twostage"] * n).round(), n=n).groupby(key)[["k", "n"]].sum()
        wide = wide.join(
            pd.Series([f"{int(k)}/{int(n)}" for k, n in zip(sums["k"], sums["n"])], index=sums.index, name="twostage")
        )
    wide = wide.reset_index()
    lengths = sorted(c for c in wide.columns if isinstance(c, (int,)) or str(c).isdigit())
    cols = [("dtype", "dtype", "l", fmt("{}")), ("who", "reader", "l", fmt("{}"))]
    cols += [(L, f"{L}", "r", fmt("{}")) for L in lengths]
    if "twostage" in wide:
        cols.append(("twostage", "= two-stage", "r", fmt("{}")))
    return table(wide, cols, group="group")
