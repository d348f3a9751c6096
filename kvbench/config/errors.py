"""The config's one error type and the checks every schema uses to raise it."""

from __future__ import annotations

import math
from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line naming the key."""


class UnreachableError(ConfigError):
    """A dataset or model named by the config cannot be had: not on the Hub, or neither the Hub
    nor the local cache has it. One line naming the key and the id (exit 2, like a bad value)."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: allowed {allowed}")


def one_of(key: str, value: Any, allowed: tuple) -> None:
    require(value in allowed, key, value, " | ".join(map(str, allowed)))


def count(key: str, value: Any, low: int, high: int) -> None:
    """An integer in ``low .. high``: a count far past any real run (10**22 repeats) fails here, not per point."""
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    require(ok, key, value, f"an integer in {low} .. {high:,}".replace(",", "_"))


def number(key: str, value: Any, *, above: float | None = None, at_least: float | None = None) -> None:
    """A finite number ``> above`` or ``>= at_least``: inf and NaN compare false and would pass a bare check."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (above is None or value > above) and (at_least is None or value >= at_least)
    bound = f"> {above:g}" if above is not None else f">= {at_least:g}" if at_least is not None else ""
    require(ok, key, value, f"a finite number {bound}".rstrip())
