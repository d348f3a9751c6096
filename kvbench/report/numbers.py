"""The numbers the paper's abstract, introduction and conclusion cite, as LaTeX macros.

``tables/numbers.tex`` defines one ``\\newcommand`` per number, each computed here from the
rows the figures are drawn from, so the text cannot drift from the rows: when the rows change,
``make -C paper figures`` changes the text's numbers with them. A number whose rows are
missing prints as ``--``. Macro names are letters only (LaTeX's rule).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kvbench.economics import inputs as cost_inputs
from kvbench.economics.crossover import crossovers
from kvbench.report.latex import escape

MISSING = "--"


def crossing(lengths, speedups, target: float) -> float | None:
    """The length where the speedup first reaches ``target``, interpolated log-log between the
    measured lengths around it (None when it never does; the first length when it starts above)."""
    pairs = sorted(zip(lengths, speedups))
    for (l0, s0), (l1, s1) in zip(pairs, pairs[1:]):
        if s0 >= target:
            return float(l0)
        if s1 >= target:
            t = (math.log(target) - math.log(s0)) / (math.log(s1) - math.log(s0))
            return math.exp(math.log(l0) + t * (math.log(l1) - math.log(l0)))
    return float(pairs[-1][0]) if pairs and pairs[-1][1] >= target else None


def _tokens(n: float | None) -> str:
    """A length as the text says it: 3774, about 16k."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return MISSING
    return f"{n / 1000:.0f}k" if n >= 10000 else f"{round(n, -2):.0f}" if n >= 1000 else f"{n:.0f}"


def _x(v, digits: int = 2) -> str:
    return MISSING if v is None or pd.isna(v) else f"{v:.{digits}g}"


def stand_in(points: pd.DataFrame, model: str) -> pd.DataFrame:
    """The stand-in model's best reader per length on its most-measured device, bf16."""
    best = cost_inputs.headline(points)
    mine = best[(best["model"] == model) & (best["dtype"] == "bfloat16")]
    if mine.empty:
        return mine
    device = mine["device"].value_counts().idxmax()
    return mine[mine["device"] == device].sort_values("doc_tokens")


def speed_macros(points: pd.DataFrame, model: str) -> dict[str, str]:
    """Reuse speed of the stand-in model: the best reader's times, floors, speedups, crossings."""
    m = stand_in(points, model)
    if m.empty:
        return {}
    floor = m["reuse_floor_ms"] if "reuse_floor_ms" in m else pd.Series(np.nan, index=m.index)
    over = m["reuse_ms"] / floor
    at = m.set_index("doc_tokens")
    near = int(min(at.index, key=lambda n: abs(n - 3774)))
    short, long = int(at.index.min()), int(at.index.max())
    eff = m["prefill_efficiency"] if "prefill_efficiency" in m else pd.Series(np.nan, index=m.index)
    from2k = eff[m["doc_tokens"] >= 2048]
    return dict(
        sweepdocs=_count(m, "timing_docs"),
        sweeprounds=_count(m, "repeats"),
        standinmodel=escape(model),
        standindevice=escape(m["device"].iloc[0]),
        standinreader=escape(m["reader"].iloc[0]),
        reusemsmin=f"{m['reuse_ms'].min():.1f}",
        reusemsmax=f"{m['reuse_ms'].max():.1f}",
        reusefloormin=_x(over.min()),
        reusefloormax=_x(over.max()),
        lenshort=str(short),
        lenmid=str(near),
        lenlong=str(long),
        speedupshort=_x(at.loc[short, "speedup"]),
        speedupmid=_x(at.loc[near, "speedup"]),
        speeduplong=_x(at.loc[long, "speedup"], 3),
        ninexlength=_tokens(crossing(m["doc_tokens"], m["speedup"], 9.0)),
        fiftyxlength=_tokens(crossing(m["doc_tokens"], m["speedup"], 50.0)),
        prefilleffshort=f"{100 * eff.iloc[0]:.0f}" if eff.notna().any() else MISSING,
        prefilleffmin=f"{100 * from2k.min():.0f}" if from2k.notna().any() else MISSING,
        prefilleffmax=f"{100 * from2k.max():.0f}" if from2k.notna().any() else MISSING,
    )


def _count(rows: pd.DataFrame, column: str) -> str:
    """The range of a count column over rows ("2", "2--4"), or ``--``."""
    if column not in rows or rows[column].isna().all():
        return MISSING
    low, high = int(rows[column].min()), int(rows[column].max())
    return f"{low}" if low == high else f"{low}--{high}"


def _pooled(group: pd.DataFrame, rate: str, n: str) -> tuple[int, int]:
    counts = group[n].fillna(group["num_docs"]) if n in group else group["num_docs"]
    k = (group[rate] * counts).round().sum()
    return int(k), int(counts.sum())


