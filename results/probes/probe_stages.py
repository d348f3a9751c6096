"""Where the fast reader's and the decode step's time goes, per stage, on one GPU (issue 21).

Profiles CUDA-graph replays of the kvbench fast forward (Qwen3-4B shape, random weights,
bf16, 32-token question) with torch.profiler and sums the device time of each kernel class
per replay: GEMMs (cuBLAS/CUTLASS), the document pass (flash / flex / cuDNN), the rest (Inductor's
fused elementwise kernels, norms, copies). Each stage is set beside its own floor: weight
bytes / copy bandwidth for the GEMMs, the document's KV bytes / copy bandwidth for the
document pass. Variants: the model's own layers with flash (before issue 21) and the fused
layers with the experiments' settings (after: ``document_kernel=auto``, ``own_kernel=auto``),
which also time the captured audit of k = 4 chunks, and the fused layers on cuBLASLt
(``after_cublaslt``). Each stage lists its heaviest kernels; each decode step names the
own-cache kernel ``auto`` chose for it. Run from the repository root on a GPU node:

    python3 results/probes/probe_stages.py             # writes $OUT/probe_stages.json
    python3 results/probes/probe_stages.py after 64,256  # only these variants, decode at these batches
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _probe import ceilings, dev, document_kv, med, qwen3_4b_random, save, say

from kvbench.audit.recompute import ChunkCheck
from kvbench.forward import audit_chunks, document_pass, kernel_timing, own_pass, reuse_plan
from kvbench.forward.cuda_graph import Replayable
from kvbench.forward.fast import FastForward, GreedyDecoder
from kvbench.measure.floors import weight_bytes


def stage(name: str) -> str:
    n = name.lower()
    if any(s in n for s in ("flash", "flex", "fmha", "attention", "sdpa")):  # cudnn's are "..._sdpa_..."
        return "attention"
    if any(s in n for s in ("gemm", "cutlass", "xmma", "nvjet", "cublas", "gemv", "splitk")):
        return "gemm"
    return "rest"


def profile(call, replays: int = 10, top: int = 8) -> dict:
    """Device ms per replay of ``call`` by stage, the kernel count, and the ``top`` kernels of each
    stage by device time (name cut to 80 characters: ms per replay, launches per replay)."""
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(replays):
            call()
        torch.cuda.synchronize()
    totals: dict[str, float] = defaultdict(float)
    by_kernel: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    kernels = 0
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA and event.device_time_total > 0:
            ms = event.device_time_total / 1e3 / replays
            totals[stage(event.name)] += ms
            by_kernel[(stage(event.name), event.name[:80])][0] += ms
            by_kernel[(stage(event.name), event.name[:80])][1] += 1 / replays
            kernels += 1
    ranked = sorted(by_kernel.items(), key=lambda kv: -kv[1][0])
    heaviest = {
        name: dict([(kernel, [round(ms, 4), round(n, 1)]) for (s, kernel), (ms, n) in ranked if s == name][:top])
        for name in totals
    }
    return {**{k: round(v, 4) for k, v in totals.items()}, "kernels": kernels // replays, "top": heaviest}


def decode_step(fwd: FastForward, art, batch: int) -> tuple[GreedyDecoder, torch.Tensor]:
    """A captured decoder of ``batch`` readers over ``art`` (32 question tokens, room for 8 more), its
    caches held at 36 slots so that every timed step reads the same own keys, and the ``(batch, 1)``
    token that step feeds."""
    decoder = GreedyDecoder(fwd, art, batch, 32, 8, graph=True)
    decoder.tokens(torch.randint(0, 30000, (batch, 32), device=dev))
    decoder.cache.rewind(36)
    return decoder, torch.zeros(batch, 1, dtype=torch.long, device=dev)


def length(tag: str, fwd: FastForward, model, tokens: int, query, batches: list[int], hbm_gbps: float) -> None:
    """One document length of one variant: the reader, the decode step at each batch, the audit."""
    doc, art, ref = document_kv(model, tokens, query)
    reader = Replayable(lambda x: fwd(x, art), query, graph=True)
    say(f"{tag}_L{tokens}_reuse_ms", med(lambda: reader(query)))
    say(f"{tag}_L{tokens}_stages", profile(lambda: reader(query)))
    say(f"{tag}_L{tokens}_kv_floor_ms", art.nbytes / hbm_gbps / 1e6)
    say(f"{tag}_L{tokens}_max_abs_logit_diff_vs_hf", float((reader(query) - ref).abs().max()))
    say(f"{tag}_L{tokens}_doc_kernel", document_pass.chosen(4 * 32, tokens))
    say(f"{tag}_L{tokens}_reuse_attention", reuse_plan.plan_chosen(1, 32, tokens))
    for batch in batches:
        decoder, token = decode_step(fwd, art, batch)
        say(f"{tag}_L{tokens}_decode_B{batch}_step_ms", med(lambda d=decoder: d.step(token)))
        say(f"{tag}_L{tokens}_decode_B{batch}_stages", profile(lambda d=decoder: d.step(token)))
        say(f"{tag}_L{tokens}_decode_B{batch}_doc_kernel", document_pass.chosen(4 * batch, tokens))
        say(f"{tag}_L{tokens}_decode_B{batch}_own_kernel", decoder.cache.kernel)
        own_ms = [ms for key, ms in kernel_timing.timings(own_pass.TIMED) if key[0] == batch]
        say(f"{tag}_L{tokens}_decode_B{batch}_own_kernel_ms", own_ms)  # each candidate, as `auto` timed it
    if tag == "after":  # the audit: k = 4 chunks of 64 tokens in one captured check
        check = ChunkCheck(fwd, art, doc, 4, 64, graph=True)
        draw = [(s, s + 64) for s in (64 * 3, 64 * 20, 64 * 40, 64 * 57)]
        say(f"{tag}_L{tokens}_audit_k4_ms", med(lambda: check(draw)))
        say(f"{tag}_L{tokens}_audit_k4_stages", profile(lambda: check(draw)))
        say(f"{tag}_L{tokens}_audit_k4_chunk_plan", audit_chunks.chunk_plan_chosen(4, 4, 64, tokens))


def variant(tag: str, options: dict, blas, model, query, batches: list[int], hbm_gbps: float) -> None:
    """One build of the fast forward: the question alone, then each document length."""
    torch.backends.cuda.preferred_blas_library(blas)
    say(f"{tag}_blas", str(torch.backends.cuda.preferred_blas_library()))
    fwd = FastForward(model, compile=True, **options)
    say(f"{tag}_fused_weight_bytes", fwd.fused_weight_bytes)
    alone = Replayable(lambda x: fwd(x), query, graph=True)
    say(f"{tag}_query_only_ms", med(lambda: alone(query)))
    say(f"{tag}_query_only_stages", profile(lambda: alone(query)))
    for tokens in (3774, 32768):
        length(tag, fwd, model, tokens, query, batches, hbm_gbps)
        torch.cuda.empty_cache()  # each length's caches and graphs went with its frame


def main(only: list[str], batches: list[int]) -> None:
    cal = ceilings()
    say("hbm_gbps", cal.hbm_gbps)
    model = qwen3_4b_random()
    say("weight_floor_ms", weight_bytes(model) / cal.hbm_gbps / 1e6)
    query = torch.randint(0, 30000, (1, 32), device=dev)
    default_blas = torch.backends.cuda.preferred_blas_library()
    variants = {
        "before": (dict(fuse=False, document_kernel="flash"), default_blas),
        "after": (dict(fuse=True, document_kernel="auto", own_kernel="auto"), default_blas),
        # cuBLASLt's heuristics (split-K among them) for the M = 32 GEMMs, which cuBLAS runs at 69%
        # of the copy bandwidth: the next lever at 3774 tokens, where the GEMMs stand in the way
        "after_cublaslt": (dict(fuse=True, document_kernel="auto", own_kernel="auto"), "cublaslt"),
    }
    for tag, (options, blas) in variants.items():
        if not only or tag in only:
            variant(tag, options, blas, model, query, batches, cal.hbm_gbps)
            torch.cuda.empty_cache()
    save("probe_stages.json")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0].split(",") if args else [], [int(b) for b in args[1].split(",")] if len(args) > 1 else [64])
