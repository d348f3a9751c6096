"""What ``+exp=economics`` prints: the paper reproduced, its conclusions beside the measured
ones, and the measured length's tiers in dollars. Reads economics rows only."""

from __future__ import annotations

from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table


def _usd(v: Any) -> str:
    if v is None or pd.isna(v):
        return "-"
    v = float(v)
    if abs(v) >= 1e6:
        return f"${v / 1e6:.3g}M"
    if abs(v) >= 1e3:
        return f"${v / 1e3:.3g}k"
    return f"${v:.3g}"


def _num(v: Any, fmt: str = "{:.3g}") -> str:
    return "-" if v is None or pd.isna(v) else fmt.format(v)


def _holds(v: Any) -> str:
    return "-" if v is None or pd.isna(v) else ("[green]holds" if v else "[red]fails")


def paper_table(paper: dict) -> Table:
    """Each number the paper states, next to the same number computed from its inputs."""
    t = Table(
        title=f"The paper's scenario from its own inputs ({paper['model']}, {paper['device']}, "
        f"L={paper['doc_tokens']}, {paper['readers_total']:.3g} readers)"
    )
    for h in ("number", "paper states", "from its inputs"):
        t.add_column(h, justify="right")
    t.add_row("prefill / reuse", "49.7x", f"{paper['speedup']:.2f}x")
    t.add_row("GPU price (implied by $1.5M)", "not stated", f"${paper['gpu_usd_per_hour']:.3f}/h")
    t.add_row("re-prefill, all readers", "~$1.5M", _usd(paper["total_prefill_usd"]))
    t.add_row("reuse, all readers", "~$0.03M", _usd(paper["total_reuse_usd"]))
    t.add_row("break-even reads N*", "a single reuse pays back", f"{paper['breakeven_reads']:.3f}")
    t.add_row(
        f"egress of {paper['kv_bytes'] / 1e9:.2f} GB at ${paper['egress_usd_per_gb']}/GB",
        "more than a prefill",
        f"{_usd(paper['egress_usd_raw'])} = {paper['egress_over_prefill']:.2f}x "
        f"a prefill ({_usd(paper['prefill_usd'])})",
    )
    t.add_row("0.1x read tariff, margin", "inside the envelope", f"{paper['provider_margin']:.3f} of input price")
    return t


def _by_unit(v: Any, unit: str) -> str:
    if unit == "USD":
        return _usd(v)
    return _num(v, "{:.3g}x") if unit == "x" else _num(v)


def claims_table(claims: pd.DataFrame) -> Table:
    """One line per conclusion: the paper's number, and the measured one per reuse basis."""
    device = claims["device"].iloc[0].removeprefix("NVIDIA ")
    t = Table(title="The paper's conclusions on measured rows")
    t.add_column("claim")
    t.add_column("unit")
    t.add_column("paper", justify="right")
    bases = list(dict.fromkeys(claims["reuse_basis"]))
    for basis in bases:
        t.add_column(f"{device} {basis}", justify="right")
        t.add_column("", justify="left")
    for claim, group in claims.groupby("claim", sort=False):
        first = group.iloc[0]
        unit = first["claim_unit"]
        cells = [claim, unit, _by_unit(first["claim_paper"], unit)]
        for basis in bases:
            row = group[group["reuse_basis"] == basis]
            cells += (
                [_by_unit(row.iloc[0]["claim_measured"], unit), _holds(row.iloc[0]["claim_holds"])]
                if len(row)
                else ["-", "-"]
            )
        t.add_row(*cells)
    return t


def totals_line(df: pd.DataFrame, claim: pd.Series) -> str:
    """The scenario's totals on the measured side (the cost row behind the single-request claims)."""
    cost = df[
        (df["econ_row"] == "cost")
        & df["tier"].isna()
        & (df["reuse_basis"] == "single")
        & (df["model"] == claim["model"])
        & (df["doc_tokens"] == claim["doc_tokens"])
        & (df["reuse_reader"] == claim["reuse_reader"])
    ]
    if cost.empty:
        return ""
    c = cost.iloc[0]
    return (
        f"  {c['readers_total']:.3g} readers on {c['device']}: re-prefill {_usd(c['total_prefill_usd'])}, "
        f"reuse {_usd(c['total_reuse_usd'])} at ${c['gpu_usd_per_hour']:.2f}/GPU-h ({c['gpu_price']})"
    )


def print_economics(rows: list[dict[str, Any]]) -> None:
    console = Console(width=160)
    df = pd.DataFrame(rows)
    paper = df[df["econ_row"] == "paper"]
    if len(paper):
        console.print(paper_table(paper.iloc[0].to_dict()))
    claims = df[df["econ_row"] == "claim"]
    if claims.empty:
        console.print("[yellow]no measured rows for the configured model/device/dtype: conclusions not tested")
        return
    console.print(claims_table(claims))
    first = claims.iloc[0]
    console.print(f"  {first['claim_note']}")
    console.print(totals_line(df, first))
    hosting = claims[claims["claim"] == "hosting"]
    if len(hosting):
        console.print("  " + hosting.iloc[0]["claim_note"].split("; ", 1)[-1])
    if "batched" not in set(claims["reuse_basis"]):
        console.print("  no +exp=throughput rows: the batched (per reader) column is missing")
    tariffs = df[df["econ_row"] == "tariff"]
    t = Table(title="Provider margin per API tariff (read multiplier - reuse/prefill)")
    for h in (
        "tariff",
        "read x",
        "write x",
        "lifetime s",
        *dict.fromkeys(tariffs["device"] + " " + tariffs["reuse_basis"]),
    ):
        t.add_column(h, justify="right")
    for key, group in tariffs.groupby("tariff", sort=False):
        first = group.iloc[0]
        t.add_row(
            key,
            _num(first["tariff_read_multiplier"]),
            _num(first["tariff_write_multiplier"]),
            _num(first["tariff_lifetime_s"], "{:.0f}"),
            *[_num(v, "{:+.3f}") for v in group["provider_margin"]],
        )
    console.print(t)
