"""What a document's KV saves: ``python -m kvbench.economics.savings tokens=3774 reads=80e6 tier=host model=qwen3_4b``.

One document of ``tokens`` tokens, read ``reads`` times, its KV kept on ``tier`` (gpu, host, disk,
redis, wan), with ``model``: prefill and reuse device-seconds, their dollars and ratio, N* (the
reads from which publishing once and reusing costs less than prefilling for every read), egress
if the KV is shipped to each reader, hosting per hour, and the slowest link that still beats
prefill. Every figure names where it comes from: a committed row (run folder and point id) or a
price (its key on the sheet and the page it was read from).

The measured inputs are the committed tier rows (``results/REFERENCE``, :mod:`kvbench.economics.inputs`);
a length between two measured ones is interpolated, times log-log (a power law between the two
points) and bytes linearly, and marked as such; a length outside the measured range is refused
(one line, exit 2): the model does not extrapolate. Prices come from the sheet
(``conf/cost/public_2026_11.yaml``) with the choices of ``+exp=economics`` (``conf/exp/economics.yaml``).
No model, torch or GPU: seconds on a CPU.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from kvbench.config.errors import ConfigError
from kvbench.config.prices import EconomicsConfig, PriceSheet
from kvbench.economics import cost
from kvbench.economics import inputs as cost_inputs
from kvbench.economics.savings_args import Ask, parse
from kvbench.rows.reference import result_paths
from kvbench.rows.store import load_rows

CONF = Path(__file__).resolve().parents[2] / "conf"


@dataclass
class Measured:
    """The measured inputs at the asked length: times in ms, bytes; ``source`` says which rows."""

    tokens: int
    prefill_ms: float
    reuse_ms: float  # the whole read: fetch, decode, host-to-device, attach, the question
    compute_ms: float  # the read minus moving bytes (fetch, h2d)
    shipped_bytes: float  # what the tier holds for the document (after the codec)
    link_gbps: float | None  # the tier's measured link
    source: str
    interpolated: bool = False


@dataclass
class Figure:
    """One line of the answer: what, per read, over all reads, how it is computed and from which sources."""

    name: str
    per_read: str
    total: str
    how: str
    refs: str = ""  # keys of the sources it rests on, e.g. "rows, gpu"
    value: float | None = None  # the per-read figure as a number (seconds, dollars, x, reads, GB/s)


def _row_source(row: dict[str, Any]) -> str:
    loader = f", {row['tier_io']} loader" if row.get("tier_io") else ""
    return f"{row['run_dir']} point {row['point_id']} (L={int(row['doc_tokens'])}{loader})"


def tier_rows(rows: pd.DataFrame, ask: Ask, econ: EconomicsConfig) -> pd.DataFrame:
    """The tier rows of the asked model, dtype, device, tier, variant and codec: one per length
    (the headline reader, then the latest). Raises ConfigError naming what exists instead."""
    points = cost_inputs.tier_points(rows)
    if points.empty:
        raise ConfigError("results holds no tier rows (python -m kvbench +exp=tiers)")
    model = resolve_model(ask.model or econ.model, sorted(points["model"].unique()))
    keep = points[(points["model"] == model) & (points["dtype"] == (ask.dtype or econ.dtype))]
    keep = keep[keep["device"] == (ask.device or econ.device)]
    keep = _pick(keep, "tier", ask.tier, "tier")
    keep = _pick(keep, "codec", ask.codec, "codec")
    variants = sorted(str(v) for v in keep["tier_variant"].unique())
    variant = ask.variant if ask.variant is not None else variants[0] if len(variants) == 1 else None
    keep = _pick(keep, "tier_variant", variant, "variant")
    if "timestamp" not in keep:
        keep = keep.assign(timestamp=None)
    rank = keep["reader"].map({r: i for i, r in enumerate(cost_inputs.READER_PREFERENCE)}).fillna(9)
    keep = keep.assign(_rank=rank).sort_values(["_rank", "timestamp"], ascending=[True, False], kind="stable")
    return keep.drop_duplicates("doc_tokens").sort_values("doc_tokens").reset_index(drop=True)


def _pick(points: pd.DataFrame, column: str, value: str | None, key: str) -> pd.DataFrame:
    """The rows whose ``column`` is ``value``; ConfigError listing the measured values otherwise."""
    options = sorted(str(v) for v in points[column].unique())
    if value not in options:
        raise ConfigError(f"{key}={value!r} is invalid: allowed {' | '.join(options) or '(nothing measured here)'}")
    return points[points[column] == value]


def resolve_model(asked: str, models: list[str]) -> str:
    """A model as rows name it, from its name or a config-style prefix (``qwen3_4b`` -> ``qwen3-4b-random``)."""
    norm = asked.lower().replace("_", "-")
    found = [m for m in models if m == norm] or [m for m in models if m.startswith(norm)]
    if len(found) != 1:
        raise ConfigError(f"model={asked!r} is invalid: allowed {' | '.join(models)}")
    return found[0]


def at_length(points: pd.DataFrame, tokens: int) -> Measured:
    """The measured inputs at ``tokens``: a measured length's row, or between the two measured lengths
    around it (times log-log, bytes linearly). Raises ConfigError outside the measured range."""
    lengths = [int(n) for n in points["doc_tokens"]]
    if not lengths[0] <= tokens <= lengths[-1]:
        raise ConfigError(
            f"tokens={tokens} is outside the measured lengths {lengths[0]}-{lengths[-1]} of these rows: "
            "allowed a length in that range (no extrapolation)"
        )
    link = lambda r: cost.finite(r.get("link_gbps")) or cost.finite(r.get("fetch_gbps"))
    if tokens in lengths:  # measured
        r = points.iloc[lengths.index(tokens)].to_dict()
        return Measured(
            tokens, r["prefill_ms"], r["reuse_ms"], r["compute_ms"], r["shipped_bytes"], link(r), _row_source(r)
        )
    hi = next(i for i, n in enumerate(lengths) if n > tokens)
    a, b = points.iloc[hi - 1].to_dict(), points.iloc[hi].to_dict()
    t = (math.log(tokens) - math.log(a["doc_tokens"])) / (math.log(b["doc_tokens"]) - math.log(a["doc_tokens"]))
    u = (tokens - a["doc_tokens"]) / (b["doc_tokens"] - a["doc_tokens"])
    loglog = lambda key: math.exp((1 - t) * math.log(a[key]) + t * math.log(b[key]))
    linear = lambda key: (1 - u) * a[key] + u * b[key]
    source = f"interpolated (times log-log, bytes linearly) between {_row_source(a)} and {_row_source(b)}"
    return Measured(
        tokens,
        prefill_ms=loglog("prefill_ms"),
        reuse_ms=loglog("reuse_ms"),
        compute_ms=loglog("compute_ms"),
        shipped_bytes=linear("shipped_bytes"),
        link_gbps=link(b),
        source=source,
        interpolated=True,
    )


def _usd(v: float) -> str:
    if abs(v) >= 1e6:
        return f"${v / 1e6:.3g}M"
    if abs(v) >= 1e3:
        return f"${v / 1e3:.3g}k"
    return f"${v:.3g}"


def _priced(section: str, key: str, price, unit: str) -> str:
    return f"cost.{section}.{key}: ${price.usd:g} {unit} ({price.provider}), read {price.date} from {price.source}"


def quote(
    m: Measured, reads: float, sheet: PriceSheet, econ: EconomicsConfig, tier: str
) -> tuple[list[Figure], dict[str, str]]:
    """The answer's lines for the measured inputs ``m`` and ``reads`` reads, and the sources they name.

    Returns ``(figures, sources)``; ``sources`` maps each key a figure's ``refs`` names to where it comes from.
    """
    gpu, egress = sheet.gpu_hour[econ.gpu_price], sheet.egress[econ.egress_price]
    rate = gpu.usd or 0.0
    sources = {
        "rows": m.source,
        "gpu": _priced("gpu_hour", econ.gpu_price, gpu, "per GPU-hour"),
        "egress": _priced("egress", econ.egress_price, egress, f"per {egress.unit}"),
    }
    p_usd, r_usd = cost.device_usd(m.prefill_ms, rate), cost.device_usd(m.reuse_ms, rate)
    total_p, total_r = reads * p_usd, p_usd + reads * r_usd
    hours = lambda ms: f"{reads * ms / 3.6e6:.3g} h"
    tag = " (interpolated)" if m.interpolated else ""
    n_star = cost.break_even_reads(p_usd, r_usd)
    e_usd = cost.egress_usd(m.shipped_bytes, cost.per_gb(egress))
    link = cost.break_even_link_gbps(m.shipped_bytes, m.prefill_ms, m.compute_ms)
    measured = f"; the tier's measured link: {m.link_gbps:.3g} GB/s" if m.link_gbps else ""
    read = "the whole read: fetch, decode, copy, attach, question"
    out = [
        Figure(
            "prefill, device time",
            f"{m.prefill_ms / 1e3:.3g} s",
            hours(m.prefill_ms),
            "document + question" + tag,
            "rows",
            m.prefill_ms / 1e3,
        ),
        Figure(
            f"reuse from {tier}, device time",
            f"{m.reuse_ms / 1e3:.3g} s",
            hours(m.reuse_ms),
            read + tag,
            "rows",
            m.reuse_ms / 1e3,
        ),
        Figure("prefill, dollars", _usd(p_usd), _usd(total_p), "device time x GPU-hour", "rows, gpu", p_usd),
        Figure(
            "reuse, dollars",
            _usd(r_usd),
            _usd(total_r),
            "all reads: one prefill to publish + the reuses",
            "rows, gpu",
            r_usd,
        ),
        Figure(
            "prefill / reuse",
            f"{p_usd / r_usd:.3g}x",
            f"{total_p / total_r:.3g}x",
            "the dollars above",
            "",
            p_usd / r_usd,
        ),
        Figure(
            "N* (break-even reads)",
            "-" if n_star is None else f"{n_star:.3g}",
            "",
            "reads from which publishing once and reusing is cheaper: P / (P - R)",
            "rows, gpu",
            n_star,
        ),
        Figure(
            "egress if shipped",
            _usd(e_usd),
            _usd(reads * e_usd),
            f"{m.shipped_bytes / cost.GB:.3g} GB to every reader, {e_usd / p_usd:.3g}x a prefill",
            "rows, egress",
            e_usd,
        ),
    ]
    figure, hosting_source = hosting(m, sheet, econ, tier, rate, gpu.memory_gb)
    out.append(figure)
    if hosting_source:
        sources["hosting"] = hosting_source
    out.append(
        Figure(
            "break-even link",
            "never" if link is None else f"{link:.3g} GB/s",
            "",
            f"bytes / (prefill - the read's own compute){measured}",
            "rows",
            link,
        )
    )
    return out, sources


def hosting(
    m: Measured, sheet: PriceSheet, econ: EconomicsConfig, tier: str, rate: float, memory_gb: float | None
) -> tuple[Figure, str]:
    """Keeping the KV on ``tier`` for an hour at the price ``economics.hosting`` names for it, and that source."""
    key = econ.hosting.get(tier)
    gb = m.shipped_bytes / cost.GB
    if key == "hbm" and memory_gb:
        per_hour = cost.hosting_usd_per_hour(m.shipped_bytes, cost.hbm_usd_per_gb_hour(rate, memory_gb))
        how = f"{gb:.3g} GB as its share of the GPU's {memory_gb:g} GB"
        return Figure("hosting per hour", _usd(per_hour), "", how, "rows, gpu", per_hour), ""
    if key is not None and key in sheet.storage:
        price = sheet.storage[key]
        per_hour = cost.hosting_usd_per_hour(m.shipped_bytes, cost.per_gb_hour(price))
        source = _priced("storage", key, price, f"per {price.unit}")
        return Figure(
            "hosting per hour", _usd(per_hour), "", f"{gb:.3g} GB resident", "rows, hosting", per_hour
        ), source
    how = f"no price for the {tier} tier on the sheet (host DRAM and local NVMe come with the instance)"
    return Figure("hosting per hour", "not priced", "", how), ""


def load_prices(ask: Ask) -> tuple[PriceSheet, EconomicsConfig]:
    """The price sheet and the economics choices (``conf/exp/economics.yaml``), with the asked overrides."""
    sheet_yaml = OmegaConf.load(CONF / "cost" / f"{ask.sheet}.yaml")
    sheet = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PriceSheet), sheet_yaml))
    econ_yaml = OmegaConf.select(OmegaConf.load(CONF / "exp" / "economics.yaml"), "economics")
    overrides = {k: v for k, v in (("gpu_price", ask.gpu_price), ("egress_price", ask.egress_price)) if v}
    econ = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(EconomicsConfig), econ_yaml, overrides))
    assert isinstance(sheet, PriceSheet) and isinstance(econ, EconomicsConfig)
    econ.check(sheet)
    return sheet, econ


def answer(ask: Ask) -> tuple[str, list[Figure], dict[str, str]]:
    """Title, lines and sources for one question (raises ConfigError in one line when it cannot be answered)."""
    sheet, econ = load_prices(ask)
    rows = load_rows(result_paths(ask.results, ask.include_local))
    points = tier_rows(rows, ask, econ)
    m = at_length(points, ask.tokens)
    first = points.iloc[0]
    weights = "random weights: timing only" if first["weights"] == "random" else "real weights"
    variant = f" {first['tier_variant']}" if first["tier_variant"] else ""
    title = (
        f"{ask.tokens} tokens read {ask.reads:.3g} times: {first['model']} ({weights}), {first['dtype']} on "
        f"{first['device']}, KV on {first['tier']}{variant} ({first['codec']}, reader {first['reader']})"
    )
    figures, sources = quote(m, ask.reads, sheet, econ, str(first["tier"]))
    return title, figures, sources


def main(argv: list[str] | None = None) -> int:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    try:
        ask = parse(sys.argv[1:] if argv is None else argv)
        title, figures, sources = answer(ask)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"kvbench.savings: {exc}", file=sys.stderr)
        return 2
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for header, justify in (
        ("", "left"),
        ("per read", "right"),
        (f"{ask.reads:.3g} reads", "right"),
        ("how", "left"),
        ("from", "left"),
    ):
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for f in figures:
        table.add_row(f.name, f.per_read, f.total, f.how, f.refs)
    console = Console()
    console.print(table)
    for key, text in sources.items():
        console.print(f"{key}: {text}", overflow="fold", markup=False, highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
