#!/usr/bin/env bash
# H200 call C (carry: wheelhouse/nvcomp; calls A and B's files are still on the node):
# KV compressibility with host, nvCOMP and lossy codecs on real (SmolLM2) and random (Qwen3-4B shape) KV.
set -uo pipefail
source scripts/gpu_env.sh
python3 -m pytest -q -m gpu tests/test_codecs_gpu.py tests/test_gpu.py 2>&1 | tail -15
python3 -m kvbench +exp=compress model=smollm2 'doc_tokens=[1024,2048,4096]' 2>&1 | grep -v -E "it/s|s/it|━"
python3 -m kvbench +exp=compress model=qwen3_4b_random model.tokenizer=wheelhouse/tokenizer \
    'doc_tokens=[1024,4096]' 2>&1 | grep -v -E "it/s|s/it|━"
tar czf "$OUT/c.tgz" results/compress
