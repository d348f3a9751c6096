"""Every figure and table of the paper from the rows under a results folder.

Which rows: a results tree's reference folders (its ``REFERENCE`` list, :mod:`kvbench.rows.reference`),
or all of them with ``include_local``; a folder that is no such tree is read whole. Within them,
rows are chosen by their ``experiment`` and identity columns, never by folder name; a figure
or table whose rows are missing is skipped with a printed note. Generated files are cleared
first, so nothing stale survives a rebuild.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from kvbench.config.prices import PaperInputs
from kvbench.economics import inputs as cost_inputs
from kvbench.economics.crossover import crossovers
from kvbench.report import (
    econ_figures,
    econ_tables,
    figures,
    numbers,
    perf_figures,
    recipes_table,
    ridge_table,
    style,
    tables,
    tier_figures,
)
from kvbench.rows.reference import result_paths
from kvbench.rows.store import CONFIG_FILE, load_rows


class Report:
    def __init__(self, out: Path):
        self.figures, self.tables = out / "figures", out / "tables"
        self.written: list[str] = []
        self.skipped: list[str] = []
        for folder, pattern in ((self.figures, "*.p[dn][fg]"), (self.tables, "*.tex")):
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob(pattern):
                old.unlink()

    def figure(self, name: str, rows: pd.DataFrame, draw, why: str) -> None:
        if rows is None or rows.empty:
            self.skipped.append(f"figure {name}: {why}")
            return
        style.save(draw()[0], self.figures / name)
        self.written.append(f"figures/{name}.pdf")

    def table(self, name: str, rows, make, why: str) -> None:
        if rows is None or len(rows) == 0:
            self.skipped.append(f"table {name}: {why}")
            return
        (self.tables / f"{name}.tex").write_text(make())
        self.written.append(f"tables/{name}.tex")


def build(results: str | Path, out: str | Path, include_local: bool = False) -> Report:
    style.apply()
    rows = load_rows(result_paths(results, include_local))
    report = Report(Path(out))
    reuse = cost_inputs.ok_rows(rows, "reuse")
    points = cost_inputs.reuse_points(rows)
    econ, sheet, econ_cfg = economics_run(rows)
    paper = PaperInputs(**{k: v for k, v in (econ_cfg.get("paper") or {}).items()}) if econ_cfg else PaperInputs()
    report.figure("latency_vs_length", points, lambda: figures.latency_vs_length(points), "no reuse rows")
    report.figure(
        "speedup_vs_length", points, lambda: figures.speedup_vs_length(points, paper.speedup_points), "no reuse rows"
    )
    exact = cost_inputs.exactness_points(rows)
    report.figure("exactness_vs_length", exact, lambda: figures.exactness_vs_length(exact), "no exactness rates")
    report.table("exactness", exact, lambda: tables.exactness_table(exact), "no exactness rates")
    eff = reuse[reuse["reuse_efficiency"].notna()] if "reuse_efficiency" in reuse else None
    report.figure(
        "efficiency_vs_length",
        eff,
        lambda: perf_figures.efficiency_vs_length(eff),
        "no reuse rows with reuse_efficiency (the roofline reader's rows)",
    )
    batch = cost_inputs.ok_rows(rows, "throughput")
    report.figure(
        "throughput_per_reader",
        batch,
        lambda: perf_figures.throughput_per_reader(batch),
        "no experiment=throughput rows",
    )
    report.table("latency", points, lambda: tables.latency_table(points), "no reuse rows")
    tiers = cost_inputs.tier_points(rows)
    lengths = sorted(tiers["doc_tokens"].unique()) if len(tiers) else []
    for name, length in (("mid", lengths[len(lengths) // 2]), ("long", lengths[-1])) if lengths else ():
        report.figure(f"tier_stages_{name}", tiers, lambda: tier_figures.tier_stages(tiers, int(length)), "")
    if not lengths:
        report.skipped.append("figure tier_stages_mid, tier_stages_long: no tiers rows")
    report.figure("tier_reuse_vs_length", tiers, lambda: tier_figures.tier_reuse_vs_length(tiers), "no tiers rows")
    loaders = cost_inputs.loader_points(rows)
    both = loaders[loaders["tier_io"] == "serial"] if len(loaders) else loaders
    report.figure("tier_loader", both, lambda: tier_figures.loader_effect(loaders), "no serial-loader tier rows")
    report.table(
        "crossover",
        tiers,
        lambda: tables.crossover_table(pd.DataFrame(crossovers(tiers.to_dict("records")))),
        "no tiers rows",
    )
    codecs = cost_inputs.ok_rows(rows, "compress")
    lossless = codecs[codecs["codec_lossless"].fillna(False).astype(bool)] if len(codecs) else codecs
    report.figure("codec_ratios", lossless, lambda: tier_figures.codec_ratios(codecs), "no lossless compress rows")
    report.table(
        "codecs",
        codecs,
        lambda: tables.codec_table(codecs, caption=CODECS_CAPTION, label="tab:codecs"),
        "no compress rows",
    )
    economics(report, econ, sheet, paper, results)
    model = (econ_cfg or {}).get("model") or "qwen3-4b-random"
    ridge = ridge_table.ridge_rows(points, model, paper) if len(points) else points
    report.table("ridge", ridge, lambda: ridge_table.ridge_table(ridge), f"no reuse rows of {model}")
    recipes = recipe_rows_or_empty(results)
    report.table(
        "recipes",
        recipes,
        lambda: recipes_table.recipes_table(recipes, caption=RECIPES_CAPTION, label="tab:recipes"),
        "no run folder with a manifest.json",
    )
    values = {
        **numbers.speed_macros(points, model),
        **numbers.exactness_macros(exact),
        **numbers.tier_macros(tiers),
        **numbers.codec_macros(codecs),
        **numbers.economics_macros(econ),
        **(ridge_table.ridge_macros(ridge, paper) if len(ridge) else {}),
    }
    names = (*numbers.NAMES, *ridge_table.MACROS)
    report.table("numbers", names, lambda: numbers.macros_tex(values, names), "")
    return report


CODECS_CAPTION = (
    "Every codec per model and dtype at the longest length measured: the lossless ratio (or the "
    "lossy codec's size ratio) beside the ratios the per-channel order-0 entropy and the better of "
    "the two context entropies allow (16-bit KV; ``--'': not measured for that run), decode speed "
    "(host, and on the device for GPU codecs), and for lossy codecs the documents judged, the fraction "
    "whose 24-token continuation is unchanged and the change in the held-out continuation's NLL "
    "(nats/token) with its 95\\% bootstrap interval over documents. Ratios come from the first "
    "document's KV. \\hw\\ and a 2-core CPU (device ``cpu''), results/compress."
)
RECIPES_CAPTION = (
    "How the rows behind every figure and table were made: each results folder the report reads "
    "(results/REFERENCE), its jobs, the device, the day of the first job and the commits. The exact "
    "commands are in each folder's RECIPE file."
)


def recipe_rows_or_empty(results) -> pd.DataFrame:
    """The appendix's rows, or none where the results tree has no reference list to read."""
    try:
        return recipes_table.recipe_rows(results)
    except FileNotFoundError:
        return pd.DataFrame()


