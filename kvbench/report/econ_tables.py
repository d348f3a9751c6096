"""LaTeX tables of the economics: the price sheet with its sources, the paper's conclusions
beside the measured ones, break-even lengths and links, and the API tariffs' margins."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from kvbench.config.prices import PaperInputs
from kvbench.economics import scenario
from kvbench.economics.crossover import crossovers
from kvbench.report.latex import escape, fmt, table
from kvbench.report.tier_figures import where

SECTIONS = (
    ("gpu_hour", "GPU, per GPU-hour"),
    ("egress", "Egress to the internet"),
    ("storage", "Keeping bytes resident"),
    ("api_tariffs", "API prompt caching, USD per million tokens"),
)


def _usd(v) -> str:
    if v is None or pd.isna(v):
        return "--"
    v = float(v)
    return f"${v / 1e6:.3g}M" if abs(v) >= 1e6 else f"${v / 1e3:.3g}k" if abs(v) >= 1e3 else f"${v:.3g}"


def is_secondary(price: dict) -> bool:
    """Whether the sheet marks a price as resting on a page other than the provider's own
    (``secondary: true``). Sheets written before the flag existed mark nothing: their table shows
    only "via" where an entry names the vendor page, as it did."""
    return price.get("secondary") is True


def prices_table(sheet: dict) -> str:
    """Every price on the sheet (as listed, with its unit) and a numbered list of its sources;
    a secondary source is marked with a dagger (and "via" before the page read, where it names
    the vendor page it quotes)."""
    items, sources = [], []
    for section, title in SECTIONS:
        for p in (sheet.get(section) or {}).values():
            # the vendor's own page first; a secondary page that quotes it is marked "via"
            ref = rf"\url{{{p['cites']}}}, via \url{{{p['source']}}}" if p.get("cites") else rf"\url{{{p['source']}}}"
            if is_secondary(p):
                ref = r"$^\dagger$ " + ref
            if ref not in sources:
                sources.append(ref)
            if section == "api_tariffs":
                tariffs = (p["input_usd_per_mtok"], p["cache_write_usd_per_mtok"], p["cache_read_usd_per_mtok"])
                price = " / ".join(f"{t:g}" for t in tariffs)
                unit = "in/write/read" + (
                    f"; {p['storage_usd_per_mtok_hour']:g}/h kept" if p.get("storage_usd_per_mtok_hour") else ""
                )
                what = f"{p['provider']} {p['model']}"
            else:
                price = f"{p['usd']:g}"
                unit = {"gpu_hour": "GPU-hour"}.get(section, p.get("unit", ""))
                what = f"{p['provider']}" + (f" {p['gpu']} ({p['kind']})" if section == "gpu_hour" else "")
            items.append(
                dict(
                    section=title,
                    what=what,
                    price=price,
                    unit=unit,
                    as_of=p.get("as_of") or f"read {p.get('date') or '--'}",
                    src=f"[{sources.index(ref) + 1}]" + (r"$^\dagger$" if is_secondary(p) else ""),
                )
            )
    cols: list[tuple[str, str, str, Callable]] = [
        ("what", "item", "p{2.1in}", fmt("{}")),
        ("price", "USD", "r", fmt("{}")),
        ("unit", "per", "l", fmt("{}")),
        ("as_of", "as of", "l", fmt("{}")),
        ("src", "source", "l", str),  # "[n]", with a LaTeX dagger when secondary: not escaped
    ]
    body = table(pd.DataFrame(items), cols, group="section")
    refs = "\n".join(rf"\item[{i}] {s}" for i, s in enumerate(sources, 1))
    if any(s.startswith(r"$^\dagger$") for s in sources):
        refs += "\n" + (
            r"\item[$^\dagger$] secondary: no copy of the provider's own page stating the price was"
            r" found; the price is as a third party's page (data file, blog, pull request, forum) gives it"
        )
    return body + "\n\\begin{description}\\footnotesize\n" + refs + "\n\\end{description}\n"


def conclusions_table(claims: pd.DataFrame) -> str:
    """Each conclusion of the paper: its number, the measured one per reuse basis with its margin
    (the rows' ``claim_margin``: measured over the paper's number), and the verdict over
    the bases: holds (on every basis), fails (on none) or depends (on some)."""
    bases = list(dict.fromkeys(claims["reuse_basis"]))
    rows = []
    for _claim, group in claims.groupby("claim", sort=False):
        first = group.iloc[0]
        row = dict(text=first["claim_text"], paper=_value(first["claim_paper"], first["claim_unit"]))
        verdicts = []
        for basis in bases:
            b = group[group["reuse_basis"] == basis]
            row[basis] = _value(b.iloc[0]["claim_measured"], first["claim_unit"]) if len(b) else None
            margin = b.iloc[0].get("claim_margin") if len(b) else None
            row[f"{basis} margin"] = None if margin is None or pd.isna(margin) else f"{margin:.3g}"
            if len(b) and pd.notna(b.iloc[0]["claim_holds"]):
                verdicts.append(bool(b.iloc[0]["claim_holds"]))
        row["verdict"] = (
            None if not verdicts else "holds" if all(verdicts) else "fails" if not any(verdicts) else "depends"
        )
        rows.append(row)
    device = _short(claims["device"].iloc[0])
    cols = [("text", "conclusion (and the test applied)", "p{2.6in}", fmt("{}")), ("paper", "paper", "r", fmt("{}"))]
    for basis in bases:
        cols += [(basis, f"{device}, {basis}", "r", fmt("{}")), (f"{basis} margin", "/ paper", "r", fmt("{}"))]
    cols.append(("verdict", "verdict", "l", fmt("{}")))
    return table(pd.DataFrame(rows), cols)


def _value(v, unit: str):
    if v is None or pd.isna(v):
        return None
    if unit == "USD":
        return _usd(v)
    return f"{v:.3g}x" if unit == "x" else f"{v:.3g}"


def breakeven_table(tiers: pd.DataFrame) -> str:
    """Per tier: the crossover length, the link each length needs, and the link measured."""
    lengths = sorted(tiers["doc_tokens"].unique())
    shown = sorted({lengths[0], lengths[len(lengths) // 2], lengths[-1]})
    cross = pd.DataFrame(crossovers(tiers.to_dict("records")))
    rows = []
    for c in cross.to_dict("records"):
        mine = tiers[
            (tiers["model"] == c["model"])
            & (tiers["tier"] == c["tier"])
            & (tiers["tier_variant"].fillna("") == c["tier_variant"])
            & (tiers["codec"] == c["codec"])
        ]
        cross = c["label"] if c["crossover_tokens"] is not None else "none"
        row = dict(group=f"{c['model']}, {c['dtype']}, {c['device']}", where=where(mine).iloc[0], cross=cross)
        for n in shown:
            at = mine[mine["doc_tokens"] == n]
            row[n] = at["breakeven_link_gbps"].iloc[0] if len(at) else None
        link = mine["link_gbps"].fillna(mine["fetch_gbps"]) if "fetch_gbps" in mine else mine["link_gbps"]
        row["link"] = link.median()
        rows.append(row)
    cols = [("where", "tier", "l", fmt("{}")), ("cross", "crossover", "r", fmt("{}"))]
    cols += [(n, f"@{n}", "r", fmt("{:.3g}")) for n in shown]
    cols += [("link", "measured", "r", fmt("{:.3g}"))]
    return table(pd.DataFrame(rows), cols, group="group")


def _short(device: str) -> str:
    """A device as a column header: "H200", "paper"."""
    return "paper" if device.endswith("(paper)") else device.removeprefix("NVIDIA ")


def tariffs_table(tariffs: pd.DataFrame, sheet: dict) -> str:
    """Each API tariff as multipliers of its input price, beside the margin it leaves on the
    paper's cost ratio and on each measured one."""
    names = {k: f"{t['provider']} {t['model']}" for k, t in (sheet.get("api_tariffs") or {}).items()}
    side = tariffs["device"].map(_short) + tariffs["reuse_basis"].map(lambda b: "" if b == "single" else f" {b}")
    rows = []
    for key, group in tariffs.assign(side=side).groupby("tariff", sort=False):
        first = group.iloc[0]
        row = dict(
            tariff=names.get(key, key),
            read=first["tariff_read_multiplier"],
            write=first["tariff_write_multiplier"],
            life=first["tariff_lifetime_s"],
        )
        row.update(zip(group["side"], group["provider_margin"]))
        rows.append(row)
    cols = [
        ("tariff", "tariff", "p{1.5in}", fmt("{}")),
        ("read", "read x", "r", fmt("{:.3g}")),
        ("write", "write x", "r", fmt("{:.3g}")),
        ("life", "life s", "r", fmt("{:.0f}")),
    ]
    cols += [(s, f"margin {s}", "r", fmt("{:+.3f}")) for s in dict.fromkeys(side)]
    return table(pd.DataFrame(rows), cols)


