"""Lossy KV codecs: fp8 e4m3 with per-tensor or per-head scales, and KIVI-style int8 / int4.

All quantise in torch on the artifact's device and dequantise on the reader's device, so
on a GPU only the compressed payload crosses the bus (``device = "cuda"``; they run on CPU
too). Each layer tensor ``(batch, kv_heads, tokens, head_dim)`` is coded on its own:

* ``fp8-tensor`` / ``fp8-head``: ``x / s`` cast to ``float8_e4m3fn``, ``s = amax / 448``
  per tensor or per (batch, head); scales kept in float32.
* ``int8-kivi`` / ``int4-kivi`` (Liu et al., KIVI, 2024): asymmetric min/max integer
  quantisation; keys per channel (each head_dim channel over groups of ``group`` tokens,
  because key outliers live in fixed channels), values per token (groups of ``group``
  channels). Scale and minimum are float16; int4 codes are packed two per byte. KIVI's
  full-precision window of recent tokens is not kept: every token is quantised.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch

from kvbench.codecs import container
from kvbench.codecs.base import CodecError
from kvbench.kv.artifact import KVArtifact

FP8_MAX = 448.0  # largest finite float8_e4m3fn


class _LossyCodec(container.DeviceCodec):
    """Per-tensor byte parts in one payload, coded on the artifact's / reader's device.

    Subclasses set ``name`` and ``parts_per_tensor`` and define ``_quantise`` and ``_dequantise``.
    """

    lossless = False
    device = "cuda"
    parts_per_tensor: int

    @abstractmethod
    def _quantise(self, x: torch.Tensor, is_key: bool) -> list[torch.Tensor]:
        """One layer tensor -> its ``parts_per_tensor`` uint8 parts."""

    @abstractmethod
    def _dequantise(self, parts: tuple[torch.Tensor, ...], shape: list[int], is_key: bool) -> torch.Tensor:
        """The inverse of :meth:`_quantise`: a float32 tensor of ``shape``."""

    def compress_device(self, artifact: KVArtifact) -> tuple[dict, torch.Tensor]:
        tensors = (*artifact.keys, *artifact.values)
        parts = [p.reshape(-1) for i, t in enumerate(tensors) for p in self._quantise(t, i < len(tensors) // 2)]
        return dict(parts=[int(p.numel()) for p in parts]), torch.cat(parts)

    def decompress_device(self, header: dict, payload: torch.Tensor, device) -> KVArtifact:
        sizes, shapes = header["params"]["parts"], header["shapes"]
        if len(sizes) != self.parts_per_tensor * len(shapes) or sum(sizes) != payload.numel():
            raise CodecError(f"{self.name} header parts do not match its payload of {payload.numel()} bytes")
        parts = payload.split(sizes)
        dtype, n, k = getattr(torch, header["dtype"]), len(shapes), self.parts_per_tensor
        tensors = [self._dequantise(parts[i * k : (i + 1) * k], shapes[i], i < n // 2).to(dtype) for i in range(n)]
        return KVArtifact(tensors[: n // 2], tensors[n // 2 :], dict(header["meta"]))


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().reshape(-1).view(torch.uint8)


def _view(part: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Reinterpret a uint8 slice of the payload; a slice not aligned to ``dtype`` is copied first."""
    size = torch.empty(0, dtype=dtype).element_size()
    return (part if part.storage_offset() % size == 0 else part.clone()).view(dtype)


