"""Codecs by name."""

from __future__ import annotations

from kvbench.codecs.base import Codec, CodecError


def get_codec(name: str) -> Codec:
    """The codec registered under ``name``."""
    if name == "identity":
        from kvbench.codecs.identity import IdentityCodec

        return IdentityCodec()
    raise KeyError(f"unknown codec {name!r}")


__all__ = ["Codec", "CodecError", "get_codec"]
