"""Why the decode step's log-sum-exp merge of the document and the readers' own keys varies (issue 21).

Two H100 runs of the same code (321768d and bfd9a56: the merge's Inductor kernel unchanged) timed
the one pointwise kernel that merges the two parts (``..._exp_isneginf_...``) at 0.079 and 0.426 ms a
step at 64 readers of 3774 tokens, 0.124 and 1.51 ms at 256: the step's "rest" went from 2.5 to
3.9 ms. Inductor chooses that kernel's launch settings when it compiles the layer (dynamic shapes,
its pointwise autotuning), so this probe times the same decode step in one fresh process per
compiler setting: ``default`` (kvbench's: ``kvbench.forward.compiled.OPTIONS``, no pointwise
autotuning since 5a0d608); ``autotune`` (Inductor's pointwise autotuning, kvbench's setting before
5a0d608); ``coord`` (coordinate-descent tuning on top of the default); ``static`` (the layers
compiled for static shapes, with kvbench's options). Run from the repository root on a GPU node,
one mode per process:

    python3 results/probes/probe_decode_merge.py default   # writes $OUT/probe_decode_merge_default.json

At d8a6020 (results/probes/README.md) the modes were named as the settings were then: its
``default`` is today's ``autotune``, its ``noautotune`` today's ``default``, and its ``static``
autotuned. The autotuned settings were the slow ones.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _probe import dev, document_kv, med, qwen3_4b_random, save, say
from probe_stages import decode_step, profile

import kvbench.forward.compiled as compiled
import kvbench.forward.fast as fast
from kvbench.forward.fast import FastForward


def main(mode: str) -> None:
    if mode == "autotune":
        compiled.OPTIONS = {**compiled.OPTIONS, "triton.autotune_pointwise": True}
    elif mode == "coord":
        compiled.OPTIONS = {**compiled.OPTIONS, "coordinate_descent_tuning": True}
    elif mode == "static":
        fast.compiled_layer = lambda layer: torch.compile(layer, dynamic=False, options=compiled.OPTIONS)
    elif mode != "default":
        raise SystemExit(f"mode {mode!r}: expected default, autotune, coord or static")
    model = qwen3_4b_random()
    query = torch.randint(0, 30000, (1, 32), device=dev)
    fwd = FastForward(model, compile=True, fuse=True, document_kernel="auto", own_kernel="auto")
    _, art, _ = document_kv(model, 3774, query)
    for batch in (64, 256):
        decoder, token = decode_step(fwd, art, batch)
        say(f"{mode}_B{batch}_step_ms", med(lambda d=decoder: d.step(token)))
        say(f"{mode}_B{batch}_stages", profile(lambda d=decoder: d.step(token)))
    save(f"probe_decode_merge_{mode}.json")


if __name__ == "__main__":
    main(sys.argv[1])
