"""kvbench's own Triton kernels compiled for Hopper (sm_90) on the CPU, ahead of any GPU run.

Triton's interpreter (tests/test_attention.py) runs a kernel's arithmetic in numpy; it does not
compile it, so what only the compiler rejects (a non-constexpr global read inside a kernel, a
block shape that needs more shared memory than an SM has) would first show on a lent GPU. Triton
compiles to a cubin without a device (its wheel brings ptxas), so each kernel is compiled here at
the launch settings the code and its probe use: it must build, fit the H100's and H200's shared
memory, and, where a row tile has 64 rows or more, run its products on Hopper's wgmma.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

HOPPER = GPUTarget("cuda", 90, 32)
SHARED_BYTES = 227 * 1024  # the most shared memory one block may take on sm_90


def _compile(kernel, pointers: dict[str, str], constants: dict[str, int], warps: int, stages: int):
    """``kernel`` compiled for sm_90: pointer arguments typed by ``pointers``, ``constants`` as its
    constexprs, ``scale_log2`` float32 and every other argument int32. As Triton's launcher
    specializes them at the hot launches (bf16 rows of 128 values), the pointers and the strides
    (``x_h``, ``x_l``, ...) are known to be multiples of 16. Without that, the loops never pipeline
    their loads (no asynchronous copies at any ``stages``), so the compile would not be the program
    the GPU runs. ``part`` is left unknown: one part of 3774 keys is not a multiple of 16, and the
    loops pipeline without it."""
    signature, attrs = {}, {}
    for at, name in enumerate(kernel.arg_names):
        if name in constants:
            signature[name] = "constexpr"
        elif name in pointers:
            signature[name] = pointers[name]
        else:
            signature[name] = "fp32" if name == "scale_log2" else "i32"
        if name in pointers or re.fullmatch(r"[a-z]+_[bhlmst]", name):
            attrs[(at,)] = [["tt.divisibility", 16]]
    source = ASTSource(fn=kernel, signature=signature, constexprs=constants, attrs=attrs)
    return triton.compile(source, target=HOPPER, options={"num_warps": warps, "num_stages": stages})


BF16_IN = {"q_ptr": "*bf16", "k_ptr": "*bf16", "v_ptr": "*bf16", "lse_ptr": "*fp32"}


def _cuobjdump(compiled, flag: str) -> str:
    """What the wheel's cuobjdump says of the kernel's cubin under ``flag``."""
    cuobjdump = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        return subprocess.run([cuobjdump, flag, cubin.name], capture_output=True, text=True, check=True).stdout


def _spills(compiled) -> int:
    """Bytes of registers the cubin spills to each thread's stack."""
    return int(re.search(r"STACK:(\d+)", _cuobjdump(compiled, "--dump-resource-usage")).group(1))


def _spills_in_loops(compiled) -> int:
    """Spill stores and loads (``STL``, ``LDL``) inside a loop of the machine code: between a backward
    branch and its target. A value spilled before the loops and read back after them costs a few
    bytes a program; one spilled inside costs a trip to local memory per block of keys."""
    code = [
        (int(address, 16), instruction)
        for address, instruction in re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", _cuobjdump(compiled, "-sass"))
    ]
    loops = [
        (int(target.group(1), 16), address)
        for address, instruction in code
        if (target := re.search(r"\bBRA (?:`\()?0x([0-9a-f]+)", instruction)) and int(target.group(1), 16) < address
    ]
    spills = [address for address, instruction in code if re.search(r"\b(STL|LDL)\b", instruction)]
    return sum(first <= address <= last for address in spills for first, last in loops)


