"""The cost model: measured device time and bytes, priced. Pure functions, no model code.

Units: times in milliseconds (as rows hold them) or seconds where the name says so, bytes
as counted, GB = 1e9 bytes, prices in USD. A publisher prefills a document once (the
*write*); every reader then either prefills it again (cost P each) or reuses the stored KV
(cost R each, plus hosting while it is kept and egress if it is shipped).
"""

from __future__ import annotations

import math
from typing import Optional

from kvbench.config.prices import EGRESS_UNITS, STORAGE_UNITS, EgressPrice, StoragePrice

SECONDS_PER_HOUR = 3600.0
GB = 1e9


def device_usd(ms: float, usd_per_hour: float) -> float:
    """Dollars of one device busy for ``ms`` milliseconds at ``usd_per_hour``."""
    return ms / 1e3 / SECONDS_PER_HOUR * usd_per_hour


def total_usd(readers: float, ms_each: float, usd_per_hour: float) -> float:
    """Dollars of ``readers`` requests of ``ms_each`` device milliseconds each."""
    return readers * device_usd(ms_each, usd_per_hour)


def implied_usd_per_hour(total: float, readers: float, seconds_each: float) -> float:
    """The hourly device price a stated total implies: total / (readers x seconds / 3600)."""
    return total / (readers * seconds_each / SECONDS_PER_HOUR)


def break_even_reads(
    prefill_usd: float, reuse_usd: float, write_usd: Optional[float] = None, hosting_usd: float = 0.0
) -> Optional[float]:
    """N*: readers from which storing the KV costs less than prefilling for each of them.

    N readers cost N x P when each prefills, and W + S + N x R when the publisher prefills
    once (W, default P) and keeps the KV (S, hosting over the readers' span) for readers who
    reuse it: N* = (W + S) / (P - R). None when reuse is not cheaper than prefill (P <= R).
    """
    write = prefill_usd if write_usd is None else write_usd
    saving = prefill_usd - reuse_usd
    return (write + hosting_usd) / saving if saving > 0 else None


def _usd(price: EgressPrice | StoragePrice) -> float:
    if price.usd is None:  # the price sheet's validation refuses this; a hand-built price may not
        raise ValueError(f"{price.provider or 'a'} price has no usd")
    return price.usd


def per_gb(price: EgressPrice) -> float:
    """An egress price in USD per GB (1e9 B), whatever unit it was listed in."""
    return _usd(price) * EGRESS_UNITS[price.unit]


def per_gb_hour(price: StoragePrice) -> float:
    """A storage price in USD per GB (1e9 B) per hour, whatever unit it was listed in."""
    return _usd(price) * STORAGE_UNITS[price.unit]


def egress_usd(nbytes: float, usd_per_gb: float) -> float:
    """Dollars to ship ``nbytes`` out of a provider."""
    return nbytes / GB * usd_per_gb


def hosting_usd_per_hour(nbytes: float, usd_per_gb_hour: float) -> float:
    """Dollars per hour to keep ``nbytes`` resident."""
    return nbytes / GB * usd_per_gb_hour


def hbm_usd_per_gb_hour(gpu_usd_per_hour: float, memory_gb: float) -> float:
    """Device memory priced as its share of the GPU-hour (the KV displaces that much of a GPU)."""
    return gpu_usd_per_hour / memory_gb


def break_even_link_gbps(nbytes: float, prefill_ms: float, reuse_compute_ms: float) -> Optional[float]:
    """The slowest link (GB/s) from which fetching ``nbytes`` and reusing still beats prefill.

    Fetch must take less than prefill minus the reuse's own compute: bytes / (P - R).
    None when reuse's compute alone is not faster than prefill.
    """
    budget_s = (prefill_ms - reuse_compute_ms) / 1e3
    return nbytes / GB / budget_s if budget_s > 0 else None


def break_even_reads_per_hour(hosting_per_hour: float, saving_per_read: float) -> Optional[float]:
    """Reads per hour above which keeping the KV resident pays for itself."""
    return hosting_per_hour / saving_per_read if saving_per_read > 0 else None


def provider_margin(read_multiplier: float, reuse_ms: float, prefill_ms: float) -> float:
    """What a cache-read tariff leaves the provider, as a fraction of the uncached input price.

    The reader pays ``read_multiplier`` x the uncached price; if that price just covers a
    prefill, serving the read costs the provider reuse / prefill of it. Positive: margin.
    """
    return read_multiplier - reuse_ms / prefill_ms


def tokens_usd(tokens: float, usd_per_mtok: float) -> float:
    """Dollars of ``tokens`` at a per-million-token price."""
    return tokens / 1e6 * usd_per_mtok


def finite(value: Optional[float]) -> Optional[float]:
    """``value`` unless it is None or NaN (rows read through pandas carry NaN for missing)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
