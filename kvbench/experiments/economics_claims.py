"""The scenario rows of ``+exp=economics``: the paper's conclusions and the API tariffs, paper
beside measurement.

The measured side is the configured model, device and dtype at the measured length nearest
the paper's 3774 tokens, through its headline reader (single request), and through the
cheapest shared-document batch where ``+exp=throughput`` rows exist.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from kvbench.economics import cost, scenario
from kvbench.economics import inputs as cost_inputs

log = logging.getLogger(__name__)


def scenario_rows(
    pricer, points: pd.DataFrame, tiers: pd.DataFrame, batched: pd.DataFrame, codecs: pd.DataFrame
) -> list[dict[str, Any]]:
    """Tariff rows for the paper and each measured side; claim rows for each measured side."""
    econ, paper = pricer.econ, pricer.econ.paper
    paper_in = scenario.paper_inputs(paper)
    paper_e = scenario.evaluate(paper_in)
    paper_ident = dict(
        pricer.base,
        model=paper.model,
        weights="real",
        device=paper_in.label,
        doc_tokens=paper.doc_tokens,
        reuse_reader="paper",
        reuse_basis="single",
        gpu_price="implied",
        gpu_usd_per_hour=paper_in.usd_per_hour,
    )
    out = pricer.tariff_rows(paper_ident, paper_e["cost_ratio"], paper.doc_tokens)
    head = cost_inputs.headline(points)
    mine = head[(head["model"] == econ.model) & (head["device"] == econ.device) & (head["dtype"] == econ.dtype)]
    if mine.empty:
        log.warning(
            "economics: no reuse rows for model=%s device=%s dtype=%s; only the paper's side is written",
            econ.model,
            econ.device,
            econ.dtype,
        )
        return out
    length = cost_inputs.nearest_length(mine["doc_tokens"], paper.doc_tokens)
    assert length is not None  # mine has rows, so a nearest length
    point = mine[mine["doc_tokens"] == length].iloc[0].to_dict()
    _, hbm = pricer.hosting("gpu")
    ratio = cost_inputs.codecs_for(codecs, econ.model, econ.dtype)
    lossless = cost.finite(ratio["lossless_ratio"]) if ratio is not None else None
    for basis, reader, reuse_ms, batch in _sides(point, batched):
        inputs = scenario.Inputs(
            label=econ.device,
            doc_tokens=length,
            prefill_ms=point["prefill_ms"],
            reuse_ms=reuse_ms,
            kv_bytes=point["kv_bytes"],
            usd_per_hour=pricer.rate,
            egress_usd_per_gb=pricer.egress_gb,
            readers=pricer.readers,
            lossless_ratio=lossless,
            hosting_usd_per_gb_hour=hbm,
            read_multiplier=paper.cache_read_multiplier,
        )
        measured = scenario.evaluate(inputs)
        ident = dict(
            pricer.base,
            model=econ.model,
            weights=point["weights"],
            dtype=econ.dtype,
            device=econ.device,
            doc_tokens=length,
            prefill_ms=point["prefill_ms"],
            reuse_ms=reuse_ms,
            kv_bytes=point["kv_bytes"],
            reuse_reader=reader,
            reuse_basis=basis,
            batch_readers=batch,
        )
        note = (
            f"{econ.model} {econ.dtype} on {econ.device}, L={length} (measured length nearest "
            f"{paper.doc_tokens}), reader {reader}{f', batch of {batch}' if batch else ''}, "
            f"{econ.gpu_price} ${pricer.rate:.2f}/GPU-h"
        )
        for c in scenario.claims(paper_e, measured):
            extra = f"; {tier_note(tiers, point, length)}" if c["claim"] == "hosting" else ""
            if c["claim"] == "egress_lossless" and ratio is not None:
                extra = f"; {ratio['lossless_codec']} {lossless:.2f}x on {ratio['model']}'s KV (real weights)"
            out.append(dict(ident, econ_row="claim", claim_note=note + extra, **c))
        out += pricer.tariff_rows(ident, measured["cost_ratio"], length)
    return out


def _sides(point: dict[str, Any], batched: pd.DataFrame):
    """(basis, reader, reuse ms, batch) of the single request, and of a batch where measured."""
    yield "single", point["reader"], point["reuse_ms"], None
    same = batched
    for key in cost_inputs.BATCH_IDENTITY:
        same = same[same[key] == point[key]]
    if len(same):
        b = same.iloc[0]
        yield "batched", b.get("method"), float(b["per_reader_ms"]), int(b["batch"])


def tier_note(tiers: pd.DataFrame, point: dict[str, Any], length: int) -> str:
    """Which storage tiers beat prefill at the scenario's length (uncompressed KV)."""
    if tiers.empty:
        return "no tier rows"
    same = tiers
    for key in ("model", "dtype", "device"):
        same = same[same[key] == point[key]]
    same = same[same["codec"] == "identity"]
    if same.empty:
        return "no tier rows for this model"
    near = cost_inputs.nearest_length(same["doc_tokens"], length)
    at = same[same["doc_tokens"] == near]
    parts = [
        f"{r.tier}{' ' + r.tier_variant if r.tier_variant else ''} {r.speedup:.2g}x"
        for r in at.sort_values("speedup", ascending=False).itertuples()
    ]
    return f"tiers at L={near} (speedup over prefill): " + ", ".join(parts)
