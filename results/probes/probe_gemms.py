"""The fast forward's GEMMs one by one, beside their weight reads, and what else might read faster (issue 21).

The H100 stage probe at 321768d (``probe_stages_h100_321768d.json``) has a 32-token reuse's GEMMs at
3.49 ms against 2.66 ms of weight reads (74% of the copy bandwidth), in four cuBLAS kernels a layer
that the profile does not name by weight. For each GEMM of a fused Qwen3-4B layer (``x (M, K) @ W (N, K)^T``,
bf16) at the row counts the experiments run (M = 32: one reader's question; 64 and 256: a decode
step's readers, an audit's chunks), this times, as CUDA-graph replays:

* ``cublas``: ``F.linear``, as the fast forward runs it;
* ``cublaslt``: the same on cuBLASLt (``torch.backends.cuda.preferred_blas_library``);
* ``splitk2``, ``splitk4``: K cut into S slices, one batched GEMM into S float32 partials
  (``torch.bmm(..., out_dtype=torch.float32)``) and their sum: S times the programs, and
  S x M x N x 4 bytes more to write and read;
* ``inductor`` (M = 32 only): ``torch.compile`` with ``max-autotune-no-cudagraphs``, which tries
  Triton templates beside cuBLAS.

Each beside the floor (weights, input and output bytes at the measured copy bandwidth), each
variant's largest difference from ``cublas``'s output recorded. The file is written after each
GEMM. Run from the repository root on a GPU node:

    python3 results/probes/probe_gemms.py   # writes $OUT/probe_gemms.json
"""

from __future__ import annotations

import functools
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _probe import ceilings, dev, dt, save, say

from kvbench.forward.kernel_timing import try_graph_ms

HIDDEN, Q, KV, INTER = 2560, 4096, 1024, 9728  # Qwen3-4B
GEMMS = {  # name: (N, K) of the fused layer's weights
    "qkv": (Q + 2 * KV, HIDDEN),
    "o": (HIDDEN, Q),
    "gate_up": (2 * INTER, HIDDEN),
    "down": (HIDDEN, INTER),
}
ROWS = (32, 64, 256)


def split_k(x: torch.Tensor, w: torch.Tensor, slices: int) -> torch.Tensor:
    """``x @ w.T`` with K in ``slices`` pieces: one batched GEMM into float32 partials ``(S, M, N)``, summed."""
    m, k = x.shape
    xs = x.view(m, slices, k // slices).transpose(0, 1)  # (S, M, K/S)
    ws = w.view(w.shape[0], slices, k // slices).permute(1, 2, 0)  # (S, K/S, N)
    return torch.bmm(xs, ws, out_dtype=torch.float32).sum(0).to(x.dtype)


def on_cublaslt(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    before = torch.backends.cuda.preferred_blas_library()
    torch.backends.cuda.preferred_blas_library("cublaslt")
    try:
        return F.linear(x, w)
    finally:
        torch.backends.cuda.preferred_blas_library(before)


def gemm(name: str, n: int, k: int, hbm_gbps: float) -> None:
    """One weight's GEMM at each of ``ROWS``: the variants' times, floors and differences from cuBLAS's."""
    torch.manual_seed(0)
    w = torch.randn(n, k, device=dev, dtype=dt) * k**-0.5
    for m in ROWS:
        x = torch.randn(m, k, device=dev, dtype=dt)
        key = f"{name}_M{m}"
        say(f"{key}_floor_ms", 2 * (n * k + m * k + m * n) / hbm_gbps / 1e6)
        ref = F.linear(x, w).float()
        variants = {
            "cublas": functools.partial(F.linear, x, w),
            "cublaslt": functools.partial(on_cublaslt, x, w),
            "splitk2": functools.partial(split_k, x, w, 2),
            "splitk4": functools.partial(split_k, x, w, 4),
        }
        if m == ROWS[0]:
            compiled = torch.compile(F.linear, mode="max-autotune-no-cudagraphs", dynamic=False)
            variants["inductor"] = functools.partial(compiled, x, w)
        for label, run in variants.items():
            say(f"{key}_{label}_ms", try_graph_ms("probe", label, run))
            try:
                say(f"{key}_{label}_max_abs_diff", float((run().float() - ref).abs().max()))
            except Exception as exc:  # a variant this torch lacks: its time is inf already
                say(f"{key}_{label}_error", f"{type(exc).__name__}: {exc}"[:200])
        save("probe_gemms.json")


def main() -> None:
    ceiling = ceilings()
    say("device", torch.cuda.get_device_name(dev))
    say("hbm_gbps", ceiling.hbm_gbps)
    for name, (n, k) in GEMMS.items():
        gemm(name, n, k, ceiling.hbm_gbps)
    save("probe_gemms.json")


if __name__ == "__main__":
    main()
