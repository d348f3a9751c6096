#!/usr/bin/env bash
# H200 call D (next session; carry: wheelhouse/base wheelhouse/tokenizer): what calls A-C left of
# issues 8 and 9. The Qwen3-8B shape's 32k point, the roofline's 32k point, the Qwen3-4B shape's
# 256 shared readers at 32k, and the Llama-3.1-8B shape's many-readers sweep. Writes under new/;
# copy each folder's rows into results/ (they resume into the committed folders by point id).
set -uo pipefail
source scripts/gpu_env.sh
quiet() { grep -v -E "it/s|s/it|━|Warning|warn\(" ; }
TOK=model.tokenizer=wheelhouse/tokenizer
timeout 90 python3 -m kvbench +exp=sweep model=qwen3_8b_random $TOK results_dir=new 'doc_tokens=[32768]' \
    timing.docs=2 timing.warmup=1 2>&1 | quiet
timeout 90 python3 -m kvbench +exp=roofline $TOK results_dir=new 'doc_tokens=[32768]' timing.docs=2 \
    timing.repeats=10 2>&1 | quiet
timeout 60 python3 -m kvbench +exp=throughput model=qwen3_4b_random $TOK results_dir=new 'doc_tokens=[32768]' \
    'throughput.methods=[shared]' 'throughput.batches=[256]' 2>&1 | quiet
timeout 300 python3 -m kvbench +exp=throughput model=llama3_8b_random $TOK results_dir=new 2>&1 | quiet
tar czf "$OUT/d.tgz" new
