"""The device checksum: a position-weighted byte sum a GPU computes over bytes already on it.

Host-side checks are XXH3 digests per chunk (:mod:`kvbench.kv.chunks`); the device sum exists
for codec payloads already on a GPU, where no XXH3 runs: the GPU computes it at memory speed
and no byte has to come back to the host. Like XXH3 it catches accidents, not tampering.
"""

from __future__ import annotations

import torch

_MOD = 65521  # position weights are taken modulo this prime
_CHUNK = 1 << 26  # bytes per device-sum step (bounds the int64 temporaries)


def device_checksum(parts: list[torch.Tensor]) -> tuple[int, int]:
    """``(sum of bytes, sum of byte x (position mod 65521))`` over uint8 tensors read back to back.

    Integer sums are exact and order-free, so CPU and GPU agree bit for bit. Per-chunk int64
    sums cannot overflow (2^26 x 255 x 65520 < 2^63); totals are Python ints, stored modulo
    2^64. Any single corrupted byte changes the first sum; truncation changes the length.
    """
    s1 = s2 = 0
    offset = 0
    for part in parts:
        flat = part.reshape(-1)
        for i in range(0, flat.numel(), _CHUNK):
            chunk = flat[i : i + _CHUNK].to(torch.int64)
            weights = torch.arange(offset + i, offset + i + chunk.numel(), device=chunk.device) % _MOD
            s1 += int(chunk.sum())
            s2 += int((chunk * weights).sum())
        offset += flat.numel()
    return s1 % (1 << 64), s2 % (1 << 64)
