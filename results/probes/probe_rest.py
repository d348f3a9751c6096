"""H200 probe 2 behind the fast reader (issue #8): the fast forward under several compile settings,
and the fast prefill. ``python3 scripts/probe_rest.py MODE`` with MODE one of: dyn | static | cdt |
maxat. (Its first run also timed hand-made split-KV variants, since removed from kvbench/forward/attention.py;
results/probes/README.md keeps those numbers.)
"""

from __future__ import annotations

import sys
import time

import torch
import torch._inductor.config as inductor_config

from _probe import ceilings, dev, document_kv, med, qwen3_4b_random, save, say
from kvbench.forward.cuda_graph import Replayable
from kvbench.forward.fast import FastForward
from kvbench.measure.floors import prefill_floor_ms, reuse_floor_ms, weight_bytes

mode = sys.argv[1]
cal = ceilings()
model = qwen3_4b_random()
W = weight_bytes(model)
fwd = FastForward(model, compile=False)
options = {"dyn": dict(dynamic=True), "static": dict(dynamic=False), "cdt": dict(dynamic=True),
           "maxat": dict(dynamic=False, mode="max-autotune-no-cudagraphs")}[mode]
if mode == "cdt":
    inductor_config.coordinate_descent_tuning = True
fwd.layers = [torch.compile(layer, **options) for layer in fwd.layers]
Q = 32
query = torch.randint(0, 30000, (1, Q), device=dev)
t0 = time.perf_counter()
g = Replayable(lambda ids: fwd(ids), query, graph=True)
say("compile_and_capture_s", round(time.perf_counter() - t0, 1))
say("noprefix_Q32_ms", round(med(lambda: g(query), repeats=50), 4))
say("weight_floor_ms", round(W / (cal.hbm_gbps * 1e9) * 1e3, 4))
del g
for L in (3774, 32768):
    doc, art, ref = document_kv(model, L, query)
    t0 = time.perf_counter()
    g = Replayable(lambda ids: fwd(ids, art), query, graph=True)
    say(f"reuse_L{L}_capture_s", round(time.perf_counter() - t0, 1))
    ms = med(lambda: g(query), repeats=50)
    floor = reuse_floor_ms(model.config, Q, L, W, art.nbytes, cal)
    say(f"reuse_L{L}_ms", (round(ms, 4), f"floor {floor:.3f}", f"x{ms / floor:.2f}",
                           f"maxdiff {float((g(query) - ref).abs().max()):.3f}"))
    del g
    if mode == "dyn":
        full = torch.cat([doc, query], 1)
        with torch.inference_mode():
            one = model(input_ids=full, use_cache=False, logits_to_keep=1).logits[:, -1].float()
            hf = med(lambda: model(input_ids=full, use_cache=True, logits_to_keep=1), warmup=1, repeats=5)
        g = Replayable(lambda ids: fwd(ids), full, graph=True, warmup=1)
        ms = med(lambda: g(full), warmup=1, repeats=5)
        floor = prefill_floor_ms(model.config, L + Q, W, cal)
        say(f"prefill_L{L}", (f"hf {hf:.2f}", f"fast {ms:.2f}", f"floor {floor:.2f}", f"eff {floor / ms:.2f}",
                              f"maxdiff {float((g(full) - one).abs().max()):.3f}"))
        del g
    del art
    torch.cuda.empty_cache()
save(f"probe_{mode}.json")
