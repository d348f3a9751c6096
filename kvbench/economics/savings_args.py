"""The savings calculator's question, as ``key=value`` words (the house's Hydra style), checked in one line each."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Optional

from kvbench.config.errors import ConfigError
from kvbench.config.names import TIERS


@dataclass
class Ask:
    """One question to :mod:`kvbench.economics.savings`. None: the choice of ``+exp=economics``."""

    tokens: int = 0  # document length (required)
    reads: float = 0.0  # how many times it is read (required; 80e6 is fine)
    tier: str = "gpu"  # where the KV is kept between reads: gpu | host | disk | redis | wan
    model: Optional[str] = None  # as rows name it or a prefix of it (qwen3_4b); None: economics.model
    dtype: Optional[str] = None  # None: economics.dtype
    device: Optional[str] = None  # None: economics.device
    codec: str = "identity"  # how the tier stores the KV
    variant: Optional[str] = None  # disk: cold | warm; wan: a link profile (needed where several were measured)
    gpu_price: Optional[str] = None  # key of cost.gpu_hour; None: economics.gpu_price
    egress_price: Optional[str] = None  # key of cost.egress; None: economics.egress_price
    sheet: str = "public_2026_11"  # conf/cost/NAME.yaml
    results: str = "results"  # results tree (its REFERENCE folders) or a run folder
    include_local: bool = False  # read every run under results, not only the reference
    _required: tuple[str, ...] = field(default=("tokens", "reads"), repr=False)


KEYS = [f.name for f in dataclasses.fields(Ask) if not f.name.startswith("_")]
USAGE = (
    "usage: python -m kvbench.economics.savings tokens=N reads=R [tier=gpu|host|disk|redis|wan] [model=NAME] "
    "[codec=NAME] [variant=NAME] [gpu_price=KEY] [egress_price=KEY] [dtype=...] [device=...] [sheet=NAME] "
    "[results=DIR] [include_local=true]"
)


def _value(key: str, text: str, kind) -> object:
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        value = kind(float(text)) if kind is int else kind(text)
    except ValueError:
        raise ConfigError(f"{key}={text!r} is invalid: allowed {kind.__name__} values") from None
    if kind in (int, float) and not value > 0:
        raise ConfigError(f"{key}={text!r} is invalid: allowed a number > 0")
    return value


def parse(argv: list[str]) -> Ask:
    """``key=value`` words to an :class:`Ask`; ``--help`` prints the usage and exits."""
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        sys.exit(0)
    kinds = {"tokens": int, "reads": float, "include_local": bool}
    given: dict[str, object] = {}
    for word in argv:
        key, sep, text = word.partition("=")
        if not sep or key not in KEYS:
            raise ConfigError(f"{key or word!r} is not a key: allowed {' | '.join(KEYS)} ({USAGE})")
        given[key] = _value(key, text, kinds.get(key, str))
    missing = [k for k in Ask()._required if k not in given]
    if missing:
        raise ConfigError(f"{missing[0]} is missing: {USAGE}")
    ask = Ask(**given)  # type: ignore[arg-type]
    if ask.tier not in TIERS:
        raise ConfigError(f"tier={ask.tier!r} is invalid: allowed {' | '.join(TIERS)}")
    if ask.tokens != int(ask.tokens) or isinstance(given.get("tokens"), float):
        raise ConfigError(f"tokens={ask.tokens!r} is invalid: allowed a whole number of tokens")
    return ask
