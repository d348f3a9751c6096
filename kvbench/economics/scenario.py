"""The paper's scenario: one hot document, many readers, in dollars, and its conclusions tested.

:func:`evaluate` turns one set of inputs (device times, KV bytes, prices) into the numbers the
paper argues with. The paper's own inputs give back its own numbers (the GPU price is the
one its $1.5M implies, since the paper does not state it); measured inputs give the same
numbers for the hardware they were measured on. :func:`claims` sets them side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from kvbench.config.prices import PaperInputs
from kvbench.economics import cost


@dataclass
class Inputs:
    """One side of the comparison."""

    label: str
    doc_tokens: int
    prefill_ms: float
    reuse_ms: float
    kv_bytes: float
    usd_per_hour: float
    egress_usd_per_gb: float
    readers: float
    lossless_ratio: Optional[float] = None  # best lossless codec's ratio for this KV
    hosting_usd_per_gb_hour: Optional[float] = None  # provider-side residence (HBM share)
    read_multiplier: float = 0.1  # the cache-read tariff the paper holds up


def paper_inputs(paper: PaperInputs) -> Inputs:
    """The paper's inputs, priced at the GPU-hour its own re-prefill total implies."""
    rate = cost.implied_usd_per_hour(paper.total_prefill_usd, paper.readers, paper.prefill_s)
    return Inputs(
        label=f"{paper.device} (paper)",
        doc_tokens=paper.doc_tokens,
        prefill_ms=paper.prefill_s * 1e3,
        reuse_ms=paper.reuse_s * 1e3,
        kv_bytes=paper.kv_gb * cost.GB,
        usd_per_hour=rate,
        egress_usd_per_gb=paper.egress_usd_per_gb,
        readers=paper.readers,
        read_multiplier=paper.cache_read_multiplier,
    )


def implied_rate_range(paper: PaperInputs) -> tuple[float, float]:
    """The GPU-hour prices consistent with "$1.5M" once its rounding is allowed for."""
    lo, hi = (paper.total_prefill_usd - paper.total_rounding_usd, paper.total_prefill_usd + paper.total_rounding_usd)
    return (
        cost.implied_usd_per_hour(lo, paper.readers, paper.prefill_s),
        cost.implied_usd_per_hour(hi, paper.readers, paper.prefill_s),
    )


def evaluate(i: Inputs) -> dict[str, Optional[float]]:
    """Every number of the paper's argument for one set of inputs.

    A key is left out when its input is unknown (no codec measured, no hosting price); a
    key holding None means "never" (reuse is not cheaper, so nothing breaks even).
    """
    prefill_usd = cost.device_usd(i.prefill_ms, i.usd_per_hour)
    reuse_usd = cost.device_usd(i.reuse_ms, i.usd_per_hour)
    egress = cost.egress_usd(i.kv_bytes, i.egress_usd_per_gb)
    out = dict(
        speedup=i.prefill_ms / i.reuse_ms,
        cost_ratio=i.reuse_ms / i.prefill_ms,
        prefill_usd=prefill_usd,
        reuse_usd=reuse_usd,
        total_prefill_usd=i.readers * prefill_usd,
        total_reuse_usd=i.readers * reuse_usd,
        saving_usd=i.readers * (prefill_usd - reuse_usd),
        breakeven_reads=cost.break_even_reads(prefill_usd, reuse_usd),
        egress_usd_raw=egress,
        egress_over_prefill=egress / prefill_usd,
        provider_margin=cost.provider_margin(i.read_multiplier, i.reuse_ms, i.prefill_ms),
    )
    if i.lossless_ratio:
        lossless = egress / i.lossless_ratio
        out.update(egress_usd_lossless=lossless, egress_lossless_over_prefill=lossless / prefill_usd)
    if i.hosting_usd_per_gb_hour is not None:
        hosting = cost.hosting_usd_per_hour(i.kv_bytes, i.hosting_usd_per_gb_hour)
        out.update(
            hosting_usd_per_hour=hosting,
            breakeven_reads_per_hour=cost.break_even_reads_per_hour(hosting, prefill_usd - reuse_usd),
        )
    return out


# (id, the paper's conclusion and the test applied, metric, unit, holds(paper_value, measured_value))
CLAIMS = (
    (
        "ratio",
        "Reuse needs far less device time than prefill: 49.7x at 3774 tokens "
        "(holds if the measured ratio reaches the low end of the paper's 9-50x: >= 9x)",
        "speedup",
        "x",
        lambda p, m: m >= 9,
    ),
    (
        "totals",
        "80 M readers: ~$1.5M to re-prefill against ~$0.03M to reuse, a saving of millions of "
        "dollars per popular document (holds if the saving, shown, is >= $1M)",
        "saving_usd",
        "USD",
        lambda p, m: m >= 1e6,
    ),
    (
        "breakeven",
        "A single reuse already pays the write back (holds if N* < 2: the second reader profits)",
        "breakeven_reads",
        "reads",
        lambda p, m: m is not None and m < 2,
    ),
    (
        "egress",
        "Shipping the KV at $0.09/GB costs more than the prefill it saves (holds if egress / prefill > 1)",
        "egress_over_prefill",
        "x",
        lambda p, m: m > 1,
    ),
    (
        "egress_lossless",
        "KV is nearly incompressible: lossless compression does not rescue shipping "
        "(holds if egress of the best lossless codec's output / prefill > 1)",
        "egress_lossless_over_prefill",
        "x",
        lambda p, m: m is not None and m > 1,
    ),
    (
        "hosting",
        "Hosting the KV provider-side (GPU memory, no egress) keeps the saving (holds if it pays "
        "for itself at some read rate; the number is the reads per hour it needs)",
        "breakeven_reads_per_hour",
        "reads/hour",
        lambda p, m: m is not None,
    ),
    (
        "tariff",
        "A 0.1x cache-read tariff sits inside the measured envelope and leaves the provider a "
        "margin (holds if 0.1 - reuse/prefill > 0)",
        "provider_margin",
        "fraction of input price",
        lambda p, m: m > 0,
    ),
)


def claims(paper: dict, measured: dict) -> list[dict]:
    """One row per conclusion: the paper's value, the measured one, whether it holds, the ratio.

    ``claim_holds`` is None where the measured rows cannot decide (an input is missing).
    """
    out = []
    for claim_id, text, metric, unit, holds in CLAIMS:
        p, m = paper.get(metric), measured.get(metric)
        out.append(
            dict(
                claim=claim_id,
                claim_text=text,
                claim_unit=unit,
                claim_paper=p,
                claim_measured=m,
                claim_holds=bool(holds(p, m)) if metric in measured else None,
                claim_margin=m / p if (m is not None and p) else None,
            )
        )
    return out