def meta_macros(econ: pd.DataFrame, sheet_name: str, run_dir: str) -> str:
    """Macros the paper's captions use, so they name the hardware, prices and run of the rows."""
    cost = econ[econ["econ_row"] == "cost"]
    first = cost.iloc[0] if len(cost) else econ.iloc[0]
    values = dict(
        econdevices=escape(", ".join(sorted(cost["device"].dropna().unique())) or "--"),
        econgpuprice=rf"{escape(first['gpu_price'])} (\${first['gpu_usd_per_hour']:.2f} per GPU-hour)",
        econegress=rf"{escape(first['egress_price'])} (\${first['egress_usd_per_gb']:.3g}/GB)",
        econsheet=escape(sheet_name),
        econrun=escape(run_dir),
    )
    return "".join(rf"\newcommand{{\{k}}}{{{v}}}" + "\n" for k, v in values.items())


def paper_paragraph(paper_row: pd.Series, inputs: PaperInputs) -> str:
    """The paper's numbers as they come back from its own inputs (a sentence for the text)."""
    lo, hi = scenario.implied_rate_range(inputs)
    r = paper_row
    return (
        rf"From its own inputs ({inputs.readers / 1e6:.0f}\,M readers of a {inputs.doc_tokens}-token document, "
        rf"prefill {inputs.prefill_s}\,s and reuse {inputs.reuse_s}\,s on the {escape(inputs.device)}) the paper's "
        rf"numbers come back: a ratio of {r['speedup']:.2f}$\times$; {escape(_usd(r['total_prefill_usd']))} to "
        rf"re-prefill against {escape(_usd(r['total_reuse_usd']))} to reuse at \${r['gpu_usd_per_hour']:.3f} per "
        rf"device-hour, the price its \$1.5M implies (the paper states none; \${lo:.2f}--\${hi:.2f} allowing for "
        rf"the rounding of \$1.5M); N$^*$ = {r['breakeven_reads']:.3f} readers; and egress of its "
        rf"{r['kv_bytes'] / 1e9:.2f}\,GB KV at \${r['egress_usd_per_gb']}/GB, {escape(_usd(r['egress_usd_raw']))} per "
        rf"load, is {r['egress_over_prefill']:.2f}$\times$ the {escape(_usd(r['prefill_usd']))} of the prefill it "
        rf"replaces. A 0.1$\times$ read tariff leaves {r['provider_margin']:.3f} of the input price over its "
        rf"cost ratio of {r['cost_ratio']:.4f}." + "\n"
    )
