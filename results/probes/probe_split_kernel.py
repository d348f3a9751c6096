"""The split-KV Triton document kernel against the library kernels, and its launch settings (issue 21).

For each shape of the document pass the experiments run (Qwen3-4B's 8 KV heads, d = 128, bf16;
``rows`` folded queries per KV head: 4 query heads x readers x question tokens), times one
layer's pass replayed as a CUDA graph, as ``auto`` does (:func:`kvbench.forward.kernel_timing.graph_ms`):
flash, cuDNN over parts, and the Triton kernel at its defaults, at other launch settings
(keys per block, warps, pipeline stages) and at half and twice :func:`split_plan`'s part.
Each is set beside the KV read at the measured copy bandwidth, and each Triton variant's largest
difference from flash's out is recorded. Then a layer's whole reuse attention (document, own keys,
merge) and a decode step's (64 and 256 readers) as two passes and as one Triton launch, as
``reuse_plan`` and ``cached_plan`` time them, and an audit's k = 4 chunks at 3774 and 32768
tokens as ``chunk_plan`` times them; a reuse's and an audit's one launch at the key blocks and,
for the audit, the parts it might take; the other launch settings last. The file is written after each of these
steps, so a call stopped at its limit keeps what finished. Run from the repository root on a GPU node:

    python3 results/probes/probe_split_kernel.py   # writes $OUT/probe_split_kernel.json
"""

from __future__ import annotations

import functools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _probe import ceilings, dev, dt, save, say

from kvbench.forward import audit_chunks, document_pass, reuse_plan
from kvbench.forward.compiled import RECOMPILE_LIMIT
from kvbench.forward.kernel_timing import try_graph_ms
from kvbench.forward.own_pass import cache_layer
from kvbench.forward.split_kernel import BLOCK_N, STAGES, WARPS, block_rows, split_pass, split_plan

HKV, D = 8, 128
# (rows per KV head, document tokens): 4 query heads a KV head x one reader's 32-token question (128);
# 2 or 8 such readers, or 64 or 256 one-token readers (256, 1024); one one-token reader (4)
SHAPES = [(128, 3774), (128, 32768), (256, 3774), (256, 16384), (1024, 3774), (1024, 32768), (4, 32768)]
SETTINGS = [  # (keys per block, warps, stages): split_pass's defaults first
    (BLOCK_N, WARPS, STAGES),
    (32, 8, 3),
    (128, 8, 3),
    (64, 8, 2),
    (64, 8, 4),
    (64, 4, 3),  # spills at 128-row tiles (tests/test_triton_compile.py): what four warps cost
]


