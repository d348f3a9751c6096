"""The reference paper's laptop on paper: its floors from public specifications beside the
paper's own times, and the measured device's floors and times beside them
(:mod:`kvbench.economics.ridge`)."""

from __future__ import annotations

import pandas as pd

from kvbench.config.catalog import ARCHITECTURES
from kvbench.config.prices import PaperInputs
from kvbench.economics.ridge import M1_PRO, DeviceSpec, floors_ms
from kvbench.report.latex import fmt, table
from kvbench.report.numbers import stand_in

ARCH = "qwen3-4b"  # the paper's Qwen3-4B; the measured stand-in has its shape


def ridge_rows(points: pd.DataFrame, model: str, paper: PaperInputs) -> pd.DataFrame:
    """One row per (device, length): floors, floor ratio, measured times and ratio, and the
    measured ratio as a fraction of the floor ratio. Lengths: the paper's two ends on the laptop,
    the measured lengths nearest them on the measured device."""
    m = stand_in(points, model)
    needed = ["weight_bytes", "query_tokens", "prefill_floor_ms", "reuse_floor_ms", "peak_tflops", "hbm_gbps"]
    if m.empty or any(c not in m for c in needed):
        return m.iloc[0:0]
    m = m.dropna(subset=needed)
    if m.empty:
        return m
    weights, query = int(m["weight_bytes"].iloc[0]), int(m["query_tokens"].iloc[0])
    rows = []
    ends = sorted(paper.speedup_points)
    for n in ends:
        f = floors_ms(ARCHITECTURES[ARCH], M1_PRO, n, query, weights)
        at_paper = n == paper.doc_tokens
        rows.append(
            dict(
                device=f"{M1_PRO.name}, specification",
                doc_tokens=n,
                **f,
                prefill_ms=paper.prefill_s * 1e3 if at_paper else None,
                reuse_ms=paper.reuse_s * 1e3 if at_paper else None,
                speedup=paper.speedup_points[n],
                ridge=M1_PRO.ridge,
            )
        )
    for n in ends:
        r = m.iloc[(m["doc_tokens"] - n).abs().argsort().iloc[0]]
        # the measured floors are the rows'; the bound is the floor model's on the calibrated ceilings
        calibrated = DeviceSpec(r["device"], r["peak_tflops"], r["hbm_gbps"], sources=())
        bound = floors_ms(ARCHITECTURES[ARCH], calibrated, int(r["doc_tokens"]), query, weights)["reuse_bound"]
        rows.append(
            dict(
                device=f"{r['device']}, calibrated",
                doc_tokens=int(r["doc_tokens"]),
                prefill_floor_ms=r["prefill_floor_ms"],
                reuse_floor_ms=r["reuse_floor_ms"],
                prefill_ms=r["prefill_ms"],
                reuse_ms=r["reuse_ms"],
                speedup=r["speedup"],
                reuse_bound=bound,
                ridge=calibrated.ridge,
            )
        )
    out = pd.DataFrame(rows).assign(query_tokens=query)
    out["floor_ratio"] = out["prefill_floor_ms"] / out["reuse_floor_ms"]
    out["of_floor"] = out["speedup"] / out["floor_ratio"]
    out["prefill_eff"] = out["prefill_floor_ms"] / out["prefill_ms"]
    out["reuse_eff"] = out["reuse_floor_ms"] / out["reuse_ms"]
    return out


def ridge_table(rows: pd.DataFrame) -> str:
    """The rows of :func:`ridge_rows` as a booktabs table grouped by device."""
    cols = [
        ("doc_tokens", "L", "r", fmt("{:d}")),
        ("prefill_floor_ms", "prefill floor ms", "r", fmt("{:.4g}")),
        ("reuse_floor_ms", "reuse floor ms", "r", fmt("{:.3g}")),
        ("reuse_bound", "reuse bound", "l", fmt("{}")),
        ("floor_ratio", "floor ratio", "r", fmt("{:.3g}x")),
        ("prefill_ms", "prefill ms", "r", fmt("{:.4g}")),
        ("reuse_ms", "reuse ms", "r", fmt("{:.3g}")),
        ("speedup", "measured ratio", "r", fmt("{:.3g}x")),
        ("of_floor", "of floor ratio", "r", fmt("{:.0%}")),
    ]
    return table(rows, cols, group="device")


def ridge_macros(rows: pd.DataFrame, paper: PaperInputs) -> dict[str, str]:
    """The laptop comparison's numbers for the text."""
    if rows.empty:
        return {}
    laptop = rows[rows["device"].str.startswith(M1_PRO.name)].set_index("doc_tokens")
    measured = rows[~rows["device"].str.startswith(M1_PRO.name)].reset_index(drop=True)
    lo, hi = sorted(paper.speedup_points)
    long = laptop.loc[hi]
    return dict(
        mridge=f"{M1_PRO.ridge:.0f}",
        mpeak=f"{M1_PRO.peak_tflops:g}",
        mbandwidth=f"{M1_PRO.memory_gbps:.0f}",
        mprefillfloorlong=f"{long['prefill_floor_ms'] / 1e3:.2f}",
        mreusefloorlong=f"{long['reuse_floor_ms']:.0f}",
        mfloorratioshort=f"{laptop.loc[lo, 'floor_ratio']:.1f}",
        mfloorratiolong=f"{long['floor_ratio']:.0f}",
        mprefilleff=f"{100 * long['prefill_eff']:.0f}",
        mreuseeff=f"{100 * long['reuse_eff']:.0f}",
        mofshort=f"{100 * laptop.loc[lo, 'of_floor']:.0f}",
        moflong=f"{100 * long['of_floor']:.0f}",
        hfloorratioshort=f"{measured['floor_ratio'].iloc[0]:.1f}",
        hfloorratiolong=f"{measured['floor_ratio'].iloc[-1]:.1f}",
        hofshort=f"{100 * measured['of_floor'].iloc[0]:.0f}",
        hoflong=f"{100 * measured['of_floor'].iloc[-1]:.0f}",
        hridge=f"{measured['ridge'].iloc[0]:.0f}",
        ridgequery=f"{int(rows['query_tokens'].iloc[0])}",
    )


MACROS = (
    "mridge mpeak mbandwidth mprefillfloorlong mreusefloorlong mfloorratioshort mfloorratiolong mprefilleff "
    "mreuseeff mofshort moflong hfloorratioshort hfloorratiolong hofshort hoflong hridge ridgequery"
).split()
