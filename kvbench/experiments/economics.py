"""``+exp=economics``: the cost model over committed rows. No model, no device.

Reads the reference rows under ``results_dir`` (the folders its ``REFERENCE`` lists; every run
with ``economics.include_local=true``: reuse, tiers, compress, throughput where present),
prices them with the price sheet, and returns economics rows (schema: the economics
section of :mod:`kvbench.rows.schema`): the paper reproduced from its own inputs, every measured
point priced, each API tariff beside the measured cost ratio, and the paper's conclusions
beside their measured versions. :mod:`kvbench.experiments.economics_print` shows them.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from kvbench.config.errors import ConfigError
from kvbench.config.prices import ApiTariff, EconomicsConfig, PriceSheet
from kvbench.config.schema import KVBenchConfig
from kvbench.economics import cost, scenario
from kvbench.economics import inputs as cost_inputs
from kvbench.experiments.economics_claims import scenario_rows
from kvbench.rows.reference import result_paths
from kvbench.rows.schema import make_row
from kvbench.rows.store import load_rows, point_id

log = logging.getLogger(__name__)


class EconomicsExperiment:
    """Prices rows: a :class:`~kvbench.experiments.base.RowsExperiment`, run without device or model."""

    name = "economics"

    def derive(self, settings: KVBenchConfig) -> list[dict[str, Any]]:
        _, econ = _sections(settings)
        rows = load_rows(result_paths(settings.results_dir, econ.include_local))
        if not rows.empty:
            rows = rows[rows["experiment"] != "economics"]
        return Pricer(settings).rows(rows)

    def report(self, rows: list[dict[str, Any]]) -> None:
        from kvbench.experiments.economics_print import print_economics

        print_economics(rows)


class Pricer:
    """The price sheet and the economics settings, applied to rows."""

    def __init__(self, settings: KVBenchConfig):
        self.sheet, self.econ = _sections(settings)
        gpu = self.sheet.gpu_hour[self.econ.gpu_price]
        if gpu.usd is None:  # the price sheet's validation refuses this; a hand-built sheet may not
            raise ConfigError(f"cost.gpu_hour.{self.econ.gpu_price}.usd is missing: the price per GPU-hour")
        self.rate, self.memory_gb = gpu.usd, gpu.memory_gb
        self.egress_gb = cost.per_gb(self.sheet.egress[self.econ.egress_price])
        self.readers = self.econ.readers or self.econ.paper.readers
        self.base = dict(
            experiment="economics",
            status="ok",
            price_sheet=self.sheet.name,
            gpu_price=self.econ.gpu_price,
            gpu_usd_per_hour=self.rate,
            egress_price=self.econ.egress_price,
            egress_usd_per_gb=self.egress_gb,
            readers_total=self.readers,
        )

    def hosting(self, tier: str) -> tuple[str | None, float | None]:
        """(price key, USD per GB-hour) of keeping KV in ``tier``; (None, None) where unpriced."""
        key = self.econ.hosting.get(tier)
        if key == "hbm":
            return key, (cost.hbm_usd_per_gb_hour(self.rate, self.memory_gb) if self.memory_gb else None)
        return (key, cost.per_gb_hour(self.sheet.storage[key])) if key else (None, None)

    def rows(self, rows: pd.DataFrame) -> list[dict[str, Any]]:
        points = cost_inputs.reuse_points(rows)
        tiers = cost_inputs.tier_points(rows)
        batched = cost_inputs.batched_points(rows)
        codecs = cost_inputs.best_codecs(rows)
        out = [self.paper_row()]
        out += [self.cost_row(p, codecs, basis="single") for p in points.to_dict("records")]
        out += [self.cost_row(p, codecs, basis="single") for p in tiers.to_dict("records")]
        out += [self.cost_row(p, codecs, basis="batched") for p in self.batched_with_prefill(batched, points)]
        out += scenario_rows(self, points, tiers, batched, codecs)
        return [make_row(**r, point_id=point_id({k: r.get(k) for k in _IDENTITY})) for r in out]

    def paper_row(self) -> dict[str, Any]:
        p = self.econ.paper
        inputs = scenario.paper_inputs(p)
        e = scenario.evaluate(inputs)
        return dict(
            self.base,
            econ_row="paper",
            model=p.model,
            weights="real",
            device=inputs.label,
            doc_tokens=p.doc_tokens,
            prefill_ms=inputs.prefill_ms,
            reuse_ms=inputs.reuse_ms,
            speedup=e["speedup"],
            kv_bytes=int(inputs.kv_bytes),
            reuse_reader="paper",
            reuse_basis="single",
            gpu_price="implied",
            gpu_usd_per_hour=inputs.usd_per_hour,
            egress_price="paper",
            egress_usd_per_gb=p.egress_usd_per_gb,
            readers_total=p.readers,
            **_pick(
                e,
                "prefill_usd",
                "reuse_usd",
                "total_prefill_usd",
                "total_reuse_usd",
                "cost_ratio",
                "breakeven_reads",
                "egress_usd_raw",
                "egress_over_prefill",
                "provider_margin",
            ),
            tariff_read_multiplier=p.cache_read_multiplier,
        )

    def batched_with_prefill(self, batched: pd.DataFrame, points: pd.DataFrame) -> list[dict[str, Any]]:
        """Batched points with a prefill to compare: their own ``prefill_best_ms``, else the
        reuse rows' prefill at the same model, dtype, device, length and question length (else
        skipped, with a note)."""
        out = []
        key_cols = cost_inputs.BATCH_IDENTITY
        prefill = points.drop_duplicates(key_cols).set_index(key_cols)["prefill_ms"]
        for b in batched.to_dict("records"):
            key = tuple(b[k] for k in key_cols)
            own = cost.finite(b.get("prefill_best_ms"))
            ms = own if own is not None else prefill.get(key)
            if ms is None:
                log.warning("economics: no prefill measured for batched point %s; skipped", key)
                continue
            out.append(dict(b, prefill_ms=ms, reuse_ms=b["per_reader_ms"], reader=b.get("method")))
        return out

    def cost_row(self, p: dict[str, Any], codecs: pd.DataFrame, basis: str) -> dict[str, Any]:
        """One measured point (a reuse reader, a tier read, or a batched reader) in dollars."""
        tier: str | None = p["tier"] if isinstance(p.get("tier"), str) else None  # absent or NaN: no tier read
        shipped = cost.finite(p.get("shipped_bytes")) or p["kv_bytes"]
        compute = cost.finite(p.get("compute_ms")) or p["reuse_ms"]
        prefill_usd, reuse_usd = cost.device_usd(p["prefill_ms"], self.rate), cost.device_usd(p["reuse_ms"], self.rate)
        wan_egress = cost.egress_usd(shipped, self.egress_gb) if tier == "wan" else 0.0
        hosting_key, gb_hour = self.hosting(tier or "gpu")
        hosting = cost.hosting_usd_per_hour(shipped, gb_hour) if gb_hour is not None else None
        row = dict(
            self.base,
            econ_row="cost",
            reuse_basis=basis,
            reuse_reader=p.get("reader"),
            batch_readers=p.get("batch") if basis == "batched" else None,
            **_pick(
                p,
                "model",
                "weights",
                "dtype",
                "device",
                "doc_tokens",
                "prefill_ms",
                "reuse_ms",
                "kv_bytes",
                "tier_variant",
                "codec",
                "link_gbps",
                "fetch_gbps",
            ),
            tier=tier,
            speedup=p["prefill_ms"] / p["reuse_ms"],
            cost_ratio=p["reuse_ms"] / p["prefill_ms"],
            prefill_usd=prefill_usd,
            reuse_usd=reuse_usd,
            prefill_usd_per_mreads=1e6 * prefill_usd,
            reuse_usd_per_mreads=1e6 * (reuse_usd + wan_egress),
            total_prefill_usd=self.readers * prefill_usd,
            total_reuse_usd=self.readers * reuse_usd,
            breakeven_reads=cost.break_even_reads(prefill_usd, reuse_usd),
            hosting_price=hosting_key,
            hosting_usd_per_hour=hosting,
            breakeven_reads_per_hour=(
                cost.break_even_reads_per_hour(hosting, prefill_usd - reuse_usd) if hosting is not None else None
            ),
            breakeven_link_gbps=cost.break_even_link_gbps(shipped, p["prefill_ms"], compute),
        )
        row.update(self.egress(p, codecs, prefill_usd))
        return row

    def egress(self, p: dict[str, Any], codecs: pd.DataFrame, prefill_usd: float) -> dict[str, Any]:
        """Egress of one shipped load: raw, and after the best lossless and lossy codecs measured."""
        raw = cost.egress_usd(p["kv_bytes"], self.egress_gb)
        out = dict(egress_usd_raw=raw, egress_over_prefill=raw / prefill_usd)
        best = cost_inputs.codecs_for(codecs, p["model"], p["dtype"])
        if best is not None:
            for kind in ("lossless", "lossy"):
                ratio = cost.finite(best[f"{kind}_ratio"])
                if ratio:
                    out.update(
                        {
                            f"{kind}_codec": best[f"{kind}_codec"],
                            f"{kind}_ratio": ratio,
                            f"egress_usd_{kind}": raw / ratio,
                        }
                    )
        return out

    def tariff_rows(self, ident: dict[str, Any], cost_ratio: float, doc_tokens: int) -> list[dict[str, Any]]:
        """Every API tariff on the sheet beside one measured (or the paper's) cost ratio."""
        out = []
        for key, t in self.sheet.api_tariffs.items():
            terms = tariff_terms(t, doc_tokens)
            out.append(
                dict(
                    ident,
                    econ_row="tariff",
                    tariff=key,
                    cost_ratio=cost_ratio,
                    **terms,
                    provider_margin=terms["tariff_read_multiplier"] - cost_ratio,
                )
            )
        return out


def tariff_terms(t: ApiTariff, doc_tokens: int) -> dict[str, Any]:
    """A tariff as multipliers of its uncached input price, and its storage fee for one document."""
    uncached, read, write = t.input_usd_per_mtok, t.cache_read_usd_per_mtok, t.cache_write_usd_per_mtok
    if uncached is None or read is None or write is None:  # the price sheet's validation refuses this
        raise ConfigError(f"api tariff {t.provider} {t.model} lacks an input, cache read or cache write price")
    return dict(
        tariff_read_multiplier=read / uncached,
        tariff_write_multiplier=write / uncached,
        tariff_lifetime_s=t.lifetime_s,
        tariff_storage_usd_per_hour=cost.tokens_usd(doc_tokens, t.storage_usd_per_mtok_hour),
    )


# What makes an economics row distinct (its point id).
_IDENTITY = (
    "econ_row",
    "model",
    "weights",
    "dtype",
    "device",
    "doc_tokens",
    "tier",
    "tier_variant",
    "codec",
    "reuse_reader",
    "reuse_basis",
    "batch_readers",
    "gpu_price",
    "egress_price",
    "tariff",
    "claim",
)


def _sections(settings: KVBenchConfig) -> tuple[PriceSheet, EconomicsConfig]:
    """The price sheet and the economics settings (the schema requires both for experiment=economics)."""
    if settings.cost is None:
        raise ConfigError("cost is missing: a price sheet, cost=NAME (conf/cost/NAME.yaml)")
    if settings.economics is None:
        raise ConfigError("economics is missing: the economics settings (+exp=economics)")
    return settings.cost, settings.economics


def _pick(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    """The given keys of ``d`` (NaN from pandas becomes None)."""
    return {k: cost.finite(d.get(k)) for k in keys}