def shape(rows: int, tokens: int, hbm_gbps: float, sms: int, settings: list[tuple[int, int, int]]) -> None:
    """One document-pass shape: the library kernels (with the defaults) and the Triton kernel at ``settings``."""
    torch.manual_seed(0)
    q = torch.randn(1, HKV, rows, D, device=dev, dtype=dt)
    k, v = (torch.randn(1, HKV, tokens, D, device=dev, dtype=dt) for _ in range(2))
    scale = D**-0.5
    key = f"r{rows}_L{tokens}"
    ref = document_pass._flash(q, k, v, scale)[0].float()
    if SETTINGS[0] in settings:
        say(f"{key}_kv_floor_ms", 2 * k.numel() * k.element_size() / hbm_gbps / 1e6)
        for name in ("flash", "cudnn"):
            library = functools.partial(document_pass._RUN[name], q, k, v, scale)
            say(f"{key}_{name}_ms", try_graph_ms("probe", name, library))
        say(f"{key}_block_rows", block_rows(rows))
    for block_n, warps, stages in settings:
        part = split_plan(rows, HKV, tokens, sms, block_n)
        for label, p in (("", part), ("_half", max(block_n, part // 2)), ("_twice", min(tokens, 2 * part))):
            if label and (block_n, warps, stages) != SETTINGS[0]:
                continue  # the part's length is tried at the default settings only
            run = functools.partial(split_pass, q, k, v, scale, p, block_n, warps, stages)
            tag = f"{key}_triton_n{block_n}_w{warps}_s{stages}{label}"
            say(f"{tag}_parts", -(-tokens // p))
            say(f"{tag}_ms", try_graph_ms("probe", tag, run))
            say(f"{tag}_max_abs_diff_vs_flash", float((run()[0].float() - ref).abs().max()))


def reuse_attention(readers: int, tokens: int, length: int) -> None:
    """A layer's whole reuse attention as reuse_plan times it: ``auto``'s document pass, the own-key
    pass and their merge (``passes``) against one Triton launch for both (``fused``)."""
    reuse_plan.reuse_plan(readers, tokens, 4, torch.randn(1, HKV, length, D, device=dev, dtype=dt))
    say(f"reuse_B{readers}_T{tokens}_L{length}", reuse_plan.plan_chosen(readers, tokens, length))


def decode_attention(readers: int, length: int, slots: int = 48) -> None:
    """A decode step's whole attention as cached_plan times it, on the own-cache kernel the step's
    rows chose (the Triton step kernel from 64 readers): passes against one launch with the caches."""
    k = torch.randn(1, HKV, length, D, device=dev, dtype=dt)
    cache = cache_layer(k, readers, slots, token_major=False)
    reuse_plan.cached_plan(readers, 1, 4, cache, "triton", k)
    say(f"decode_B{readers}_L{length}", reuse_plan.plan_chosen(readers, 1, length, slots=slots))


def audit_shape(tokens: int) -> None:
    """An audit's k = 4 chunks of 64 tokens: chunk_plan times a layer's chunk attention on the whole and
    split variable-length passes and on the Triton launch, compiled and replayed as the check runs them."""
    k = torch.randn(1, HKV, tokens, D, device=dev, dtype=dt)
    audit_chunks.chunk_plan(4, 4, 64, k)
    plan, splits, timed = audit_chunks.chunk_plan_chosen(4, 4, 64, tokens)
    say(f"audit_k4_L{tokens}_plan", list(plan))
    say(f"audit_k4_L{tokens}_split_plan", splits)
    say(f"audit_k4_L{tokens}_ms", timed)


def fused_launch(rows: int, tokens: int, readers: int, own_tokens: int, limited: bool, sms: int) -> None:
    """One layer's whole attention as one Triton launch, ``readers`` readers' (or chunks')
    ``own_tokens`` new tokens over the document and their own keys: the keys every row of a tile
    sees in blocks of 64 (the default since 5d4481e) against 32 (before, where any row of the
    launch carried a mask), and, with a key limit per reader (an audit's ``readers`` chunks, spread
    evenly as :func:`audit_chunks.chunk_plan` places them), at :func:`split_plan`'s part, half (its
    part with ``limited``, the default since bf68e25: a program past its tile's furthest limit
    reads nothing, so about half of them work) and a quarter of it."""
    torch.manual_seed(0)
    q = torch.randn(1, HKV, rows, D, device=dev, dtype=dt)
    k, v = (torch.randn(1, HKV, tokens, D, device=dev, dtype=dt) for _ in range(2))
    own = (*(torch.randn(readers, HKV, own_tokens, D, device=dev, dtype=dt) for _ in range(2)), own_tokens)
    limits = None
    if limited:
        spacing = tokens // (readers + 1)
        limits = torch.tensor([(i + 1) * spacing for i in range(readers)], dtype=torch.int32, device=dev)
    masks = {"limits": limits, "group_rows": rows // readers, "own": own}
    part = split_plan(rows, HKV, tokens, sms)
    ref = split_pass(q, k, v, D**-0.5, tokens, **masks)[0].float()  # one part
    key = f"fused_r{rows}_L{tokens}_{'audit' if limited else 'reuse'}"
    fractions = (1, 2, 4) if limited else (1,)
    for block_n, fraction in [(BLOCK_N, f) for f in fractions] + [(32, 1)]:
        p = max(block_n, part // fraction // block_n * block_n)
        tag = f"{key}_n{block_n}_parts{-(-tokens // p)}"
        run = functools.partial(split_pass, q, k, v, D**-0.5, p, block_n, **masks)
        say(f"{tag}_ms", try_graph_ms("probe", tag, run))
        say(f"{tag}_max_abs_diff_vs_one_part", float((run()[0].float() - ref).abs().max()))


def main() -> None:
    # as a compiled forward sets it (kvbench.forward.compiled): the plans compile one attention per shape
    torch._dynamo.config.recompile_limit = RECOMPILE_LIMIT
    hbm_gbps = ceilings().hbm_gbps
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    say("device", torch.cuda.get_device_name(dev))
    say("hbm_gbps", hbm_gbps)
    # what the rows' choices turn on first, the other launch settings last; saved after each, so a
    # call that ends at its limit keeps what finished
    for rows, tokens in SHAPES:
        shape(rows, tokens, hbm_gbps, sms, SETTINGS[:1])
    save("probe_split_kernel.json")
    for readers, tokens, length in ((1, 32, 3774), (1, 32, 32768), (64, 32, 3774), (64, 1, 3774)):
        reuse_attention(readers, tokens, length)
    save("probe_split_kernel.json")
    for readers, length in ((64, 3774), (256, 3774), (64, 32768)):
        decode_attention(readers, length)
    for tokens in (3774, 32768):
        audit_shape(tokens)
    save("probe_split_kernel.json")
    for tokens in (3774, 32768):  # a reuse's question (one reader of 32 tokens); an audit's k = 4 chunks of 64
        fused_launch(128, tokens, 1, 32, False, sms)
        fused_launch(1024, tokens, 4, 64, True, sms)
    save("probe_split_kernel.json")
    for rows, tokens in SHAPES:
        shape(rows, tokens, hbm_gbps, sms, SETTINGS[1:])
        save("probe_split_kernel.json")


if __name__ == "__main__":
    main()
