"""kvbench's own Triton kernels compiled for Hopper (sm_90) on the CPU, ahead of any GPU run.

Triton's interpreter (tests/test_attention.py) runs a kernel's arithmetic in numpy; it does not
compile it, so what only the compiler rejects (a non-constexpr global read inside a kernel, a
block shape that needs more shared memory than an SM has) would first show on a lent GPU. Triton
compiles to a cubin without a device (its wheel brings ptxas), so each kernel is compiled here at
the launch settings the code and its probe use: it must build, fit the H100's and H200's shared
memory, and, where a row tile has 64 rows or more, run its products on Hopper's wgmma.
"""

from __future__ import annotations

import pytest

triton = pytest.importorskip("triton")

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)
SHARED_BYTES = 227 * 1024  # the most shared memory one block may take on sm_90


def _compile(kernel, pointers: dict[str, str], constants: dict[str, int], warps: int, stages: int):
    """``kernel`` compiled for sm_90: pointer arguments typed by ``pointers``, ``constants`` as its
    constexprs, ``scale_log2`` float32 and every other argument int32."""
    signature = {}
    for name in kernel.arg_names:
        if name in constants:
            signature[name] = "constexpr"
        elif name in pointers:
            signature[name] = pointers[name]
        else:
            signature[name] = "fp32" if name == "scale_log2" else "i32"
    source = ASTSource(fn=kernel, signature=signature, constexprs=constants)
    return triton.compile(source, target=HOPPER, options={"num_warps": warps, "num_stages": stages})


BF16_IN = {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "lse_ptr": "*fp32"}


@pytest.mark.parametrize(
    ("block_m", "block_n", "warps", "stages", "out", "limited"),
    [
        (128, 64, 8, 3, "*fp32", False),  # the defaults at 128 rows and more, writing parts
        (128, 64, 8, 3, "*bf16", False),  # one part: the final out
        (64, 64, 4, 3, "*fp32", False),
        (16, 64, 4, 3, "*fp32", False),  # a one-token reader's 4 rows, padded to tl.dot's 16
        (128, 128, 8, 3, "*fp32", False),  # probe_split_kernel.py's other settings
        (128, 128, 8, 2, "*fp32", False),
        (128, 64, 8, 4, "*fp32", False),
        (128, 64, 8, 3, "*fp32", True),  # an audit's chunks, each over its own prefix
        (128, 64, 8, 3, "*bf16", True),
    ],
)
def test_the_split_kv_kernel_compiles_for_hopper(block_m, block_n, warps, stages, out, limited):
    from kvbench.forward.split_kernel import _split_attention_kernel

    pointers = dict(BF16_IN, out_ptr=out, limit_ptr="*i32" if limited else "*bf16")  # unlimited: q, never read
    constants = {"LIMITED": limited, "BLOCK_M": block_m, "BLOCK_N": block_n, "D": 128}
    compiled = _compile(_split_attention_kernel, pointers, constants, warps, stages)
    assert compiled.metadata.shared <= SHARED_BYTES
    assert ("wgmma" in compiled.asm["ptx"]) == (block_m >= 64)


def test_the_split_kv_merge_compiles_for_hopper():
    from kvbench.forward.split_kernel import _split_attention_merge_kernel

    pointers = {"part_out_ptr": "*fp32", "part_lse_ptr": "*fp32", "out_ptr": "*bf16", "lse_ptr": "*fp32"}
    compiled = _compile(_split_attention_merge_kernel, pointers, {"BLOCK_R": 16, "D": 128}, 4, 3)
    assert compiled.metadata.shared <= SHARED_BYTES


def test_the_step_kernel_compiles_for_hopper():
    """The Qwen3-4B decode step's shape: 32 query heads over 8 KV heads, 48 slots."""
    from kvbench.forward.step_kernel import _step_kernel

    pointers = dict(BF16_IN, out_ptr="*bf16", last_ptr="*i64")
    constants = {"HEADS": 32, "G": 4, "G_PAD": 16, "SLOTS": 48, "BLOCK": 64, "D": 128}
    compiled = _compile(_step_kernel, pointers, constants, 4, 3)
    assert compiled.metadata.shared <= SHARED_BYTES
