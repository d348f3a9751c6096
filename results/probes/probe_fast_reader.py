"""One-call H200 probe behind the fast reader's design (issue #8): which kernels and compile
settings reach the floor (its first run, results/probes/, also timed split-KV variants since removed). Prints one line per measurement; writes probe.json to $OUT.

    python3 scripts/probe_fast_reader.py   # on the GPU node, torch + transformers only
"""

from __future__ import annotations

import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from _probe import ceilings, dev, document_kv, dt, med, qwen3_4b_random, save, say
from kvbench.forward import attention
from kvbench.forward.cuda_graph import Replayable
from kvbench.forward.fast import FastForward
from kvbench.measure.floors import prefill_floor_ms, reuse_floor_ms, weight_bytes

cal = ceilings()
say("calibration", cal.__dict__)

# 1. correctness of one pass (GQA, lower-right causal) against the float32 reference
q = torch.randn(2, 32, 40, 128, device=dev, dtype=dt)
k = torch.randn(2, 8, 100, 128, device=dev, dtype=dt)
v = torch.randn(2, 8, 100, 128, device=dev, dtype=dt)
for causal in (False, True):
    o, l = attention.attention_pass(q, k, v, causal, 128 ** -0.5)
    ro, rl = attention._reference_pass(q, k, v, causal, 128 ** -0.5)
    say(f"pass_causal{causal}_relerr", float((o.float() - ro.float()).norm() / ro.float().norm()))
    say(f"pass_causal{causal}_lse_maxdiff", float((l - rl).abs().max()))

# 2. one layer's prefix attention (document + question parts, merged), replayed as a graph
for L in (3774, 32768):
    kp = torch.randn(1, 8, L, 128, device=dev, dtype=dt)
    vp = torch.randn(1, 8, L, 128, device=dev, dtype=dt)
    qq = torch.randn(1, 32, 32, 128, device=dev, dtype=dt)
    ko = torch.randn(1, 8, 32, 128, device=dev, dtype=dt)
    say(f"prefix_kv_read_L{L}_ideal_ms", round(2 * kp.numel() * 2 / (cal.hbm_gbps * 1e9) * 1e3, 4))
    g = Replayable(lambda x: attention.prefix_attention(x, ko, ko, kp, vp, 0.088), qq, graph=True)
    say(f"prefix_attention_layer_L{L}_graph_ms", round(med(lambda: g(qq)), 4))
    del kp, vp, g

# 3. prefill attention backends at long T (causal GQA)

for T in (8192, 32768):
    qq = torch.randn(1, 32, T, 128, device=dev, dtype=dt)
    kk = torch.randn(1, 8, T, 128, device=dev, dtype=dt)
    flops = 4 * 32 * 128 * T * (T + 1) / 2
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                     ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            with sdpa_kernel([be]):
                ms = med(lambda: torch.nn.functional.scaled_dot_product_attention(
                    qq, kk, kk, is_causal=True, enable_gqa=True), warmup=2, repeats=5)
            say(f"sdpa_{name}_T{T}_tflops", round(flops / ms / 1e9, 1))
        except Exception as exc:  # noqa: BLE001
            say(f"sdpa_{name}_T{T}_error", str(exc).splitlines()[0][:160])
    del qq, kk

# 4. the model: Qwen3-4B shape, random weights
model = qwen3_4b_random()
W = weight_bytes(model)
say("weight_bytes", W)
Q = 32
query = torch.randint(0, 30000, (1, Q), device=dev)
eager = FastForward(model, compile=False)
t0 = time.perf_counter()
compiled = FastForward(model, compile=True)
for L in (3774, 32768):
    doc, art, ref = document_kv(model, L, query)
    floor = reuse_floor_ms(model.config, Q, L, W, art.nbytes, cal)
    say(f"reuse_floor_L{L}_ms", round(floor, 4))
    for name, fwd in (("eager", eager), ("compiled", compiled)):
        t0 = time.perf_counter()
        g = Replayable(lambda ids: fwd(ids, art), query, graph=True)
        say(f"fast_{name}_L{L}_capture_s", round(time.perf_counter() - t0, 1))
        say(f"fast_{name}_L{L}_ms", round(med(lambda: g(query)), 4))
        say(f"fast_{name}_L{L}_maxdiff_vs_hf", float((g(query) - ref).abs().max()))
        del g
    # the rest of the forward: the same question with no document
    g = Replayable(lambda ids: compiled(ids), query, graph=True)
    say(f"fast_compiled_noprefix_Q{Q}_ms", round(med(lambda: g(query)), 4))
    del g
    full = torch.cat([doc, query], 1)
    say(f"prefill_floor_L{L}_ms", round(prefill_floor_ms(model.config, L + Q, W, cal), 3))
    with torch.inference_mode():
        say(f"prefill_hf_eager_L{L}_ms", round(med(lambda: model(input_ids=full, use_cache=True, logits_to_keep=1),
                                                 warmup=1, repeats=5), 3))
    for name, fwd in (("eager", eager), ("compiled", compiled)):
        t0 = time.perf_counter()
        g = Replayable(lambda ids: fwd(ids), full, graph=True, warmup=1)
        say(f"prefill_fast_{name}_L{L}_capture_s", round(time.perf_counter() - t0, 1))
        say(f"prefill_fast_{name}_L{L}_ms", round(med(lambda: g(full), warmup=1, repeats=5), 3))
        del g
    del art
    torch.cuda.empty_cache()
save("probe.json")
