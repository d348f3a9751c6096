"""codecs: a KV artifact to self-describing bytes and back, lossless or lossy, by name.

The list is :mod:`kvbench.config.catalog`; builders are in :mod:`kvbench.codecs.registry`.

Imports: kv, rows, config. Never a tier, a forward or an experiment.
"""

from __future__ import annotations

from kvbench.codecs.base import Codec, CodecError
from kvbench.codecs.registry import CODECS, unavailable


def get_codec(name: str, **params) -> Codec:
    """The codec registered under ``name``; ``params`` override its defaults (e.g. ``level=``, ``group=``)."""
    if name not in CODECS:
        raise KeyError(f"unknown codec {name!r}: allowed {' | '.join(CODECS)}")
    return CODECS[name].build(**params)


__all__ = ["CODECS", "Codec", "CodecError", "get_codec", "unavailable"]
