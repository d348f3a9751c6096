"""Codecs by name (see :mod:`kvbench.codecs.registry` for the list)."""

from __future__ import annotations

from kvbench.codecs.base import Codec, CodecError
from kvbench.codecs.registry import CODECS, unavailable


def get_codec(name: str, **params) -> Codec:
    """The codec registered under ``name``; ``params`` override its defaults (e.g. ``level=``, ``group=``)."""
    if name not in CODECS:
        raise KeyError(f"unknown codec {name!r}: allowed {' | '.join(CODECS)}")
    return CODECS[name].build(**params)


__all__ = ["CODECS", "Codec", "CodecError", "get_codec", "unavailable"]
