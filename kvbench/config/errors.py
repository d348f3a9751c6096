"""The config's one error type and the two checks every schema uses to raise it."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line naming the key."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: allowed {allowed}")


def one_of(key: str, value: Any, allowed: tuple) -> None:
    require(value in allowed, key, value, " | ".join(map(str, allowed)))
