"""Why the batched fast audit check catches fewer stale spans than HF eager's (issue 21): its
tolerance, or its kernels?

Qwen3-4B shape, random weights, bf16, documents of 4096 random ids, chunks of 64 tokens (the
audit rows' settings). Every chunk of each artifact is recomputed through both paths
(:func:`kvbench.audit.recompute.check_all` with and without the fast forward): ``--calibration``
honest artifacts give each path its tolerance (margin 2, as the rows), then ``--docs`` artifacts
tampered as ``chunk`` (one stale span of 4 tokens) and ``chunks`` (three) are checked under all
four pairings of errors and tolerance. If the fast errors flag as many chunks as HF's under HF's
tolerance, the tolerance is what costs detection; if they flag fewer under either tolerance, the
kernels are. Also recorded: per tampered artifact, the median ratio of fast to HF error over the
(chunk, layer, side) entries where HF's error exceeds its tolerance (the tamper's signal as each
path sees it).

Run from the repository root on a GPU node: ``python3 results/probes/probe_audit_paths.py``
(writes ``$OUT/probe_audit_paths.json``).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _probe import dev, qwen3_4b_random, save, say  # noqa: E402

from kvbench.audit import recompute as audit  # noqa: E402
from kvbench.audit.tamper import tamper  # noqa: E402
from kvbench.forward import inference  # noqa: E402
from kvbench.forward.fast import FastForward  # noqa: E402
from kvbench.kv.artifact import KVArtifact  # noqa: E402

TOKENS, CHUNK, MARGIN = 4096, 64, 2.0


def publish(model, ids: torch.Tensor) -> KVArtifact:
    _, cache = inference.prefill(model, ids)
    return KVArtifact.from_cache(cache, model_fingerprint="", tokenizer_hash="", token_ids=ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=int, default=4, help="honest artifacts per tolerance")
    parser.add_argument("--docs", type=int, default=4, help="tampered artifacts per kind")
    args = parser.parse_args()
    model = qwen3_4b_random()
    fwd = FastForward(model, compile=True, fuse=True, document_kernel="auto")
    paths = {"hf": None, "fast": fwd}
    gen = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, 30000, (1, TOKENS), generator=gen).to(dev) for _ in range(args.calibration + args.docs + 1)]

    with torch.inference_mode():
        check = lambda art, doc, path: audit.check_all(model, art, doc, CHUNK, paths[path])
        honest: dict[str, list[torch.Tensor]] = {p: [] for p in paths}
        for i in range(args.calibration):
            art = publish(model, ids[i])  # one prefill per document, checked through both paths
            for p in paths:
                honest[p].append(check(art, ids[i], p))
        tol = {p: audit.calibrate(honest[p], MARGIN) for p in paths}
        for p in paths:
            say(f"honest_error_max_{p}", float(torch.stack(honest[p]).max()))
            say(f"tolerance_max_{p}", float(tol[p].max()))
        say("fast_over_hf_tolerance_median", float((tol["fast"] / tol["hf"]).nanmedian()))
        for kind in ("chunk", "chunks"):
            counts = {f"{e}_errors_{t}_tolerance": [] for e in paths for t in paths}
            signal = []
            for j in range(args.calibration, args.calibration + args.docs):
                art = publish(model, ids[j])
                donor = ids[j + 1]
                bad = tamper(kind, model, art, ids[j], donor, span_tokens=4, spans=3, noise_rel=0.01, generator=gen)
                errors = {p: check(bad, ids[j], p) for p in paths}
                for e in paths:
                    for t in paths:
                        counts[f"{e}_errors_{t}_tolerance"].append(int(audit.flagged(errors[e], tol[t]).sum()))
                seen = errors["hf"] > tol["hf"]
                signal.append(float((errors["fast"][seen] / errors["hf"][seen]).median()) if seen.any() else None)
            for name, flagged in counts.items():
                say(f"{kind}_flagged_of_{TOKENS // CHUNK}_{name}", flagged)
            say(f"{kind}_fast_over_hf_error_where_hf_flags_median", signal)
    save("probe_audit_paths.json")


if __name__ == "__main__":
    main()
