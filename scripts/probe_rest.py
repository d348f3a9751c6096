"""H200 probe 2 behind the fast reader (issue #5): split-KV in one launch, the rest of the forward
under several compile settings, and the cuDNN prefill. ``python3 scripts/probe_rest.py MODE``
with MODE one of: splits | dyn | static | cdt | maxat.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.getcwd())
from kvbench import attention  # noqa: E402
from kvbench.architectures import build_config  # noqa: E402
from kvbench.artifact import KVArtifact  # noqa: E402
from kvbench.calibrate import calibrate  # noqa: E402
from kvbench.cuda_graph import Replayable  # noqa: E402
from kvbench.fast_forward import FastForward  # noqa: E402
from kvbench.floors import prefill_floor_ms, reuse_floor_ms, weight_bytes  # noqa: E402
from kvbench.measure import time_ms  # noqa: E402

dev, dt = torch.device("cuda"), torch.bfloat16
mode = sys.argv[1]
out: dict = {}


def say(key, value):
    out[key] = value
    print(f"{mode} {key}: {value}", flush=True)


def med(fn, warmup=3, repeats=20):
    return float(np.median(time_ms(fn, dev, warmup=warmup, repeats=repeats)))


cal = calibrate(dev, dt)
if mode == "splits":
    for L in (3774, 32768):
        kp = torch.randn(1, 8, L, 128, device=dev, dtype=dt)
        vp = torch.randn(1, 8, L, 128, device=dev, dtype=dt)
        fq = torch.randn(1, 8, 128, 128, device=dev, dtype=dt)
        ro, rl = attention._reference_pass(fq, kp, vp, False, 0.088)
        say(f"L{L}_ideal_ms", round(2 * kp.numel() * 2 / (cal.hbm_gbps * 1e9) * 1e3, 4))
        for s in (1, 2, 4, 8, 16, 32, 64):
            attention.SPLITS_OVERRIDE = s
            o, l = attention.prefix_pass(fq, kp, vp, 0.088)
            err = float((o.float() - ro.float()).norm() / ro.float().norm())
            g = Replayable(lambda x: attention.prefix_pass(x, kp, vp, 0.088)[0], fq, graph=True)
            say(f"L{L}_splits{s}_graph_ms", (round(med(lambda: g(fq), repeats=50), 4), f"relerr {err:.1e}"))
        attention.SPLITS_OVERRIDE = None
        # the expanded (stride-0) query, not materialised: does flash take it, and is it faster?
        S = 16
        C = L // S
        view = lambda t: t[:, :, :S * C].as_strided((S, 8, C, 128), (C * 128, t.stride(1), 128, 1), 0)  # noqa: E731
        try:
            qe = fq.expand(S, -1, -1, -1)
            g = Replayable(lambda x: torch.ops.aten._scaled_dot_product_flash_attention(
                x.expand(S, -1, -1, -1), view(kp), view(vp), 0.0, False, False, scale=0.088)[0], fq, graph=True)
            say(f"L{L}_expanded_q_flash_only_ms", round(med(lambda: g(fq), repeats=50), 4))
            g = Replayable(lambda x: torch.ops.aten._scaled_dot_product_flash_attention(
                x.expand(S, -1, -1, -1).contiguous(), view(kp), view(vp), 0.0, False, False, scale=0.088)[0], fq,
                graph=True)
            say(f"L{L}_contiguous_q_flash_only_ms", round(med(lambda: g(fq), repeats=50), 4))
        except Exception as exc:  # noqa: BLE001
            say(f"L{L}_expanded_error", str(exc).splitlines()[0][:200])
        del kp, vp
    sys.exit(0)

import torch._inductor.config as inductor_config  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

torch.manual_seed(0)
with torch.device(dev):
    model = AutoModelForCausalLM.from_config(build_config("qwen3-4b"), dtype=dt, attn_implementation="sdpa").eval()
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
    doc = torch.randint(0, 30000, (1, L), device=dev)
    with torch.inference_mode():
        pre = model(input_ids=doc, use_cache=True, logits_to_keep=1)
    art = KVArtifact.from_cache(pre.past_key_values, model_fingerprint="", tokenizer_hash="", token_ids=doc)
    del pre
    with torch.inference_mode():
        ref = model(input_ids=query, past_key_values=art.to_cache(model.config), use_cache=True,
                    logits_to_keep=1).logits[:, -1].float()
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
if os.environ.get("OUT"):
    with open(os.path.join(os.environ["OUT"], f"probe_{mode}.json"), "w") as f:
        json.dump(out, f, indent=1)
