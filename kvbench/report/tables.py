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