# a reader's document pass, an audit's, a reuse's whole attention, an audit's, a decoding reader's
@pytest.mark.parametrize(
    ("limited", "own", "slots"),
    [(False, False, False), (True, False, False), (False, True, False), (True, True, False), (False, True, True)],
)
@pytest.mark.parametrize("out", ["*fp32", "*bf16"])  # parts, or the final out where there is one part
@pytest.mark.parametrize("rows", [4, 32, 64, 128, 1024])  # tiles of 16, 32, 64 and 128 rows
def test_the_split_kv_kernel_compiles_for_hopper_without_spilling(rows, out, limited, own, slots):
    """At the launch settings split_pass picks: it builds, fits shared memory, spills no register
    inside a loop (four warps spill at 128-row tiles, inside the loops too; 16-row tiles with a key
    limit keep up to 16 bytes, stored before the loops and read after), and runs its products on
    wgmma from 64 rows a tile."""
    from kvbench.forward.split_kernel import BLOCK_N, MASKED_BLOCK_N, STAGES, WARPS, _split_attention_kernel, block_rows

    block_m = block_rows(rows)
    pointers = dict(BF16_IN, out_ptr=out, limit_ptr="*i32" if limited else "*bf16", ko_ptr="*bf16", vo_ptr="*bf16")
    pointers["slot_ptr"] = "*i64" if slots else "*bf16"  # unused pointers get q
    constants = {
        "LIMITED": limited,
        "OWN": own,
        "SLOTS": slots,
        "BLOCK_M": block_m,
        "BLOCK_N": BLOCK_N,
        "MASKED_N": MASKED_BLOCK_N,
    }
    constants["D"] = 128
    compiled = _compile(_split_attention_kernel, pointers, constants, WARPS, STAGES)
    assert compiled.metadata.shared <= SHARED_BYTES and _spills_in_loops(compiled) == 0
    assert ("wgmma" in compiled.asm["ptx"]) == (block_m >= 64)


@pytest.mark.parametrize(("block_n", "stages"), [(32, 3), (128, 3), (64, 2), (64, 4)])
def test_the_probes_other_settings_compile_for_hopper(block_n, stages):
    """probe_split_kernel.py's other launch settings build and fit (some may spill: the probe times them)."""
    from kvbench.forward.split_kernel import WARPS, _split_attention_kernel

    pointers = dict(BF16_IN, out_ptr="*fp32", limit_ptr="*bf16", ko_ptr="*bf16", vo_ptr="*bf16", slot_ptr="*bf16")
    constants = {"LIMITED": False, "OWN": False, "SLOTS": False, "BLOCK_M": 128, "BLOCK_N": block_n, "MASKED_N": 32}
    constants["D"] = 128
    assert _compile(_split_attention_kernel, pointers, constants, WARPS, stages).metadata.shared <= SHARED_BYTES


# a reuse's 14 document parts and its own (3774 tokens, 8 KV heads, one wave on 132 SMs), two parts, and 67 (2 KV heads)
@pytest.mark.parametrize("parts", [15, 2, 67])
def test_the_split_kv_merge_compiles_for_hopper_without_spilling(parts):
    from kvbench.forward.split_kernel import _split_attention_merge_kernel, merge_launch

    pointers = {"part_out_ptr": "*fp32", "part_lse_ptr": "*fp32", "out_ptr": "*bf16", "lse_ptr": "*fp32"}
    launch = merge_launch(parts, 128)
    warps = launch.pop("num_warps")
    compiled = _compile(_split_attention_merge_kernel, pointers, dict(launch, D=128), warps, 3)
    assert compiled.metadata.shared <= SHARED_BYTES and _spills(compiled) == 0


def test_the_step_kernel_compiles_for_hopper():
    """The Qwen3-4B decode step's shape: 32 query heads over 8 KV heads, 48 slots."""
    from kvbench.forward.step_kernel import _step_kernel

    pointers = dict(BF16_IN, out_ptr="*bf16", last_ptr="*i64")
    constants = {"HEADS": 32, "G": 4, "G_PAD": 16, "SLOTS": 48, "BLOCK": 64, "D": 128}
    compiled = _compile(_step_kernel, pointers, constants, 4, 3)
    assert compiled.metadata.shared <= SHARED_BYTES and _spills(compiled) == 0
