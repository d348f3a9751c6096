#!/usr/bin/env bash
# H200 (carry: wheelhouse/base wheelhouse/tokenizer wheelhouse/model-a):
# the foundation sweep for the Qwen3-4B shape (random weights), plus a deterministic-kernels control.
set -uo pipefail
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader
timeout 430 python3 -m kvbench +exp=sweep model=qwen3_4b_random model.tokenizer=wheelhouse/tokenizer timing.repeats=10 \
    overwrite=true 2>&1 | grep -v -E "it/s|s/it|━"
timeout 100 python3 -m kvbench +exp=sweep model=qwen3_4b_random model.tokenizer=wheelhouse/tokenizer deterministic=true \
    'doc_tokens=[1024,8192]' timing.repeats=5 timing.graph=false overwrite=true 2>&1 | grep -v -E "it/s|s/it|━"
tar czf "$OUT/a.tgz" results/sweep
