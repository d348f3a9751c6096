"""tiers: where a reader's KV lives and what it costs to bring it to the device, by name.

``open_tier(settings.tier, variant, codec, device)`` returns a :class:`Tier` to use as a
context manager; ``variants(settings.tier)`` lists what one tier config measures (the disk
tier's cold and warm page cache, the wan tier's link profiles).

Imports: codecs, measure, kv, model, rows, config. Never a forward or an experiment.
"""

from __future__ import annotations

import torch

from kvbench.config.schema import TierConfig
from kvbench.tiers.base import BlobTier, Read, StageTimer, Tier, TierError, TierUnavailableError


def variants(cfg: TierConfig) -> list[str]:
    """The tier variants one run measures: page-cache states (disk), link profiles (wan), or ``[""]``."""
    if cfg.name == "disk":
        return list(cfg.cache)
    if cfg.name == "wan":
        return [cfg.profile] if cfg.profile is not None else list(cfg.profiles)
    return [""]


def too_slow(cfg: TierConfig, variant: str, nbytes: int) -> str | None:
    """Why reading ``nbytes`` from this tier is not worth timing (None when it is).

    A wan read's link floor is known before any byte moves; past ``tier.max_fetch_s``
    reuse cannot win, and each read would take that long.
    """
    if cfg.name != "wan" or cfg.max_fetch_s is None:
        return None
    from kvbench.tiers.wan import link_floor_s

    floor = link_floor_s(nbytes, cfg.profiles[variant])
    if floor <= cfg.max_fetch_s:
        return None
    return (
        f"wan tier: link floor {floor:.1f} s for {nbytes} bytes on {variant} "
        f"exceeds tier.max_fetch_s={cfg.max_fetch_s:g}"
    )


def open_tier(cfg: TierConfig, variant: str, codec, device: torch.device) -> Tier:
    """A fresh, empty tier of ``cfg.name`` (modules load lazily: redis-py only where it is used).

    Raises
    ------
    TierUnavailableError
        If the backend cannot be reached or started.
    """
    if cfg.name == "gpu":
        from kvbench.tiers.gpu import GpuTier

        return GpuTier(codec, device)
    if cfg.name == "host":
        from kvbench.tiers.host import HostTier

        return HostTier(codec, device)
    if cfg.workers is None:  # TierConfig.__post_init__ sets it: None means a config that was never checked
        raise ValueError("tier.workers is null: open_tier needs a checked TierConfig")
    workers = cfg.workers
    tier: BlobTier
    if cfg.name == "disk":
        from kvbench.tiers.disk import DiskTier

        tier = DiskTier(codec, device, directory=cfg.dir, cold=variant == "cold")
    elif cfg.name == "redis":
        from kvbench.tiers.redis_store import RedisTier

        tier = RedisTier(
            codec,
            device,
            url=cfg.url,
            password_env=cfg.password_env,
            server_bin=cfg.server_bin,
            chunk_mib=cfg.chunk_mib,
            connect_timeout_s=cfg.connect_timeout_s,
            socket_timeout_s=cfg.socket_timeout_s,
            io_threads=cfg.io_threads,
        )
    elif cfg.name == "wan":
        from kvbench.tiers.wan import WanTier

        tier = WanTier(codec, device, profile_name=variant, profile=cfg.profiles[variant])
    else:
        raise KeyError(f"unknown tier {cfg.name!r}")
    tier.configure(cfg.io, workers, cfg.slots or 2 * workers)
    return tier


__all__ = ["Read", "StageTimer", "Tier", "TierError", "TierUnavailableError", "open_tier", "too_slow", "variants"]
