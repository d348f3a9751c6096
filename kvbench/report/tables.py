"""LaTeX tables from rows."""

from __future__ import annotations

import pandas as pd

from kvbench.report.figures import label


def latency_table(rows: pd.DataFrame) -> str:
    """Prefill vs reuse per model and length: medians, speedups, exactness rates."""
    ok = rows[rows["status"] == "ok"].copy()
    ok["model"] = label(ok)
    cols = {"doc_tokens": "L", "prefill_ms": "prefill ms", "reuse_ms": "reuse ms", "speedup": "speedup",
            "reuse_graph_ms": "graph reuse ms", "speedup_graph": "graph speedup",
            "exact_fraction": "exact", "bitwise_twostage": "bitwise 2-stage"}
    table = ok[["model", *[c for c in cols if c in ok]]].rename(columns=cols).sort_values(["model", "L"])
    return table.to_latex(index=False, float_format="%.2f")


def crossover_table(table: pd.DataFrame) -> str:
    """Crossover length per (model, tier, variant, codec), from :func:`kvbench.crossover.crossovers`."""
    cols = ["model", "tier", "tier_variant", "codec", "label", "crossover_interp"]
    return table[cols].rename(columns={"label": "crossover", "crossover_interp": "interpolated",
                                       "tier_variant": "variant"}).to_latex(index=False, float_format="%.0f")


def codec_table(rows: pd.DataFrame) -> str:
    """Per model and dtype, every codec at the longest length measured: ratio beside the
    order-0 bounds, speed, and for lossy codecs the exactness they give up."""
    ok = rows[rows["status"] == "ok"].copy()
    ok["model"] = label(ok)
    longest = ok.groupby(["model", "dtype", "codec"])["doc_tokens"].transform("max")
    ok = ok[ok["doc_tokens"] == longest]
    cols = {"dtype": "dtype", "codec": "codec", "doc_tokens": "L", "compress_ratio": "ratio",
            "bound_order0_ratio": "bound o0", "bound_planes_ratio": "bound planes",
            "bound_channel_ratio": "bound channel", "encode_gbps": "enc GB/s", "decode_gbps": "dec GB/s",
            "decode_device_gbps": "dev dec GB/s", "exact_fraction": "exact", "first_token_agree": "top-1",
            "kl_mean": "KL", "nll_delta": "dNLL"}
    table = ok[["model", *cols]].rename(columns=cols).sort_values(["model", "dtype", "ratio"])
    return table.to_latex(index=False, float_format="%.3g", na_rep="--")