class Fp8Codec(_LossyCodec):
    """float8 e4m3 with one float32 scale per tensor (``per="tensor"``) or per (batch, head)."""

    parts_per_tensor = 2

    def __init__(self, per: str = "tensor"):
        if per not in ("tensor", "head"):
            raise ValueError(f"fp8 scale granularity {per!r} is invalid: allowed tensor | head")
        self.per = per
        self.name = f"fp8-{per}"

    def _quantise(self, x, is_key):
        x = x.float()
        dims = (0, 1, 2, 3) if self.per == "tensor" else (2, 3)
        scale = (x.abs().amax(dim=dims, keepdim=True) / FP8_MAX).clamp_min(torch.finfo(torch.float32).tiny)
        return [_bytes((x / scale).to(torch.float8_e4m3fn)), _bytes(scale)]

    def _dequantise(self, parts, shape, is_key):
        q, scale = parts
        scale_shape = [1, 1, 1, 1] if self.per == "tensor" else [shape[0], shape[1], 1, 1]
        return q.view(torch.float8_e4m3fn).view(shape).float() * _view(scale, torch.float32).view(scale_shape)


class KiviCodec(_LossyCodec):
    """KIVI-style asymmetric integer quantisation: keys per channel, values per token.

    Parameters
    ----------
    bits : int
        8 or 4 (two codes per byte).
    group : int
        Tokens per key group and channels per value group (capped at head_dim for values).
    """

    parts_per_tensor = 3

    def __init__(self, bits: int = 8, group: int = 32):
        if bits not in (4, 8):
            raise ValueError(f"KIVI bits={bits} is invalid: allowed 4 | 8")
        if group < 1:
            raise ValueError(f"KIVI group={group} is invalid: allowed a positive integer")
        self.bits, self.group = bits, group
        self.name = f"int{bits}-kivi" if group == 32 else f"int{bits}-kivi-g{group}"

    def _grouped(self, x: torch.Tensor, is_key: bool) -> torch.Tensor:
        """``(b, h, t, d)`` -> groups on the last axis: keys ``(b, h, d, t/g, g)``, values ``(b, h, t, d/g, g)``.

        The token axis of keys is padded to a multiple of the group by repeating the last
        token, which leaves every group's min and max unchanged.
        """
        b, h, t, d = x.shape
        if is_key:
            pad = -t % self.group
            if pad:
                x = torch.cat([x, x[:, :, -1:].expand(b, h, pad, d)], dim=2)
            return x.transpose(2, 3).reshape(b, h, d, -1, self.group)
        g = self._value_group(d)
        return x.reshape(b, h, t, d // g, g)

    def _value_group(self, head_dim: int) -> int:
        g = min(self.group, head_dim)
        if head_dim % g:
            raise CodecError(f"{self.name}: head_dim {head_dim} is not a multiple of the value group {g}")
        return g

    def _quantise(self, x, is_key):
        groups = self._grouped(x.float(), is_key)
        levels = (1 << self.bits) - 1
        lo = groups.amin(dim=-1, keepdim=True).half()
        scale = ((groups.amax(dim=-1, keepdim=True) - lo.float()) / levels).half()
        # quantise against the float16-rounded scale and minimum the decoder will use
        safe = scale.float().clamp_min(torch.finfo(torch.float16).tiny)
        q = torch.round((groups - lo.float()) / safe).clamp_(0, levels).to(torch.uint8).reshape(-1)
        if self.bits == 4:
            q = torch.nn.functional.pad(q, (0, q.numel() % 2))
            q = q[0::2] | (q[1::2] << 4)
        return [q, _bytes(scale), _bytes(lo)]

    def _dequantise(self, parts, shape, is_key):
        q, scale, lo = parts
        b, h, t, d = shape
        if is_key:
            grouped = (b, h, d, (t + self.group - 1) // self.group, self.group)
        else:
            g = self._value_group(d)
            grouped = (b, h, t, d // g, g)
        count = int(np.prod(grouped))
        if self.bits == 4:
            q = torch.stack([q & 0x0F, q >> 4], dim=1).reshape(-1)[:count]
        stats = (*grouped[:-1], 1)
        x = (
            q.view(grouped).float() * _view(scale, torch.float16).view(stats).float()
            + _view(lo, torch.float16).view(stats).float()
        )
        if is_key:
            return x.reshape(b, h, d, -1)[..., :t].transpose(2, 3).contiguous()
        return x.reshape(b, h, t, d)
