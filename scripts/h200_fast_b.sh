#!/usr/bin/env bash
# H200 call B (carry: wheelhouse/base wheelhouse/tokenizer wheelhouse/model-a): the Llama-3.1-8B
# shape's sweep with every reader, the naive many-readers points at 32k that call A's timeout cut,
# and the disk and redis tiers with the fast reader. Call C must follow at once (model-b).
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━|Warning|warn\(" ; }
TOK=model.tokenizer=wheelhouse/tokenizer
timeout 170 python3 -m kvbench +exp=sweep model=llama3_8b_random $TOK results_dir=new timing.docs=2 timing.warmup=1 2>&1 | quiet
timeout 60 python3 -m kvbench +exp=throughput model=qwen3_4b_random $TOK results_dir=new 'doc_tokens=[32768]' \
    'throughput.methods=[naive]' 'throughput.batches=[1,2,4,8,16,32]' 2>&1 | quiet
timeout 150 python3 -m kvbench +exp=tiers tier=disk,redis $TOK results_dir=new 'doc_tokens=[4096,16384,32768]' \
    timing.warmup=1 timing.repeats=5 2>&1 | quiet
timeout 90 python3 -m kvbench +exp=sweep model=qwen3_8b_random $TOK results_dir=new timing.docs=2 timing.warmup=1 2>&1 | quiet
tar czf "$OUT/b.tgz" new
