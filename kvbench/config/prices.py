"""Structured configs of the economics: the price sheet (``conf/cost/``) and what to compare.

Every price carries the URL it was read from and the date it was read (``YYYY-MM-DD``);
:class:`PriceSheet` refuses one without either, in one line naming the key. A price read from
the provider's own page is primary; one read elsewhere (a data file, a blog, a pull request, a
forum) is marked ``secondary: true``, with ``cites`` naming the vendor page it quotes where it
names one. Prices are stored as the page states them (with their unit);
:mod:`kvbench.economics.cost` does the arithmetic.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, fields
from typing import Optional

from kvbench.config.errors import ConfigError
from kvbench.config.names import TIERS

# Units a price may be quoted in, per section, and the factor to the section's canonical unit:
# per GB (1e9 B), per GB-hour, per GPU-hour, per million tokens.
GIB = 2**30 / 1e9
HOURS_PER_MONTH = 730.0  # the month AWS, GCP and Azure price calculators use
EGRESS_UNITS = {"GB": 1.0, "GiB": 1 / GIB}
STORAGE_UNITS = {
    "GB-hour": 1.0,
    "GiB-hour": 1 / GIB,
    "GB-month": 1 / HOURS_PER_MONTH,
    "GiB-month": 1 / (GIB * HOURS_PER_MONTH),
}
GPU_KINDS = ("on-demand", "spot", "market", "reserved")
STORAGE_TIERS = ("host", "disk", "redis", "object")


@dataclass
class Sourced:
    """Where a price comes from: the page read, the day it was read, and what it says.

    ``secondary`` is false when ``source`` is the provider's own price page (or its documentation's
    source, e.g. the vendor's docs repository), and true when the price was read from anyone else's
    page: a third-party data file, blog, pull request or forum post. A secondary entry may name the
    vendor page it quotes in ``cites``; ``cites`` on a primary entry is refused, so a reader can tell
    the two apart from the sheet alone.
    """

    source: Optional[str] = None  # URL of the page the price was read from
    date: Optional[str] = None  # the day it was read, YYYY-MM-DD
    as_of: Optional[str] = None  # the date the page itself gives, when it gives one
    cites: Optional[str] = None  # the vendor page a secondary source quotes (secondary entries only)
    secondary: bool = False  # true: `source` is not the provider's own page
    note: Optional[str] = None


@dataclass
class GpuPrice(Sourced):
    """One GPU rented for an hour (a whole instance's price divided by its GPUs)."""

    gpu: str = ""
    kind: str = "on-demand"  # on-demand | spot | market (a marketplace of hosts) | reserved
    provider: str = ""
    usd: Optional[float] = None  # per GPU-hour
    memory_gb: Optional[float] = None  # device memory per GPU, GB, for the HBM share of an hour


@dataclass
class EgressPrice(Sourced):
    """Bytes leaving a provider for the internet (first paid tier)."""

    provider: str = ""
    usd: Optional[float] = None
    unit: str = "GB"  # GB | GiB


@dataclass
class StoragePrice(Sourced):
    """Keeping bytes resident in a storage tier."""

    provider: str = ""
    tier: str = "object"  # host | disk | redis | object
    usd: Optional[float] = None
    unit: str = "GB-month"  # GB-month | GiB-month | GB-hour | GiB-hour


@dataclass
class ApiTariff(Sourced):
    """An API's prompt-caching tariff, in USD per million input tokens as listed."""

    provider: str = ""
    model: str = ""
    input_usd_per_mtok: Optional[float] = None
    cache_write_usd_per_mtok: Optional[float] = None
    cache_read_usd_per_mtok: Optional[float] = None
    storage_usd_per_mtok_hour: float = 0.0
    lifetime_s: Optional[float] = None  # how long an entry lives unless read again (null: not published)


@dataclass
class PriceSheet:
    """A named set of public prices; ``cost=NAME`` picks ``conf/cost/NAME.yaml``."""

    name: str = ""
    gpu_hour: dict[str, GpuPrice] = field(default_factory=dict)
    egress: dict[str, EgressPrice] = field(default_factory=dict)
    storage: dict[str, StoragePrice] = field(default_factory=dict)
    api_tariffs: dict[str, ApiTariff] = field(default_factory=dict)

    def __post_init__(self):
        for section in ("gpu_hour", "egress", "storage", "api_tariffs"):
            for key, price in getattr(self, section).items():
                _check(price, f"cost.{section}.{key}")

    def entries(self):
        """(section, key, price) for every price on the sheet."""
        for section in ("gpu_hour", "egress", "storage", "api_tariffs"):
            for key, price in getattr(self, section).items():
                yield section, key, price


def _check(price: Sourced, key: str) -> None:
    """One clear line for the first thing wrong with a price."""

    def fail(name: str, allowed: str):
        raise ConfigError(f"{key}.{name}={getattr(price, name)!r} is invalid: allowed {allowed}")

    if not (price.source or "").startswith(("https://", "http://")):
        fail("source", "the URL of the page the price was read from")
    if not isinstance(price.secondary, bool):
        fail("secondary", "true (source is not the provider's own page) | false")
    if price.cites is not None:
        if not price.secondary:
            fail("cites", "only on a secondary entry (secondary: true), naming the vendor page it quotes")
        if not str(price.cites).startswith(("https://", "http://")):
            fail("cites", "the URL of the vendor page the secondary source quotes")
    for name in ("date", "as_of"):
        value = getattr(price, name)
        if value is None and name == "as_of":
            continue
        try:
            datetime.date.fromisoformat(str(value))
        except ValueError:
            fail(name, "a date YYYY-MM-DD" + (" (the day the price was read)" if name == "date" else ""))
    amounts = [f.name for f in fields(price) if f.name.endswith("usd") or f.name.endswith("_mtok")]
    for name in amounts:
        value = getattr(price, name)
        if value is None or value < 0:
            fail(name, "a price >= 0 in USD, as the source lists it")
    if isinstance(price, GpuPrice) and price.kind not in GPU_KINDS:
        fail("kind", " | ".join(GPU_KINDS))
    if isinstance(price, EgressPrice) and price.unit not in EGRESS_UNITS:
        fail("unit", " | ".join(EGRESS_UNITS))
    if isinstance(price, StoragePrice):
        if price.unit not in STORAGE_UNITS:
            fail("unit", " | ".join(STORAGE_UNITS))
        if price.tier not in STORAGE_TIERS:
            fail("tier", " | ".join(STORAGE_TIERS))


@dataclass
class PaperInputs:
    """The reference paper's own numbers (arXiv 2606.13361, abstract and economics section).

    Inputs, never measurements of this harness: they are reproduced, not re-measured.
    """

    source: str = "https://arxiv.org/abs/2606.13361"
    device: str = "Apple M1 Pro"
    model: str = "Qwen3-4B"
    doc_tokens: int = 3774
    readers: float = 80e6
    prefill_s: float = 14.71
    reuse_s: float = 0.296
    kv_gb: float = 0.54
    egress_usd_per_gb: float = 0.09
    total_prefill_usd: float = 1.5e6  # stated as "~$1.5M"
    total_reuse_usd: float = 0.03e6  # stated as "~$0.03M"
    total_rounding_usd: float = 0.05e6  # half the last digit of "$1.5M"
    speedup: float = 49.7
    cache_read_multiplier: float = 0.1
    # The abstract's "9-50x cheaper" over 255-3774 tokens: its two ends.
    speedup_points: dict[int, float] = field(default_factory=lambda: {255: 9.0, 3774: 49.7})


@dataclass
class EconomicsConfig:
    """What the ``economics`` experiment prices, and which measured rows stand for the paper's setup."""

    model: str = "qwen3-4b-random"  # measured stand-in for the paper's Qwen3-4B (same shape)
    device: str = "NVIDIA H200"
    dtype: str = "bfloat16"
    gpu_price: str = ""  # key of cost.gpu_hour used for every dollar figure
    egress_price: str = ""  # key of cost.egress for shipped loads
    hosting: dict[str, str] = field(default_factory=dict)  # tier -> key of cost.storage ("hbm": GPU share)
    readers: Optional[float] = None  # readers in the scenario; null: the paper's 80 million
    include_local: bool = False  # price every run under results_dir, not only its REFERENCE folders
    paper: PaperInputs = field(default_factory=PaperInputs)

    def check(self, sheet: PriceSheet) -> None:
        """Every key named here is on the price sheet (called when experiment=economics)."""

        def need(key: str, value: str, section: dict, extra: tuple = ()):
            if value not in section and value not in extra:
                allowed = " | ".join((*section, *extra)) or f"a key of {key.split('.')[0]} (the price sheet is empty)"
                raise ConfigError(f"economics.{key}={value!r} is invalid: allowed {allowed}")

        need("gpu_price", self.gpu_price, sheet.gpu_hour)
        need("egress_price", self.egress_price, sheet.egress)
        for tier, key in self.hosting.items():
            if tier not in TIERS:
                raise ConfigError(f"economics.hosting.{tier} is invalid: allowed tiers {' | '.join(TIERS)}")
            need(f"hosting.{tier}", key, sheet.storage, ("hbm",))
        if self.readers is not None and self.readers <= 0:
            raise ConfigError(f"economics.readers={self.readers!r} is invalid: allowed null or a number > 0")
