#!/usr/bin/env bash
# H200 call D (carry: wheelhouse/base wheelhouse/tokenizer; ran at c44c68f, results/README.md):
# what was left of issue 9, most important first, under one deadline: decoding over a shared
# document (throughput.gen_tokens), the Qwen3-4B shape's 256 readers at 32k with 32-token
# questions, and the Llama-3.1-8B shape's many-readers sweep; then, if time is left, the
# Qwen3-8B shape's 32k sweep point.
# Writes under new/; copy each folder's rows into results/ (they resume by point id).
set -uo pipefail
source scripts/gpu_env.sh
TOK=model.tokenizer=wheelhouse/tokenizer
KVB_DEADLINE=$((SECONDS + 560))
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
kvb_run 150 +exp=throughput model=qwen3_4b_random $TOK results_dir=new throughput.gen_tokens=16 \
    'doc_tokens=[3774,32768]' 'throughput.batches=[1,16,64,256]'
kvb_run 150 +exp=throughput model=qwen3_4b_random $TOK results_dir=new 'doc_tokens=[32768]' \
    'throughput.methods=[shared]' 'throughput.batches=[256]'
kvb_run 200 +exp=throughput model=llama3_8b_random $TOK results_dir=new 'doc_tokens=[3774,32768]' \
    'throughput.batches=[1,4,16,64,256]'
kvb_run 120 +exp=sweep model=qwen3_8b_random $TOK results_dir=new 'doc_tokens=[32768]' timing.docs=2 timing.warmup=1
tar czf "$OUT/d.tgz" new
