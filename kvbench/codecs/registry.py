"""Every codec by name: what it is (:mod:`kvbench.config.catalog`, which the config validates
against) and how to build it. Builders import their codec library only when called."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from kvbench.config import catalog


@dataclass(frozen=True)
class CodecSpec:
    """A registered codec: ``build(**params)`` makes it; ``dtypes`` it accepts; ``device`` it decodes on."""

    build: Callable
    lossless: bool
    device: str
    dtypes: tuple[str, ...]
    about: str


def _bytecodec(cls_name: str, **fixed):
    def build(**params):
        from kvbench.codecs import bytecodecs

        return getattr(bytecodecs, cls_name)(**{**fixed, **params})

    return build


def _identity(**params):
    from kvbench.codecs.identity import IdentityCodec

    return IdentityCodec(**params)


def _exponent(**params):
    from kvbench.codecs.exponent import ExponentAnsCodec

    return ExponentAnsCodec(**params)


def _predictive(op: str):
    def build(**params):
        from kvbench.codecs.predictive import PredictivePlaneCodec

        return PredictivePlaneCodec(op=op, **params)

    return build


def _lossy(cls_name: str, **fixed):
    def build(**params):
        from kvbench.codecs import lossy

        return getattr(lossy, cls_name)(**{**fixed, **params})

    return build


def _nvcomp(name: str):
    def build(**params):
        from kvbench.codecs.nvcomp import NvcompCodec

        return NvcompCodec(name, **params)

    return build


_BUILDERS: dict[str, Callable] = {
    "identity": _identity,
    **{f"zstd-{lv}": _bytecodec("ZstdCodec", level=lv) for lv in (1, 3, 9, 19)},
    "lz4": _bytecodec("Lz4Codec"),
    "deflate": _bytecodec("DeflateCodec"),
    "planes-zstd": _bytecodec("BytePlaneCodec"),
    "exponent-ans": _exponent,
    "delta-planes-zstd": _predictive("delta"),
    "xor-planes-zstd": _predictive("xor"),
    **{name: _nvcomp(name) for name in catalog.NVCOMP},
    "fp8-tensor": _lossy("Fp8Codec", per="tensor"),
    "fp8-head": _lossy("Fp8Codec", per="head"),
    "int8-kivi": _lossy("KiviCodec", bits=8),
    "int4-kivi": _lossy("KiviCodec", bits=4),
}

CODECS: dict[str, CodecSpec] = {
    name: CodecSpec(_BUILDERS[name], **dataclasses.asdict(info)) for name, info in catalog.CODECS.items()
}


def unavailable(name: str) -> str | None:
    """Why codec ``name`` cannot run on this machine (None when it can)."""
    if name.startswith("nvcomp-"):
        from kvbench.codecs.nvcomp import unavailable as nvcomp_unavailable

        return nvcomp_unavailable()
    return None
