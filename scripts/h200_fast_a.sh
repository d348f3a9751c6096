#!/usr/bin/env bash
# H200 call A (carry: wheelhouse/base wheelhouse/tokenizer wheelhouse/model-a): the GPU tests,
# the fast reader's roofline points, the Qwen3-4B-shape sweep with every reader, many readers
# of one document, and the gpu/host tiers with the fast reader. Call B must follow while the
# machine is warm (it reuses what this call installed and the model-a half).
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━|Warning|warn\(" ; }
TOK=model.tokenizer=wheelhouse/tokenizer
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader
timeout 70 python3 -m pytest -q -p no:cacheprovider -p no:valkey -m gpu tests/test_gpu.py 2>&1 | tail -4
timeout 100 python3 -m kvbench +exp=roofline $TOK results_dir=new timing.docs=2 timing.repeats=10 2>&1 | quiet
timeout 140 python3 -m kvbench +exp=sweep model=qwen3_4b_random $TOK results_dir=new timing.docs=2 timing.warmup=1 2>&1 | quiet
timeout 130 python3 -m kvbench +exp=throughput model=qwen3_4b_random $TOK results_dir=new 2>&1 | quiet
timeout 100 python3 -m kvbench +exp=tiers tier=gpu,host $TOK results_dir=new timing.warmup=1 timing.repeats=5 2>&1 | quiet
tar czf "$OUT/a.tgz" new
