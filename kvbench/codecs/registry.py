"""Every codec by name: what it is, which KV dtypes it takes, and how to build it.

Kept free of heavy imports so :mod:`kvbench.config` can validate codec names and dtypes
while composing, before any model or codec library loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

ALL = ("float32", "bfloat16", "float16")
HALF = ("bfloat16", "float16")


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


CODECS: dict[str, CodecSpec] = {
    "identity": CodecSpec(_identity, True, "cpu", ALL, "the artifact's safetensors blob"),
    **{f"zstd-{lv}": CodecSpec(_bytecodec("ZstdCodec", level=lv), True, "cpu", ALL, f"zstd level {lv}")
       for lv in (1, 3, 9, 19)},
    "lz4": CodecSpec(_bytecodec("Lz4Codec"), True, "cpu", ALL, "LZ4 frame"),
    "deflate": CodecSpec(_bytecodec("DeflateCodec"), True, "cpu", ALL, "zlib deflate, level 6"),
    "planes-zstd": CodecSpec(_bytecodec("BytePlaneCodec"), True, "cpu", ALL, "byte planes, zstd-3 each"),
    "exponent-ans": CodecSpec(_exponent, True, "cpu", HALF, "rANS exponent, raw sign+mantissa"),
    **{name: CodecSpec(_nvcomp(name), True, "cuda", ALL, f"nvCOMP {name.removeprefix('nvcomp-')} on the GPU")
       for name in ("nvcomp-ans", "nvcomp-zstd", "nvcomp-gdeflate", "nvcomp-bitcomp", "nvcomp-cascaded",
                    "nvcomp-ans-planes", "nvcomp-zstd-planes")},
    "fp8-tensor": CodecSpec(_lossy("Fp8Codec", per="tensor"), False, "cuda", ALL, "fp8 e4m3, scale per tensor"),
    "fp8-head": CodecSpec(_lossy("Fp8Codec", per="head"), False, "cuda", ALL, "fp8 e4m3, scale per head"),
    "int8-kivi": CodecSpec(_lossy("KiviCodec", bits=8), False, "cuda", ALL, "int8 KIVI, groups of 32"),
    "int4-kivi": CodecSpec(_lossy("KiviCodec", bits=4), False, "cuda", ALL, "int4 KIVI, groups of 32"),
}


def unavailable(name: str) -> str | None:
    """Why codec ``name`` cannot run on this machine (None when it can)."""
    if name.startswith("nvcomp-"):
        from kvbench.codecs.nvcomp import unavailable as nvcomp_unavailable

        return nvcomp_unavailable()
    return None