def exactness_macros(exact: pd.DataFrame) -> dict[str, str]:
    """Bitwise agreement with the two-stage prefill over every pair, and per dtype the range of
    one-pass agreement over models and readers (each pooled over lengths; the control left out)."""
    if exact.empty:
        return {}
    main = exact[~exact["kernel_control"]]
    out: dict[str, str] = {}
    both = main[main["bitwise_twostage"].notna()] if "bitwise_twostage" in main else main.iloc[0:0]
    k, n = _pooled(both, "bitwise_twostage", "bitwise_twostage_n") if len(both) else (0, 0)
    out.update(twostagek=f"{k:,}", twostagen=f"{n:,}", exactdocs=f"{int(main['num_docs'].max())}")
    for dtype, name in (("float32", "fp"), ("float16", "half"), ("bfloat16", "bf")):
        cells = []
        for (model, reader), g in main[main["dtype"] == dtype].groupby(["model", "reader"]):
            k, n = _pooled(g, "exact_fraction", "exact_fraction_n")
            cells.append((k / n, k, n, model, reader))
        if not cells:
            continue
        low, high = min(cells), max(cells)
        out[f"onepass{name}min"] = f"{100 * low[0]:.0f}"
        out[f"onepass{name}max"] = f"{100 * high[0]:.0f}"
        out[f"onepass{name}minwho"] = escape(f"{low[3]}, {low[4]} reader: {low[1]}/{low[2]}")
        out[f"onepass{name}maxwho"] = escape(f"{high[3]}, {high[4]} reader: {high[1]}/{high[2]}")
    return out


def tier_macros(tiers: pd.DataFrame) -> dict[str, str]:
    """Which stored tiers (KV as is, streaming loader) win at every length, from a crossover, or never."""
    if tiers.empty:
        return {}
    c = pd.DataFrame(crossovers(tiers.to_dict("records")))
    c = c[(c["codec"] == "identity") & (c["tier_io"] != "serial")]
    name = (c["tier"] + c["tier_variant"].map(lambda v: f" ({v})" if v else "")).map(escape)
    always = c["crossover_tokens"].notna() & (c["crossover_tokens"] <= c["l_min"])
    later = c["crossover_tokens"].notna() & ~always
    never = c["crossover_tokens"].isna()
    crossed = [f"{n} from {_tokens(x)}" for n, x in zip(name[later], c.loc[later, "crossover_interp"])]
    return dict(
        tierdocs=_count(tiers, "timing_docs"),
        tierrounds=_count(tiers, "repeats"),
        tiersalways=", ".join(name[always]) or MISSING,
        tierslater=", ".join(crossed) or MISSING,
        tiersnever=", ".join(name[never]) or MISSING,
    )


def codec_macros(codecs: pd.DataFrame) -> dict[str, str]:
    """The best lossless ratio on real-weight bf16 KV and the ceiling the context entropy allows."""
    real = codecs[(codecs["weights"] == "real") & (codecs["dtype"] == "bfloat16")] if len(codecs) else codecs
    lossless = real[real["codec_lossless"].fillna(False).astype(bool)] if len(real) else real
    if lossless.empty:
        return {}
    best = lossless.loc[lossless["compress_ratio"].idxmax()]
    out = dict(
        losslessbest=f"{best['compress_ratio']:.2f}",
        losslessbestcodec=escape(best["codec"]),
        orderzeromax=f"{lossless['bound_channel_ratio'].max():.2f}",
    )
    if "entropy_prev_token_bits" in lossless and lossless["entropy_prev_token_bits"].notna().any():
        out["contextceiling"] = f"{cost_inputs.context_ratio(lossless).max():.2f}"
    return out


def economics_macros(econ: pd.DataFrame) -> dict[str, str]:
    """The paper's dollar and egress claims on the measured rows (single requests)."""
    claims = econ[(econ["econ_row"] == "claim") & (econ["reuse_basis"] == "single")] if len(econ) else econ
    if claims.empty:
        return {}
    value = claims.set_index("claim")["claim_measured"]
    out = {}
    if "totals" in value:
        out["econprefillusd"] = f"{value['totals'] / 1e3:.1f}k"
    if "egress" in value:
        out["econegressx"] = f"{value['egress']:.0f}"
    if "egress_lossless" in value:
        out["econegresslosslessx"] = f"{value['egress_lossless']:.0f}"
    return out


def macros_tex(values: dict[str, str], names: tuple[str, ...]) -> str:
    """``\\newcommand`` lines for ``names``: each value, or ``--`` where the rows gave none."""
    return "".join(rf"\newcommand{{\{k}}}{{{values.get(k, MISSING)}}}" + "\n" for k in names)


NAMES = (
    "sweepdocs sweeprounds tierdocs tierrounds standinmodel standindevice standinreader reusemsmin reusemsmax "
    "reusefloormin reusefloormax lenshort lenmid "
    "lenlong speedupshort speedupmid speeduplong ninexlength fiftyxlength prefilleffshort prefilleffmin "
    "prefilleffmax twostagek twostagen exactdocs onepassfpmin onepassfpmax onepassfpminwho onepassfpmaxwho "
    "onepasshalfmin onepasshalfmax onepasshalfminwho onepasshalfmaxwho onepassbfmin onepassbfmax onepassbfminwho "
    "onepassbfmaxwho tiersalways tierslater tiersnever losslessbest losslessbestcodec orderzeromax contextceiling "
    "econprefillusd econegressx econegresslosslessx"
).split()
