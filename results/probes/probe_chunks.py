"""The audit's chunked pass whole against in parts, and the decode step's own-cache kernels, on one GPU (issue 21).

Qwen3-4B shape, random weights (timing only), bf16. Times, as CUDA-graph replays (medians of
CUDA events after warmup):

* the captured audit (``ChunkCheck``) of k = 1, 4 and 16 chunks of 64 tokens over a 4096-token
  document, with the document pass as ``chunk_plan`` chooses it and forced whole, the errors of
  both on the same draws, and the fast prefill of the document and a 32-token question it is set
  against (the audit's cost fraction);
* the decode step of 64 readers of a 3774-token document with the own-cache pass ``masked`` and
  ``flash``, and the reuse of one reader there;
* each with its kernels by class (``probe_stages.profile``).

Run from the repository root on a GPU node: ``python3 results/probes/probe_chunks.py`` (writes
``$OUT/probe_chunks.json``); ``--ks 4 --audit-only`` or ``--ks`` (the decode step alone) for a short call's worth.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _probe import ceilings, dev, document_kv, med, qwen3_4b_random, save, say  # noqa: E402
from probe_stages import profile  # noqa: E402

from kvbench.audit.recompute import ChunkCheck  # noqa: E402
from kvbench.forward import audit_chunks, fast  # noqa: E402
from kvbench.forward.cuda_graph import Replayable  # noqa: E402
from kvbench.forward.fast import FastForward, GreedyDecoder  # noqa: E402


def audits(model, fwd: FastForward, ks: list[int]) -> None:
    query = torch.randint(0, 30000, (1, 32), device=dev)
    doc, art, _ = document_kv(model, 4096, query)
    full = torch.cat([doc, query], dim=1)
    prefill = Replayable(lambda x: fwd(x), full, graph=True)
    say("prefill_fast_ms", med(lambda: prefill(full)))
    chosen = fast.chunk_plan
    draws = {1: [(2048, 2112)], 4: [(192, 256), (1280, 1344), (2560, 2624), (3648, 3712)]}
    draws[16] = [(256 * i, 256 * i + 64) for i in range(16)]
    for k in ks:
        draw = draws[k]
        for how, plan in (("auto", chosen), ("whole", lambda *shape: audit_chunks.WHOLE)):
            fast.chunk_plan = plan
            check = ChunkCheck(fwd, art, doc, k, 64, graph=True)
            say(f"audit_k{k}_{how}_ms", med(lambda: check(draw)))
            say(f"audit_k{k}_{how}_max_error", float(check(draw).max()))
            if k == 4:
                say(f"audit_k{k}_{how}_stages", profile(lambda: check(draw)))
        say(f"audit_k{k}_chunk_plan", audit_chunks.chunk_plan_chosen(k, 4, 64, 4096))
    fast.chunk_plan = chosen


def decode(model) -> None:
    query = torch.randint(0, 30000, (1, 32), device=dev)
    _, art, _ = document_kv(model, 3774, query)
    reader_fwd = FastForward(model, compile=True, fuse=True, document_kernel="auto")
    reader = Replayable(lambda x: reader_fwd(x, art), query, graph=True)
    say("reuse_L3774_ms", med(lambda: reader(query)))
    batch = 64
    for own in ("masked", "flash"):
        step_fwd = FastForward(model, compile=True, fuse=True, document_kernel="auto", own_kernel=own)
        decoder = GreedyDecoder(step_fwd, art, batch, 32, 8, graph=True)
        decoder.tokens(torch.randint(0, 30000, (batch, 32), device=dev))
        decoder.cache.rewind(36)
        token = torch.zeros(batch, 1, dtype=torch.long, device=dev)
        say(f"decode_L3774_B{batch}_{own}_step_ms", med(lambda: decoder.step(token)))
        say(f"decode_L3774_B{batch}_{own}_stages", profile(lambda: decoder.step(token)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--ks", type=int, nargs="*", choices=[1, 4, 16], default=[1, 4, 16], help="chunks per audit (none: no audit)"
    )
    parser.add_argument("--audit-only", action="store_true", help="leave out the decode step")
    args = parser.parse_args()
    say("device", torch.cuda.get_device_name())
    cal = ceilings()
    say("hbm_gbps", cal.hbm_gbps)
    say("bf16_tflops", cal.matmul_tflops)
    model = qwen3_4b_random()
    if args.ks:
        audits(model, FastForward(model, compile=True, fuse=True, document_kernel="auto"), args.ks)
        save("probe_chunks.json")
    if args.audit_only:
        return
    decode(model)
    save("probe_chunks.json")


if __name__ == "__main__":
    main()