def economics_run(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict, dict]:
    """The economics rows of one pricing (the one with most rows where several were run), with
    the price sheet and economics settings of its run (from the run folder's config.yaml)."""
    econ = rows[rows["experiment"] == "economics"] if len(rows) else rows
    if econ.empty:
        return econ, {}, {}
    key = ["price_sheet", "gpu_price", "egress_price"]
    cost = econ[econ["econ_row"] == "cost"]
    chosen = cost.groupby(key).size().idxmax() if len(cost) else None
    runs = (
        econ["run_dir"].unique()
        if chosen is None
        else cost[(cost[key] == pd.Series(chosen, index=key)).all(axis=1)]["run_dir"].unique()
    )
    econ = econ[econ["run_dir"] == runs[0]]
    path = Path(runs[0]) / CONFIG_FILE
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: the economics run's config is not a mapping")
    return econ, cfg.get("cost") or {}, cfg.get("economics") or {}


def _headline(cost: pd.DataFrame) -> pd.DataFrame:
    """Each model's best reader among priced reuse points (fast, else graph, else hf)."""
    ranked = cost.assign(reader=cost["reuse_reader"])
    single = cost_inputs.headline(ranked[ranked["reuse_basis"] == "single"])
    return pd.concat([single, cost[cost["reuse_basis"] == "batched"]], ignore_index=True)


def economics(report: Report, econ: pd.DataFrame, sheet: dict, paper: PaperInputs, results) -> None:
    why = "no experiment=economics rows (python -m kvbench +exp=economics)"
    cost = econ[econ["econ_row"] == "cost"] if len(econ) else econ
    tiers = cost[cost["tier"].notna()] if len(cost) else cost
    reuse = _headline(cost[cost["tier"].isna()]) if len(cost) else cost
    report.figure("econ_usd_per_mreads", tiers, lambda: econ_figures.usd_per_mreads_vs_length(tiers), why)
    single = reuse[reuse["reuse_basis"] == "single"] if len(reuse) else reuse
    report.figure("econ_breakeven_link", single, lambda: econ_figures.breakeven_link_vs_length(single, tiers), why)
    report.figure("econ_breakeven_reads", reuse, lambda: econ_figures.breakeven_reads_vs_length(reuse), why)
    report.table("breakeven", tiers, lambda: econ_tables.breakeven_table(tiers), why)
    claims = econ[econ["econ_row"] == "claim"] if len(econ) else econ
    report.table("conclusions", claims, lambda: econ_tables.conclusions_table(claims), why + " with claims")
    tariffs = econ[econ["econ_row"] == "tariff"] if len(econ) else econ
    report.table("tariffs", tariffs, lambda: econ_tables.tariffs_table(tariffs, sheet), why)
    report.table("prices", sheet, lambda: econ_tables.prices_table(sheet), why)
    paper_row = econ[econ["econ_row"] == "paper"] if len(econ) else econ
    report.table("econ_paper", paper_row, lambda: econ_tables.paper_paragraph(paper_row.iloc[0], paper), why)
    # The run folder as the results tree names it (no machine paths in the paper).
    run_dir = str(Path(Path(results).name) / Path(econ["run_dir"].iloc[0]).relative_to(results)) if len(econ) else ""
    report.table("econ_meta", econ, lambda: econ_tables.meta_macros(econ, sheet.get("name", ""), run_dir), why)
